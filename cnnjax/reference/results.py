"""Our evaluations: the JSON files `eval.py --out x.json` writes, read back for the report.

A file given by name must be an evaluation; a directory contributes every `*.json` in it (not recursing, so
a workdir's checkpoints are not read) that has the keys of one, and skips other JSON such as run.json.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Iterable

from cnnjax.errors import CnnjaxError, first_line
from cnnjax.models import list_models

REQUIRED = ("model", "dataset", "split", "top1")


class ReportError(CnnjaxError):
    """Bad input to `cnnjax report`: a result file that cannot be read, an output that cannot be written."""


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One eval.py result, accuracies in percent; the protocol fields are None where the file does not say."""

    model: str
    dataset: str
    split: str
    top1: float
    top5: float | None
    file: str
    num_examples: int | None = None
    img_size: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None


def _percent(value: Any, key: str, file: pathlib.Path) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ReportError(f"result file {file}: {key} must be a fraction in [0, 1] as eval.py writes it, "
                          f"got {value!r}")
    return 100.0 * value


def parse_result(data: Any, file: pathlib.Path) -> Evaluation:
    """An eval.py result dict -> Evaluation; anything missing or malformed names the file."""
    if not isinstance(data, dict):
        raise ReportError(f"result file {file} holds a JSON {type(data).__name__}, not eval.py's object")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ReportError(f"result file {file} has no {', '.join(missing)}: is it an `eval.py --out` JSON?")
    if data["model"] not in list_models():
        raise ReportError(f"result file {file}: model {data['model']!r} is not registered (see `cnnjax models`)")
    top5 = data.get("top5")
    size, crop_pct, interpolation = _protocol(data)
    return Evaluation(str(data["model"]), str(data["dataset"]), str(data["split"]),
                      _percent(data["top1"], "top1", file), None if top5 is None else _percent(top5, "top5", file),
                      str(file), data.get("num_examples"), size, crop_pct, interpolation)


def _protocol(data: dict[str, Any]) -> tuple[int | None, float | None, str | None]:
    """(img_size, crop_pct, interpolation) as the file records them: timm-style top-level keys, or the
    `preprocessing` {"resize", "crop"} that eval.py writes for converted weights."""
    pre = data.get("preprocessing") if isinstance(data.get("preprocessing"), dict) else {}
    size = data.get("img_size", pre.get("crop"))
    crop_pct = data.get("crop_pct")
    if crop_pct is None and pre.get("crop") and pre.get("resize"):
        crop_pct = pre["crop"] / pre["resize"]
    return size, crop_pct, data.get("interpolation", pre.get("interpolation"))


def _load(file: pathlib.Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"cannot read result file {file}: {first_line(err)}") from None


def is_result(data: Any) -> bool:
    return isinstance(data, dict) and all(key in data for key in REQUIRED)


def read_results(paths: Iterable[str | pathlib.Path]) -> list[Evaluation]:
    """The evaluations in `paths` (files, or directories of them), in the order given."""
    found: list[Evaluation] = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            for file in sorted(path.glob("*.json")):
                data = _load(file)
                if is_result(data):
                    found.append(parse_result(data, file))
        elif path.exists():
            found.append(parse_result(_load(path), path))
        else:
            raise ReportError(f"result path {path} does not exist; give eval.py --out files or their directories")
    return found
