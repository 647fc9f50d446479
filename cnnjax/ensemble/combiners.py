"""Ways of combining member log-probabilities (M, N, C) into one prediction, fitted only on the fit split.

Unfitted combiners (vote, mean, logit_mean) are applied to both splits as they are. Fitted ones (weighted,
stack, greedy) are refitted on the whole fit split and applied to the report split; their fit-split
probabilities are CROSS-FITTED (stratified, seeded k-fold: each fit example is predicted by a model that
never saw it), so a fit-split score never rewards memorising the fit split. Their in-sample fit-split
probabilities are kept as well, to show how optimistic they would have been.

Optional temperature scaling (every combiner but vote) fits one scalar T > 0 on the fit-split probabilities
(the cross-fitted ones for fitted combiners) by minimising the NLL of softmax(log p / T), and applies it to
both splits; the fit-split score is then in-sample for that one parameter only.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import numpy as np
from scipy.optimize import minimize_scalar

from cnnjax.ensemble import stacking
from cnnjax.ensemble.scores import log_softmax, safe_log
from cnnjax.errors import CnnjaxError

COMBINERS = ("vote", "mean", "logit_mean", "weighted", "stack", "greedy")
FITTED = ("weighted", "stack", "greedy")
STACK_MODELS = ("logistic", "mlp")

# A fitted combiner: fit(log_probs, labels) -> (predict(log_probs) -> probs, info).
Predictor = Callable[[np.ndarray], np.ndarray]
Fitter = Callable[[np.ndarray, np.ndarray], tuple[Predictor, dict[str, Any]]]


class CombinerError(CnnjaxError, ValueError):
    """A combiner that does not exist, or options it cannot run with."""


@dataclasses.dataclass
class CombinerOutput:
    """Probabilities on both splits plus what was fitted (`info`: weights, counts, temperature, notes).

    `fit_rank`/`report_rank` order the classes when the probabilities alone do not (vote); `has_nll` is
    false when the NLL is undefined; `in_sample_fit_probs` are a fitted combiner's non-cross-fitted ones.
    """

    fit_probs: np.ndarray
    report_probs: np.ndarray
    info: dict[str, Any]
    fit_rank: np.ndarray | None = None
    report_rank: np.ndarray | None = None
    has_nll: bool = True
    in_sample_fit_probs: np.ndarray | None = None


# ------------------------------------------------------------------------------------------- unfitted


def vote(log_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of the member argmaxes: (vote shares counts/M, class ranking).

    Ties between the most-voted classes go to the class with the higher mean member probability (not to
    the lowest class index, as scikit-learn's VotingClassifier does): the members' confidence is the
    natural tie-breaker and does not favour low class ids. The ranking is votes first, then mean
    probability (for top-5); since the mean probability is in [0, 1], `votes + 0.5 * mean_prob` orders
    exactly lexicographically. The shares are the vote's "probabilities" for ECE and Brier; its NLL is
    undefined (reported as None) because a class nobody voted for has probability 0.
    """
    m, n, c = log_probs.shape
    winners = log_probs.argmax(2)  # (M, N)
    counts = np.bincount((np.arange(n)[None, :] * c + winners).ravel(), minlength=n * c).reshape(n, c)
    mean_prob = np.exp(log_probs).mean(0)
    return counts / m, counts + 0.5 * mean_prob


def mean(log_probs: np.ndarray) -> np.ndarray:
    """Average of the member probabilities."""
    return np.exp(log_probs).mean(0)


def logit_mean(log_probs: np.ndarray) -> np.ndarray:
    """softmax of the mean log-probability (a renormalised geometric mean of the member probabilities)."""
    return np.exp(log_softmax(log_probs.mean(0)))


