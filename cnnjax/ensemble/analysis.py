"""The ensemble analysis: members, combiners, significance against the best member, diversity, size curve.

Input is cached member logits of two splits. Everything chosen or fitted (the best member, combiner weights,
meta-learners, temperatures, the size-curve order) uses the fit split only; the report split is only scored.
The result is a plain JSON-serialisable dict (Python floats, None for undefined values).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from cnnjax.ensemble import combiners as comb
from cnnjax.ensemble.diversity import diversity, size_curve
from cnnjax.ensemble.scores import correct, log_softmax, nll, prediction_metrics, reliability
from cnnjax.ensemble.significance import mcnemar, paired_bootstrap
from cnnjax.errors import CnnjaxError


class EnsembleInputError(CnnjaxError, ValueError):
    """Member predictions whose shapes, labels or names do not fit together."""


def _check_inputs(fit_logits: np.ndarray, fit_labels: np.ndarray, report_logits: np.ndarray,
                  report_labels: np.ndarray, names: Sequence[str]) -> None:
    if fit_logits.ndim != 3 or report_logits.ndim != 3:
        raise EnsembleInputError(f"member logits must be (members, examples, classes), got {fit_logits.shape} "
                                 f"and {report_logits.shape}")
    (m, n_fit, c), (m_rep, n_rep, c_rep) = fit_logits.shape, report_logits.shape
    if (m, c) != (m_rep, c_rep) or m != len(names):
        raise EnsembleInputError(f"{len(names)} member names, fit logits {fit_logits.shape} and report logits "
                                 f"{report_logits.shape} disagree on the members or classes")
    if fit_labels.shape != (n_fit,) or report_labels.shape != (n_rep,):
        raise EnsembleInputError(f"labels {fit_labels.shape}/{report_labels.shape} do not match the examples "
                                 f"{n_fit}/{n_rep}")
    for labels in (fit_labels, report_labels):
        if labels.size and (labels.min() < 0 or labels.max() >= c):
            raise EnsembleInputError(f"labels must be in [0, {c}), got {labels.min()}..{labels.max()}")


def _member_rows(fit_lp: np.ndarray, fit_labels: np.ndarray, report_lp: np.ndarray, report_labels: np.ndarray,
                 names: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for name, fit, report in zip(names, fit_lp, report_lp):
        fit_probs = np.exp(fit)
        row = {"name": name, **prediction_metrics(np.exp(report), report_labels)}
        row.update(fit_top1=float(np.mean(fit.argmax(1) == fit_labels)), fit_nll=nll(fit_probs, fit_labels))
        rows.append(row)
    return rows


def fit_order(members: Sequence[dict[str, Any]]) -> list[int]:
    """Member indices best first by fit-split top-1, ties by fit NLL, then input order."""
    return sorted(range(len(members)), key=lambda i: (-members[i]["fit_top1"], members[i]["fit_nll"], i))


def _named_info(info: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Per-member lists (weights, greedy counts) as {member name: value}, for a readable report."""
    return {key: dict(zip(names, value)) if key in ("weights", "counts") else value for key, value in info.items()}


def _combiner_entry(out: comb.CombinerOutput, fit_labels: np.ndarray, report_labels: np.ndarray,
                    best_correct: np.ndarray, names: Sequence[str], seed: int) -> dict[str, Any]:
    entry = prediction_metrics(out.report_probs, report_labels, rank=out.report_rank, with_nll=out.has_nll)
    entry["fit"] = prediction_metrics(out.fit_probs, fit_labels, rank=out.fit_rank, with_nll=out.has_nll)
    combiner_correct = correct(out.report_probs if out.report_rank is None else out.report_rank, report_labels)
    ci = paired_bootstrap(best_correct, combiner_correct, seed=seed)
    test = mcnemar(best_correct, combiner_correct)
    entry["vs_best"] = {"diff": ci["diff"], "ci_low": ci["lo"], "ci_high": ci["hi"],
                        "mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p"]}
    info = _named_info(out.info, names)
    if out.in_sample_fit_probs is not None:
        info["in_sample_fit"] = {"top1": float(np.mean(out.in_sample_fit_probs.argmax(1) == fit_labels)),
                                 "nll": nll(out.in_sample_fit_probs, fit_labels)}
    entry["info"] = info
    return entry


def analyse(fit_logits: np.ndarray, fit_labels: np.ndarray, report_logits: np.ndarray, report_labels: np.ndarray,
            names: Sequence[str], combiners: Sequence[str], *, fit_split: str = "validation",
            report_split: str = "test", folds: int = 5, seed: int = 0, temperature_scaling: bool = False,
            stack_model: str = "logistic") -> dict[str, Any]:
    """The report content (see the module docstring); `members` keeps the input order of `names`."""
    fit_labels, report_labels = np.asarray(fit_labels, np.int64), np.asarray(report_labels, np.int64)
    _check_inputs(np.asarray(fit_logits), fit_labels, np.asarray(report_logits), report_labels, names)
    comb.check_names(combiners)
    comb.check_stack_model(stack_model)
    fit_lp, report_lp = log_softmax(fit_logits), log_softmax(report_logits)
    members = _member_rows(fit_lp, fit_labels, report_lp, report_labels, names)
    order = fit_order(members)
    best = order[0]
    best_correct = report_lp[best].argmax(1) == report_labels
    entries, timings, curves = {}, {}, {}
    for name in combiners:
        start = time.perf_counter()
        out = comb.run_combiner(name, fit_lp, fit_labels, report_lp, folds=folds, seed=seed,
                                temperature_scaling=temperature_scaling, stack_model=stack_model)
        entries[name] = _combiner_entry(out, fit_labels, report_labels, best_correct, names, seed)
        curves[name] = reliability(out.report_probs, report_labels, rank=out.report_rank)
        timings[name] = time.perf_counter() - start
    timings["total"] = sum(timings.values())
    report_predictions = report_lp.argmax(2)
    return {
        "fit_split": fit_split,
        "report_split": report_split,
        "num_examples": {"fit": int(len(fit_labels)), "report": int(len(report_labels))},
        "num_classes": int(fit_lp.shape[2]),
        "settings": {"folds": folds, "seed": seed, "temperature_scaling": temperature_scaling,
                     "stack_model": stack_model},
        "members": members,
        "best_member": names[best],
        "best_member_index": best,
        "best_member_rule": f"{fit_split} top1, ties by {fit_split} nll",
        "combiners": entries,
        "diversity": diversity(report_predictions, report_labels),
        "size_curve": size_curve(np.exp(report_lp), report_labels, order, names),
        "reliability": {"best_member": reliability(np.exp(report_lp[best]), report_labels), "combiners": curves},
        "timings": timings,
    }
