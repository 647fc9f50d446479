"""The reproducibility report: per registry model, our params/MACs and evaluations next to the published ones.

Ours come from one abstract trace per model (as `cnnjax models`) and from eval.py JSON files; the published
figures from `cnnjax.reference.published`. Output: a Markdown report and CSVs in timm's results schema
(results.csv: our evaluation of each model; published.csv: torchvision's single-crop figures), see
`write_report`.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
from typing import Callable, Sequence

from cnnjax.introspect.macs import forward_macs
from cnnjax.introspect.trace import input_array, trace_forward
from cnnjax.models import ModelInfo, create_model, list_models, model_info
from cnnjax.reference.published import Accuracy, Published, published
from cnnjax.reference.results import Evaluation, ReportError

TIMM_COLUMNS = ("model", "img_size", "top1", "top1_err", "top5", "top5_err", "param_count", "crop_pct",
                "interpolation")
Progress = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class Row:
    """One registry model: our counts, the published figures (if any) and our evaluation (if any)."""

    info: ModelInfo
    params: int
    macs: int
    published: Published | None
    ours: Evaluation | None

    @property
    def model(self) -> str:
        return self.info.name

    @property
    def dataset(self) -> str:
        return reference_dataset(self.info, self.published)


def reference_dataset(info: ModelInfo, ref: Published | None) -> str:
    """The dataset the published accuracies are on (ImageNet for 1000 classes unless the data says)."""
    if ref is not None:
        return ref.dataset
    return "imagenet2012" if info.num_classes == 1000 else "-"


def pick_evaluation(model: str, dataset: str, evaluations: Sequence[Evaluation]) -> Evaluation | None:
    """The last given evaluation of `model` on the dataset its published figures are on."""
    matching = [e for e in evaluations if e.model == model and e.dataset == dataset]
    return matching[-1] if matching else None


def build_rows(evaluations: Sequence[Evaluation] = (), pattern: str = "*",
               progress: Progress | None = None) -> list[Row]:
    """A row per registry model matching `pattern` (params and MACs traced abstractly at its input size)."""
    names = list_models(pattern)
    if not names:
        raise ReportError(f"no registered model matches {pattern!r}; run `cnnjax models` for the list")
    rows = []
    for i, name in enumerate(names):
        if progress:
            progress(i, len(names), name)
        info = model_info(name)
        trace = trace_forward(create_model(name), input_array(info.input_shape))
        ref = published(name)
        ours = pick_evaluation(name, reference_dataset(info, ref), evaluations)
        rows.append(Row(info, trace.params, forward_macs(trace), ref, ours))
    return rows


def evaluation_protocol(evaluation: Evaluation, info: ModelInfo) -> tuple[int, float, str]:
    """(img_size, crop_pct, interpolation) of an evaluation: the file's, else the registry's metadata."""
    return (evaluation.img_size or info.input_shape[0], evaluation.crop_pct or info.crop_pct,
            evaluation.interpolation or "bilinear")


def _timm_row(model: str, img_size: int, top1: float | None, top5: float | None, params: int, crop_pct: float,
              interpolation: str) -> dict[str, str]:
    fmt = lambda value: "" if value is None else f"{value:.3f}"
    return dict(model=model, img_size=str(img_size), top1=fmt(top1), top1_err=fmt(None if top1 is None else 100 - top1),
                top5=fmt(top5), top5_err=fmt(None if top5 is None else 100 - top5),
                param_count=f"{params / 1e6:.6f}", crop_pct=f"{crop_pct:.3f}", interpolation=interpolation)


def results_table(rows: Sequence[Row]) -> list[dict[str, str]]:
    """timm's schema for the compared evaluation of each model (one row per model, on the dataset of its
    published figures: the schema has no dataset column); param_count in millions, exact."""
    table = []
    for r in rows:
        if r.ours is not None:
            size, crop, interpolation = evaluation_protocol(r.ours, r.info)
            table.append(_timm_row(r.model, size, r.ours.top1, r.ours.top5, r.params, crop, interpolation))
    return table


def published_table(rows: Sequence[Row]) -> list[dict[str, str]]:
    """timm's schema for torchvision's single-crop figures (params: torchvision's count)."""
    return [_timm_row(r.model, p.img_size, p.torchvision.top1, p.torchvision.top5, p.params, p.crop_pct,
                      p.interpolation)
            for r in rows if (p := r.published) is not None and p.torchvision is not None]


def write_csv(table: Sequence[dict[str, str]], path: pathlib.Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TIMM_COLUMNS)
        writer.writeheader()
        writer.writerows(table)


def _ratio(ours: float, theirs: float | None) -> str:
    return "" if not theirs else f"{ours / theirs:.3f}"


def _acc(acc: Accuracy | Evaluation | None) -> str:
    if acc is None or (acc.top1 is None and acc.top5 is None):
        return ""
    cell = lambda v: "–" if v is None else f"{v:.2f}"
    return f"{cell(acc.top1)} / {cell(acc.top5)}"


def comparison_markdown(rows: Sequence[Row]) -> str:
    """The main table: counts ours vs published (ratio), top-1/top-5 paper, torchvision, ours."""
    lines = ["| model | dataset | params (ours) | params (published) | ratio | GMACs (ours) | GMACs (published) "
             "| ratio | paper top-1 / top-5 | torchvision top-1 / top-5 | ours top-1 / top-5 |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        p = r.published
        lines.append(" | ".join([
            f"| {r.model}", r.dataset, f"{r.params:,}", f"{p.params:,}" if p else "", _ratio(r.params, p and p.params),
            f"{r.macs / 1e9:.3f}", f"{p.gmacs:.3f}" if p and p.gmacs else "",
            _ratio(r.macs / 1e9, p and p.gmacs), _acc(p and p.paper), _acc(p and p.torchvision), _acc(r.ours)]) + " |")
    return "\n".join(lines)


def protocols_markdown(rows: Sequence[Row]) -> str:
    """Where every figure comes from and how it was measured (a separate table: the main one is wide)."""
    lines = ["| model | paper: protocol (source) | torchvision: protocol | ours: protocol (file) |",
             "|---|---|---|---|"]
    for r in rows:
        p, e = r.published, r.ours
        paper = f"{p.paper.protocol} ({p.paper.source})" if p and p.paper else ""
        tv = p.torchvision.protocol if p and p.torchvision else ""
        ours = ""
        if e is not None:
            size, crop, interp = evaluation_protocol(e, r.info)
            ours = f"{e.dataset} {e.split}, {size}px, crop_pct {crop:.3f}, {interp} ({e.file})"
        if paper or tv or ours:
            lines.append(f"| {r.model} | {paper} | {tv} | {ours} |")
    return "\n".join(lines)


def report_markdown(rows: Sequence[Row], figure: str | None = None) -> str:
    evaluated = sum(r.ours is not None for r in rows)
    parts = ["# Reproducibility report", "",
             f"{len(rows)} registry models, {evaluated} with an evaluation of ours. Params: trainable (BatchNorm "
             "gamma/beta counted, running statistics not); GMACs: convolution and dense multiply-accumulates at "
             "the model's input size (torchvision's \"GFLOPS\"). Accuracies in percent, ILSVRC-2012 validation "
             "(CIFAR-10 test for 10-class models). Where our result file does not record its protocol, the "
             "registry's input size and crop_pct are shown.", "", comparison_markdown(rows), "",
             "## Protocols and sources", "", protocols_markdown(rows)]
    if figure:
        parts += ["", "## Top-1 vs operations", "", f"![top-1 vs GMACs]({figure})"]
    return "\n".join(parts) + "\n"


def check_out_dir(out: str | pathlib.Path) -> pathlib.Path:
    """The --out directory, created if its parent exists (a missing parent is more likely a typo)."""
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file; give a directory for report.md, results.csv and the figure")
    if not out.exists():
        if not out.parent.is_dir():
            raise ReportError(f"--out {out}: its parent directory {out.parent} does not exist")
        out.mkdir()
    return out


def write_report(rows: Sequence[Row], out: str | pathlib.Path,
                 figure: Callable[[Sequence[Row], pathlib.Path], None]) -> list[pathlib.Path]:
    """report.md, results.csv, published.csv and complexity.png under `out`; returns the paths written."""
    out = check_out_dir(out)
    paths = [out / "report.md", out / "results.csv", out / "published.csv", out / "complexity.png"]
    try:
        figure(rows, paths[3])
        paths[0].write_text(report_markdown(rows, paths[3].name))
        write_csv(results_table(rows), paths[1])
        write_csv(published_table(rows), paths[2])
    except OSError as err:
        raise ReportError(f"cannot write the report under {out}: {err.strerror or err}") from None
    return paths
