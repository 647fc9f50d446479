"""Meta-learners for stacking: L2 multinomial logistic regression and a one-hidden-layer MLP (NumPy + L-BFGS).

Both are fitted full-batch with scipy's L-BFGS on an analytic gradient, in float64, so a fit is a
deterministic function of its inputs (and of `seed` for the MLP's initial weights).

The logistic objective is exactly scikit-learn's `LogisticRegression(C=C_reg)` multinomial/lbfgs one,
    sum_i NLL_i + 0.5 / C_reg * ||W||^2   (W: classes x features, every class row penalised, bias not),
so the two can be compared coefficient by coefficient. The features are centred before the fit only for
conditioning: with an unpenalised bias this changes neither the optimum W nor the predictions (the bias
absorbs the shift and is mapped back).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from cnnjax.ensemble.scores import log_softmax


@dataclasses.dataclass(frozen=True)
class FitResult:
    """An L-BFGS outcome in the form reports quote: did it converge, in how many iterations."""

    params: np.ndarray
    iterations: int
    converged: bool


def lbfgs(objective: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
          max_iter: int = 1000, gtol: float = 1e-7) -> FitResult:
    """Minimise a (value, gradient) function; tolerances tight enough that fits agree with sklearn's to ~1e-4."""
    res = minimize(objective, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": gtol, "ftol": 1e-13, "maxcor": 20})
    return FitResult(res.x, int(res.nit), bool(res.success))


def _nll_and_residual(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed NLL of softmax(logits) and its gradient with respect to the logits (softmax - onehot)."""
    log_p = log_softmax(logits)
    rows = np.arange(len(labels))
    residual = np.exp(log_p)
    residual[rows, labels] -= 1.0
    return float(-log_p[rows, labels].sum()), residual


@dataclasses.dataclass(frozen=True)
class Logistic:
    """A fitted multinomial logistic regression: logits = X @ coef.T + intercept."""

    coef: np.ndarray  # (classes, features)
    intercept: np.ndarray  # (classes,)
    fit: FitResult

    def log_proba(self, features: np.ndarray) -> np.ndarray:
        return log_softmax(features @ self.coef.T + self.intercept)


def fit_logistic(features: np.ndarray, labels: np.ndarray, num_classes: int, c_reg: float = 1.0, *,
                 max_iter: int = 1000) -> Logistic:
    """L2 multinomial logistic regression (scikit-learn's objective, see the module docstring).

    L-BFGS runs on V with W = V @ P, P = (X'X/N + I/(C_reg N))^(-1/2) (X centred): an exact change of
    variables (same objective, same optimum) that whitens the strongly correlated member log-probabilities,
    cutting the iterations about 4x.
    """
    x = np.asarray(features, np.float64)
    shift = x.mean(0)
    x = x - shift
    n, d = x.shape
    k = num_classes
    eigval, eigvec = np.linalg.eigh(x.T @ x / n + np.eye(d) / (c_reg * n))
    precondition = (eigvec / np.sqrt(eigval)) @ eigvec.T  # symmetric

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k * d].reshape(k, d) @ precondition, theta[k * d:]
        loss, residual = _nll_and_residual(x @ w.T + b, labels)
        grad_w = (x.T @ residual).T + w / c_reg  # x.T @ r, not r.T @ x: the latter hits a slow BLAS path
        grad = np.concatenate([(grad_w @ precondition).ravel(), residual.sum(0)])
        return (loss + 0.5 / c_reg * float((w * w).sum())) / n, grad / n

    fit = lbfgs(objective, np.zeros(k * d + k), max_iter=max_iter)
    w, b = fit.params[:k * d].reshape(k, d) @ precondition, fit.params[k * d:]
    return Logistic(w, b - w @ shift, fit)


@dataclasses.dataclass(frozen=True)
class Mlp:
    """A fitted one-hidden-layer tanh MLP on standardised features."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    fit: FitResult

    def log_proba(self, features: np.ndarray) -> np.ndarray:
        hidden = np.tanh(((features - self.mean) / self.scale) @ self.w1 + self.b1)
        return log_softmax(hidden @ self.w2 + self.b2)


def fit_mlp(features: np.ndarray, labels: np.ndarray, num_classes: int, *, hidden: int = 32, alpha: float = 10.0,
            seed: int = 0, max_iter: int = 200) -> Mlp:
    """Minimise sum NLL + 0.5 * alpha * (||W1||^2 + ||W2||^2) by L-BFGS from a seeded Glorot-scaled start.

    Features are standardised with the training statistics (the hidden layer's scale needs it; a constant
    feature keeps scale 1). Defaults measured on benchmarks/ensemble_combine.py's members (10 x 8k fit
    examples): alpha 1 overfits (report NLL 0.53 vs 0.34 with alpha 10); 200 iterations are as good as 300.
    """
    x = np.asarray(features, np.float64)
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    x = (x - mean) / scale
    n, d = x.shape
    k, h = num_classes, hidden
    sizes = [d * h, h, h * k, k]
    cuts = np.cumsum(sizes)[:-1]

    def unpack(theta: np.ndarray):
        w1, b1, w2, b2 = np.split(theta, cuts)
        return w1.reshape(d, h), b1, w2.reshape(h, k), b2

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w1, b1, w2, b2 = unpack(theta)
        act = np.tanh(x @ w1 + b1)
        loss, residual = _nll_and_residual(act @ w2 + b2, labels)
        back = (residual @ w2.T) * (1.0 - act * act)
        grad = [x.T @ back + alpha * w1, back.sum(0), act.T @ residual + alpha * w2, residual.sum(0)]
        penalty = 0.5 * alpha * float((w1 * w1).sum() + (w2 * w2).sum())
        return (loss + penalty) / n, np.concatenate([g.ravel() for g in grad]) / n

    rng = np.random.default_rng(seed)
    theta0 = np.concatenate([rng.normal(0, np.sqrt(1.0 / d), d * h), np.zeros(h),
                             rng.normal(0, np.sqrt(1.0 / h), h * k), np.zeros(k)])
    fit = lbfgs(objective, theta0, max_iter=max_iter, gtol=1e-6)
    return Mlp(mean, scale, *unpack(fit.params), fit)


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread while fitting (threadpoolctl, a dependency).

    The meta-learners multiply small matrices (N x M*C by M*C x C) hundreds of times; OpenBLAS threads
    gain nothing there and, on a machine whose cores are busy, their spin-waiting made a stack fit 15x
    slower (measured: 20 s instead of 1.3 s for 10 members x 10k examples on a loaded 2-core VM).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
