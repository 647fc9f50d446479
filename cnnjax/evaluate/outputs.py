"""The files `eval.py --out` writes, checked before any evaluation so that they can neither clobber the
training run they evaluate nor fail after minutes of work.

`--out result.json` writes `result.json`, `result_confusion.png` and `result_logits.npy`. None may be one
of the workdir's own files (run.json, metrics.jsonl, the lock, anything under checkpoints/, tensorboard/
or plots/), whatever path, symlink or hard link leads there; evaluations may otherwise live in the workdir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile
from typing import Any, Iterator

import numpy as np

from cnnjax import plots
from cnnjax.data.sources import DatasetMeta
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.exact import confusion_matrix
from cnnjax.train.workdir_lock import LOCK_FILE

# What a training run writes in its workdir (run_info, metrics_log, workdir_lock; checkpoint, metrics_log,
# loop), with the temporary names it replaces them from.
RUN_FILES = ("run.json", "run.json.tmp", "metrics.jsonl", "metrics.jsonl.tmp", LOCK_FILE)
RUN_DIRS = ("checkpoints", "tensorboard", "plots")


class OutputError(CnnjaxError):
    """`--out` cannot be written, or would overwrite the run being evaluated; nothing was evaluated."""


@dataclasses.dataclass(frozen=True)
class Outputs:
    json: pathlib.Path
    confusion_png: pathlib.Path
    logits_npy: pathlib.Path

    @classmethod
    def of(cls, out: str | pathlib.Path) -> "Outputs":
        out = pathlib.Path(out)
        return cls(out, out.with_name(out.stem + "_confusion.png"), out.with_name(out.stem + "_logits.npy"))

    def __iter__(self) -> Iterator[pathlib.Path]:
        return iter((self.json, self.confusion_png, self.logits_npy))


def _run_file(path: pathlib.Path, workdir: pathlib.Path) -> str | None:
    """What of the run in `workdir` (resolved) `path` would overwrite, if anything."""
    real = path.resolve()
    if real.parent == workdir and real.name in RUN_FILES:
        return real.name
    for name in RUN_DIRS:
        if real == workdir / name or workdir / name in real.parents:
            return f"{name}/"
    if real.is_file():  # a hard link to one of the run's files is the same file
        for name in RUN_FILES:
            own = workdir / name
            if own.is_file() and os.path.samefile(real, own):
                return name
    return None


def prepare(out: str, workdir: str | pathlib.Path) -> Outputs:
    """Checks that `out` and its siblings can be written without touching the run in `workdir`; creates
    the directory of `out`. Raises `OutputError` (one line: what is wrong, what to do) otherwise."""
    if not out:
        raise OutputError("--out is empty; give a file name such as eval.json")
    if out.endswith(os.sep) or pathlib.Path(out).is_dir() or not pathlib.Path(out).name:
        raise OutputError(f"--out {out} is a directory; give a file name such as {os.path.join(out, 'eval.json')}")
    outputs = Outputs.of(out)
    workdir = pathlib.Path(workdir).resolve()
    for path in outputs:
        if (own := _run_file(path, workdir)) is not None:
            raise OutputError(f"--out {out} would overwrite {path}, the training run's own {own} in {workdir}; "
                              f"write the evaluation elsewhere, e.g. --out {workdir / 'eval.json'}")
        if path.is_dir():
            raise OutputError(f"--out {out} would write {path}, which is a directory; choose another --out")
    directory = outputs.json.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"--out {out}: cannot create the directory {directory} ({err.strerror or err}: "
                          f"{err.filename}); choose a writable location") from None
    try:
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as err:
        raise OutputError(f"--out {out}: cannot create files in {directory} ({err.strerror or err}); choose a "
                          "writable location") from None
    for path in outputs:
        try:
            if path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # opens it without changing it
        except OSError as err:
            raise OutputError(f"--out {out}: cannot overwrite {path} ({err.strerror or err}); choose another "
                              "--out") from None
    return outputs


def write_outputs(outputs: Any, result: dict[str, Any], logits: np.ndarray, labels: np.ndarray,
                  meta: DatasetMeta, title: str) -> None:
    """The JSON result, the confusion-matrix PNG and the logits; their paths are added to `result`."""
    outputs.json.write_text(json.dumps(result, indent=2) + "\n")
    if logits.shape[1] <= meta.num_classes:
        matrix, names = confusion_matrix(logits, labels, meta.num_classes), tuple(meta.class_names)
    else:  # a head wider than the dataset (1000 ImageNet classes scored on 10): the rest is one "other"
        k = meta.num_classes
        matrix, names = np.zeros((k + 1, k + 1), np.int64), (*meta.class_names, "other")
        np.add.at(matrix, (labels, np.minimum(logits.argmax(1), k)), 1)
    plots.confusion_matrix_png(matrix, names, outputs.confusion_png, title=title)
    np.save(outputs.logits_npy, logits)
    result["confusion_png"], result["logits_npy"] = str(outputs.confusion_png), str(outputs.logits_npy)
