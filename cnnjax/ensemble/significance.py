"""Is a combiner better than the best member on the report split? Paired bootstrap CI and McNemar's exact test.

Both compare per-example top-1 correctness on the SAME examples, so the (large) variation between examples
cancels out, unlike comparing two independent accuracy intervals.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

BOOTSTRAP_SAMPLES = 10_000


def paired_bootstrap(member_correct: np.ndarray, combiner_correct: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES,
                     level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap CI of top1(combiner) - top1(member), resampling examples with replacement.

    The per-example difference d_i = combiner_i - member_i takes only the values -1, 0, 1, and the mean of
    a resample depends only on how many of each it drew: resampling N examples with replacement is exactly
    a multinomial(N, [p-, p0, p+]) draw of those counts. So the B resamples cost O(B), not O(B*N).
    """
    d = np.asarray(combiner_correct, np.int64) - np.asarray(member_correct, np.int64)
    n = len(d)
    shares = np.array([(d == -1).sum(), (d == 0).sum(), (d == 1).sum()]) / n
    counts = np.random.default_rng(seed).multinomial(n, shares, size=samples)
    diffs = (counts[:, 2] - counts[:, 0]) / n
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi)}


def mcnemar(member_correct: np.ndarray, combiner_correct: np.ndarray) -> dict[str, float | int]:
    """McNemar's exact test: b = member right & combiner wrong, c = member wrong & combiner right.

    Under "equally accurate" each discordant example is b or c with probability 1/2, so p is the two-sided
    exact binomial test of b out of b + c (p = 1 when there is no discordant example).
    """
    member, combiner = np.asarray(member_correct, bool), np.asarray(combiner_correct, bool)
    b, c = int((member & ~combiner).sum()), int((~member & combiner).sum())
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return {"b": b, "c": c, "p": float(p)}
