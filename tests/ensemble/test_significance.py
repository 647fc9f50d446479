"""McNemar against a hand-computed binomial; the multinomial bootstrap against brute-force resampling and coverage."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from cnnjax.ensemble.significance import mcnemar, paired_bootstrap


def _pair(b: int, c: int, both_right: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    member = np.array([1] * b + [0] * c + [1] * both_right + [0] * both_wrong, bool)
    combiner = np.array([0] * b + [1] * c + [1] * both_right + [0] * both_wrong, bool)
    return member, combiner


def test_mcnemar_by_hand():
    member, combiner = _pair(b=2, c=8, both_right=50, both_wrong=7)
    result = mcnemar(member, combiner)
    # two-sided exact: 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert (result["b"], result["c"]) == (2, 8)
    assert result["p"] == pytest.approx(2 * sum(comb(10, k) for k in range(3)) / 2 ** 10, abs=1e-12)
    assert mcnemar(*_pair(b=5, c=5, both_right=3, both_wrong=0))["p"] == pytest.approx(1.0)


def test_mcnemar_without_discordant_examples_is_one():
    assert mcnemar(*_pair(0, 0, 10, 3)) == {"b": 0, "c": 0, "p": 1.0}


def test_bootstrap_matches_brute_force_resampling():
    member, combiner = _pair(b=4, c=9, both_right=20, both_wrong=7)  # N = 40
    n = len(member)
    fast = paired_bootstrap(member, combiner, samples=20_000, seed=0)
    rng = np.random.default_rng(123)
    d = combiner.astype(int) - member.astype(int)
    brute = d[rng.integers(0, n, size=(20_000, n))].mean(1)
    lo, hi = np.quantile(brute, [0.025, 0.975])
    assert fast["diff"] == pytest.approx(5 / 40)
    # both are Monte-Carlo estimates of the same quantiles of a lattice (step 1/N) distribution
    assert abs(fast["lo"] - lo) <= 1 / n + 1e-12 and abs(fast["hi"] - hi) <= 1 / n + 1e-12


def test_bootstrap_is_seeded():
    member, combiner = _pair(b=30, c=45, both_right=300, both_wrong=100)
    assert paired_bootstrap(member, combiner, seed=3) == paired_bootstrap(member, combiner, seed=3)


def test_bootstrap_interval_covers_the_true_difference():
    # true per-example P(d=+1) = 0.15, P(d=-1) = 0.10: difference 0.05. 300 data sets of N = 300:
    # coverage should be ~0.95; 0.90 is ~4 standard errors (sqrt(.95 * .05 / 300) = 0.0126) below it.
    rng = np.random.default_rng(0)
    covered = 0
    for rep in range(300):
        d = rng.choice([-1, 0, 1], size=300, p=[0.10, 0.75, 0.15])
        member, combiner = d == -1, d == 1
        ci = paired_bootstrap(member, combiner, samples=2000, seed=rep)
        covered += ci["lo"] <= 0.05 <= ci["hi"]
    assert 0.90 <= covered / 300 <= 0.99
