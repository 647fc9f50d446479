"""`evaluate_ensemble`: member specs -> cached member logits -> combiners -> report files.

The order is what makes bad input cheap: member specs are resolved, the output directory is checked and
the combiner names are parsed before any data is read; the members' data must agree before any
inference; inference results are cached per member before any combiner runs. Combiners are fitted on the
fit split only and scored on the report split, which must be another split.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
from typing import Any

import jax

from cnnjax.ensemble import analysis, combiners as combiner_lib, members as member_lib, predictions, report_files
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.outputs import RUN_DIRS, RUN_FILES

log = logging.getLogger("cnnjax")
SPLITS = ("train", "validation", "test")


class EnsembleError(CnnjaxError, ValueError):
    """Ensemble options that cannot be used as given (splits, combiners, output directory)."""


def parse_combiners(text: str) -> tuple[str, ...]:
    """`vote,mean,...` (or `all`) -> the combiner names, in the library's order; one-line error otherwise."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names or names == ("all",):
        return combiner_lib.COMBINERS
    unknown = [n for n in names if n not in combiner_lib.COMBINERS]
    if unknown:
        raise EnsembleError(f"unknown combiner {unknown[0]!r}; choose from {','.join(combiner_lib.COMBINERS)} "
                            "(comma-separated) or all")
    return tuple(n for n in combiner_lib.COMBINERS if n in names)


def prepare_out(out: str | pathlib.Path, members: list[member_lib.Member]) -> pathlib.Path:
    """Creates the output directory, refusing one that is (inside) a member's run files or not writable."""
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise EnsembleError(f"--out {out} is a file; give a directory for report.json, report.md and the PNGs")
    real = out.resolve()
    for member in members:
        workdir = member.workdir.resolve()
        if real == workdir or any(real == workdir / d or workdir / d in real.parents for d in RUN_DIRS) or \
                (real.parent == workdir and real.name in RUN_FILES):
            raise EnsembleError(f"--out {out} is inside the training run {member.workdir}'s own files; write the "
                                f"report elsewhere, e.g. --out {workdir / 'ensemble'}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as err:
        raise EnsembleError(f"--out {out} is not writable ({err.strerror or err}); choose a writable "
                            "directory") from None
    return out


def evaluate_ensemble(specs: list[str], out: str | pathlib.Path, combiners: str = "all",
                      fit_split: str = "validation", report_split: str = "test", *, batch_size: int | None = None,
                      folds: int = 5, seed: int = 0, temperature_scaling: bool = False,
                      stack_model: str = "logistic", use_cache: bool = True,
                      vectorize_members: bool = False) -> dict[str, Any]:
    """Scores every combiner of the members' logits on `report_split`, fitted on `fit_split`; writes the report."""
    if fit_split == report_split:
        raise EnsembleError(f"--fit_split and --report_split are both {fit_split!r}; nothing may be fitted on "
                            "the split that is reported (e.g. fit on validation, report on test)")
    for split in (fit_split, report_split):
        if split not in SPLITS:
            raise EnsembleError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    names = parse_combiners(combiners)
    combiner_lib.check_stack_model(stack_model)
    if folds < 2:
        raise EnsembleError(f"--folds must be at least 2 for cross-fitting, got {folds}")
    members = member_lib.resolve(specs)
    out = prepare_out(out, members)
    splits = (fit_split, report_split)
    data = predictions.load_member_data(members, splits)
    preds = predictions.member_predictions(data, splits, batch_size, use_cache=use_cache,
                                           vectorize=vectorize_members)
    log.info("member logits: %d read from the cache, %d computed (%.1f s)", preds.cached, preds.computed,
             preds.seconds)
    result = analysis.analyse(preds.logits[fit_split], preds.labels[fit_split], preds.logits[report_split],
                              preds.labels[report_split], [m.name for m in members], names,
                              fit_split=fit_split, report_split=report_split, folds=folds, seed=seed,
                              temperature_scaling=temperature_scaling, stack_model=stack_model)
    for row, member, d in zip(result["members"], members, data):
        row.update(workdir=os.fspath(member.workdir), step=member.step, model=d.config.model)
    result["dataset"] = data[0].config.dataset
    result["inference"] = {"cached": preds.cached, "computed": preds.computed, "seconds": preds.seconds}
    if jax.process_index() == 0:  # every process computed the same report; one writes it
        result["files"] = [os.fspath(p) for p in report_files.write_report(result, out)]
    else:
        result["files"] = []
    return result


def format_summary(result: dict[str, Any]) -> str:
    """A Markdown table of the combiners on the report split, with the CI against the best member."""
    best = result["best_member"]
    lines = [f"{len(result['members'])} members on {result['dataset']}; fitted on {result['fit_split']} "
             f"({result['num_examples']['fit']:,}), reported on {result['report_split']} "
             f"({result['num_examples']['report']:,}); best single member (on {result['fit_split']}): {best}",
             "", "| combiner | top-1 | NLL | ECE | Δ top-1 vs best [95% CI] | McNemar p |",
             "|---|--:|--:|--:|--:|--:|"]
    for name, row in result["combiners"].items():
        vs = row["vs_best"]
        nll = "n/a" if row["nll"] is None else f"{row['nll']:.4f}"
        lines.append(f"| {name} | {100 * row['top1']:.2f}% | {nll} | {100 * row['ece']:.2f}% | "
                     f"{100 * vs['diff']:+.2f} [{100 * vs['ci_low']:+.2f}, {100 * vs['ci_high']:+.2f}] | "
                     f"{vs['mcnemar_p']:.3g} |")
    return "\n".join(lines)
