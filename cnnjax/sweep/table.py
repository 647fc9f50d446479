"""A sweep's results: points ranked best first, as `sweep.csv`, `sweep.md` and the group's member list.

A point's score is its best validation top-1, or with `--cv K` the mean over its K folds (± their
standard deviation, population form as scikit-learn reports it). Ties keep the sweep order; a point with
a failed run (NaN/Inf loss) ranks last and is no ensemble member.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any, Sequence

import numpy as np

from cnnjax.sweep.space import Point

COLUMNS = ("rank", "point", "overrides", "score", "std", "fold_scores", "refit_score", "workdirs", "seconds",
           "note")


@dataclasses.dataclass(frozen=True)
class PointResult:
    index: int
    name: str  # the point's directory inside the sweep
    overrides: Point
    fold_scores: tuple[float, ...]  # one per CV fold, or the one standard-carve score without --cv
    workdirs: tuple[str, ...]  # relative to the sweep directory: the fold runs (or the one run), then a refit
    seconds: float  # training time of all its runs
    cv: bool = False
    refit_score: float | None = None  # with --cv: the refit (standard carve) run's best validation top-1
    member: str | None = None  # its ensemble-able (standard-carve) run, if it has one
    note: str = ""  # why a run failed

    @property
    def ok(self) -> bool:
        return not self.note and bool(np.isfinite(self.fold_scores).all())

    @property
    def score(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float | None:
        return float(np.std(self.fold_scores)) if self.cv else None


def rank(results: Sequence[PointResult]) -> list[PointResult]:
    """Best score first, failed points last; equal scores in sweep order (so a re-run ranks identically)."""
    return sorted(results, key=lambda r: (not r.ok, -r.score if r.ok else 0.0, r.index))


def _row(position: int, result: PointResult) -> dict[str, str]:
    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    return {"rank": str(position), "point": result.name, "overrides": " ".join(result.overrides),
            "score": number(result.score), "std": number(result.std),
            "fold_scores": ";".join(f"{s:.4f}" for s in result.fold_scores) if result.cv else "",
            "refit_score": number(result.refit_score), "workdirs": ";".join(result.workdirs),
            "seconds": f"{result.seconds:.1f}", "note": result.note}


def to_csv(ranked: Sequence[PointResult]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_row(i + 1, r) for i, r in enumerate(ranked))
    return out.getvalue()


def to_markdown(ranked: Sequence[PointResult], title: str) -> str:
    rows = [_row(i + 1, r) for i, r in enumerate(ranked)]
    columns = [c for c in COLUMNS if any(row[c] for row in rows)]  # e.g. no std/fold columns without --cv
    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row[c].replace("|", "\\|") or "-" for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def members(ranked: Sequence[PointResult]) -> list[dict[str, Any]]:
    """The group's members, best first: every point's standard-carve run (with --cv: the refit ones)."""
    out = []
    for result in ranked:
        if result.member is None:
            continue
        entry: dict[str, Any] = {"workdir": result.member, "score": result.score, "overrides": list(result.overrides)}
        if result.cv:
            entry.update(std=result.std, refit_score=result.refit_score)
        out.append(entry)
    return out