def _label_probs(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(M, N) probability each member gives the true label: all the NLL of a weighted average needs."""
    return np.exp(log_probs[:, np.arange(len(labels)), labels])


def _average(weights: np.ndarray) -> Predictor:
    return lambda log_probs: np.tensordot(weights, np.exp(log_probs), axes=1)


# --------------------------------------------------------------------------------------------- fitted


def weighted_nll_and_grad(weights: np.ndarray, label_probs: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean NLL of sum_m w_m p_m and its gradient in w (the KKT conditions in the tests use it)."""
    mixed = weights @ label_probs
    return float(-safe_log(mixed).mean()), -(label_probs / np.maximum(mixed, 1e-300)).mean(1)


def fit_weighted(log_probs: np.ndarray, labels: np.ndarray) -> tuple[Predictor, dict[str, Any]]:
    """Simplex weights minimising the fit NLL of the weighted average, w = softmax(a), L-BFGS on a."""
    label_probs = _label_probs(log_probs, labels)

    def objective(a: np.ndarray) -> tuple[float, np.ndarray]:
        w = np.exp(a - a.max())
        w /= w.sum()
        value, grad_w = weighted_nll_and_grad(w, label_probs)
        return value, w * (grad_w - w @ grad_w)  # chain rule through the softmax

    fit = stacking.lbfgs(objective, np.zeros(len(log_probs)), gtol=1e-10)
    w = np.exp(fit.params - fit.params.max())
    w /= w.sum()
    return _average(w), {"weights": w.tolist(), "iterations": fit.iterations, "converged": fit.converged}


def greedy_rounds(num_members: int) -> int:
    return max(2 * num_members, 10)


def fit_greedy(log_probs: np.ndarray, labels: np.ndarray) -> tuple[Predictor, dict[str, Any]]:
    """Caruana et al. (2004) forward selection with replacement, on the fit-split NLL of the averaged probabilities.

    Starts from the best single member, adds the member that most lowers the NLL, for `greedy_rounds(M)`
    rounds, and keeps the best prefix (the earliest one on ties): the member counts sum to its length.
    """
    label_probs = _label_probs(log_probs, labels)
    member_nll = -safe_log(label_probs).mean(1)
    picks = [int(np.argmin(member_nll))]
    total = label_probs[picks[0]].copy()
    path = [float(member_nll[picks[0]])]
    for size in range(2, greedy_rounds(len(log_probs)) + 1):
        candidates = -safe_log((total[None, :] + label_probs) / size).mean(1)
        best = int(np.argmin(candidates))
        picks.append(best)
        total += label_probs[best]
        path.append(float(candidates[best]))
    keep = int(np.argmin(path)) + 1
    counts = np.bincount(picks[:keep], minlength=len(log_probs))
    info = {"counts": counts.tolist(), "rounds": keep, "nll_path": path, "weights": (counts / keep).tolist()}
    return _average(counts / keep), info


def _stack_features(log_probs: np.ndarray) -> np.ndarray:
    """(N, M*C): each example's member log-probabilities side by side."""
    m, n, c = log_probs.shape
    return log_probs.transpose(1, 0, 2).reshape(n, m * c)


# The meta-learners' settings that a spec such as `logistic(C=0.01)` or `mlp(hidden=16,alpha=3)` may change.
STACK_OPTIONS = {"logistic": {"C": float}, "mlp": {"hidden": int, "alpha": float}}


def parse_stack_model(spec: str) -> tuple[str, dict[str, Any]]:
    """`name` or `name(key=value,...)` -> (name, options); a one-line `CombinerError` otherwise."""
    match = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", spec)
    if match is None or match[1] not in STACK_MODELS:
        raise CombinerError(f"unknown stack model {spec!r}; valid: {', '.join(STACK_MODELS)}, optionally with "
                            "settings, e.g. logistic(C=0.1) or mlp(hidden=16,alpha=3)")
    name, options = match[1], {}
    for item in filter(None, (part.strip() for part in (match[2] or "").split(","))):
        key, _, text = item.partition("=")
        kind = STACK_OPTIONS[name].get(key.strip())
        try:
            value = kind(text) if kind is not None else None
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise CombinerError(f"stack model {spec!r}: {item!r} is not one of its settings with a positive value "
                                f"({', '.join(f'{k}=<{t.__name__}>' for k, t in STACK_OPTIONS[name].items())})")
        options[key.strip()] = value
    return name, options


def check_stack_model(model: str) -> None:
    parse_stack_model(model)


def stack_fitter(model: str = "logistic", *, c_reg: float = 1.0, hidden: int = 32, alpha: float = 10.0,
                 seed: int = 0) -> Fitter:
    """A stacking fit on the concatenated member log-probabilities (the meta-learner of `stacking`); `model`
    may carry settings (`logistic(C=0.01)`) that override the keyword defaults."""
    model, options = parse_stack_model(model)
    c_reg, hidden, alpha = options.get("C", c_reg), options.get("hidden", hidden), options.get("alpha", alpha)

    def fit(log_probs: np.ndarray, labels: np.ndarray) -> tuple[Predictor, dict[str, Any]]:
        features, num_classes = _stack_features(log_probs), log_probs.shape[2]
        if model == "logistic":
            meta = stacking.fit_logistic(features, labels, num_classes, c_reg)
            info = {"model": model, "C": c_reg}
        else:
            meta = stacking.fit_mlp(features, labels, num_classes, hidden=hidden, alpha=alpha, seed=seed)
            info = {"model": model, "hidden": hidden, "alpha": alpha, "seed": seed}
        info.update(iterations=meta.fit.iterations, converged=meta.fit.converged)
        return (lambda lp: np.exp(meta.log_proba(_stack_features(lp)))), info

    return fit


# ------------------------------------------------------------------------------------ cross-fitting


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold id of every example: each class shuffled (seeded) and dealt round-robin, continuing across classes.

    So every fold holds floor or ceil of n_c / folds examples of each class c, and fold sizes differ by <= 1.
    """
    labels = np.asarray(labels)
    if not 2 <= folds <= len(labels):
        raise CombinerError(f"cross-fitting needs 2 <= folds <= {len(labels)} (fit examples), got {folds}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), np.int64)
    dealt = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold_of[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold_of


def cross_fit(fitter: Fitter, log_probs: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold probabilities: each fold predicted by a fit on the other folds."""
    fold_of = stratified_folds(labels, folds, seed)
    out = np.empty(log_probs.shape[1:], np.float64)
    for f in range(folds):
        held = fold_of == f
        predict, _ = fitter(log_probs[:, ~held], labels[~held])
        out[held] = predict(log_probs[:, held])
    return out


# ------------------------------------------------------------------------------------ temperature


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    return np.exp(log_softmax(safe_log(probs) / temperature))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (1e-2, 1e2)) -> float:
    """T > 0 minimising the NLL of softmax(log p / T); a bounded 1-D search over log T."""
    log_p = safe_log(probs)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-log_softmax(log_p / np.exp(log_t))[rows, labels].mean())

    res = minimize_scalar(nll, bounds=np.log(bounds), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


# --------------------------------------------------------------------------------------------- API


def _fitter(name: str, stack_model: str, seed: int) -> Fitter:
    if name == "weighted":
        return fit_weighted
    if name == "greedy":
        return fit_greedy
    return stack_fitter(stack_model, seed=seed)


def check_names(names: Any) -> None:
    """Refuse unknown combiner names before any work is done."""
    unknown = [n for n in names if n not in COMBINERS]
    if unknown:
        raise CombinerError(f"unknown combiner {', '.join(map(repr, unknown))}; valid: {', '.join(COMBINERS)}")


def run_combiner(name: str, fit_lp: np.ndarray, fit_labels: np.ndarray, report_lp: np.ndarray, *, folds: int = 5,
                 seed: int = 0, temperature_scaling: bool = False, stack_model: str = "logistic") -> CombinerOutput:
    """Combine member log-probabilities (M, N, C) of both splits; only the fit split's labels are used."""
    check_names([name])
    with stacking.single_threaded_blas():
        return _run(name, fit_lp, np.asarray(fit_labels), report_lp, folds, seed, temperature_scaling, stack_model)


def _run(name: str, fit_lp: np.ndarray, fit_labels: np.ndarray, report_lp: np.ndarray, folds: int, seed: int,
         temperature_scaling: bool, stack_model: str) -> CombinerOutput:
    if name == "vote":
        (fit_probs, fit_rank), (report_probs, report_rank) = vote(fit_lp), vote(report_lp)
        info = {"tie_break": "higher mean member probability"}
        if temperature_scaling:
            info["note"] = "temperature scaling does not apply to vote shares"
        return CombinerOutput(fit_probs, report_probs, info, fit_rank, report_rank, has_nll=False)
    in_sample = None
    if name in FITTED:
        fitter = _fitter(name, stack_model, seed)
        fit_probs = cross_fit(fitter, fit_lp, fit_labels, folds, seed)
        predict, info = fitter(fit_lp, fit_labels)
        in_sample, report_probs = predict(fit_lp), predict(report_lp)
        info["cross_fit"] = {"folds": folds, "seed": seed}
    else:
        combine = mean if name == "mean" else logit_mean
        fit_probs, report_probs, info = combine(fit_lp), combine(report_lp), {}
    if temperature_scaling:
        t = fit_temperature(fit_probs, fit_labels)
        fit_probs, report_probs = apply_temperature(fit_probs, t), apply_temperature(report_probs, t)
        in_sample = None if in_sample is None else apply_temperature(in_sample, t)
        info["temperature"] = t
    return CombinerOutput(fit_probs, report_probs, info, in_sample_fit_probs=in_sample)
