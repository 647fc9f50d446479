"""Every combiner against a straightforward reference computation, plus cross-fitting honesty and temperature."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnnjax.ensemble import combiners as comb
from cnnjax.ensemble.scores import log_softmax
from cnnjax.errors import CnnjaxError

from .helpers import members


def _lp(seed: int = 0, m: int = 4, n: int = 300, c: int = 4, **kw) -> tuple[np.ndarray, np.ndarray]:
    logits, labels = members(m, n, c, seed, **kw)
    return log_softmax(logits), labels


def test_majority_vote_of_three_independent_70_percent_classifiers_is_0784():
    # Binary task, each member independently right with probability 0.7: the vote is right when >= 2 are,
    # 0.7^3 + 3 * 0.7^2 * 0.3 = 0.784. N = 200k: standard error sqrt(.784 * .216 / N) = 0.00092; bound 4 SE.
    rng = np.random.default_rng(0)
    n = 200_000
    labels = rng.integers(0, 2, n)
    right = rng.random((3, n)) < 0.7
    predicted = np.where(right, labels, 1 - labels)
    logits = np.where(np.arange(2)[None, None, :] == predicted[..., None], 2.0, 0.0)
    shares, rank = comb.vote(log_softmax(logits))
    accuracy = np.mean(rank.argmax(1) == labels)
    assert abs(accuracy - 0.784) < 4 * np.sqrt(0.784 * 0.216 / n)


def test_vote_counts_and_tie_break_match_explicit_loops():
    lp, _ = _lp(m=5, n=200, c=4, skill=0.3)
    shares, rank = comb.vote(lp)
    probs = np.exp(lp)
    for i in range(lp.shape[1]):
        counts = [0] * 4
        for m in range(5):
            counts[int(np.argmax(lp[m, i]))] += 1
        assert shares[i].tolist() == [k / 5 for k in counts]
        tied = [c for c in range(4) if counts[c] == max(counts)]
        winner = max(tied, key=lambda c: sum(probs[m, i, c] for m in range(5)) / 5)
        assert rank[i].argmax() == winner


def test_vote_tie_goes_to_higher_mean_probability_not_lowest_index():
    # member A votes class 0 (0.5), member B class 2 (0.6): mean probability 0.30 vs 0.35 -> class 2
    probs = np.array([[[0.5, 0.4, 0.1]], [[0.1, 0.3, 0.6]]])
    shares, rank = comb.vote(np.log(probs))
    assert shares.tolist() == [[0.5, 0.0, 0.5]]
    assert rank.argmax(1).tolist() == [2]  # scikit-learn's VotingClassifier would say 0
    assert np.argsort(-rank[0]).tolist() == [2, 0, 1]  # then by mean probability among non-voted classes


def test_vote_has_no_nll_and_ignores_temperature():
    lp, y = _lp()
    out = comb.run_combiner("vote", lp, y, lp, temperature_scaling=True)
    assert not out.has_nll and "temperature" not in out.info and out.report_rank is not None


def test_mean_and_logit_mean_by_formula():
    lp, _ = _lp()
    p = np.exp(lp)
    np.testing.assert_allclose(comb.mean(lp), p.mean(0), rtol=1e-13)
    geometric = np.prod(p, axis=0) ** (1 / len(p))
    np.testing.assert_allclose(comb.logit_mean(lp), geometric / geometric.sum(1, keepdims=True), rtol=1e-10)


def test_weighted_matches_a_brute_force_grid_for_two_members():
    lp, y = _lp(m=2, n=400, skill=1.0)
    predict, info = comb.fit_weighted(lp, y)
    label_probs = np.exp(lp[:, np.arange(len(y)), y])
    grid = np.linspace(0, 1, 20_001)
    values = [comb.weighted_nll_and_grad(np.array([w, 1 - w]), label_probs)[0] for w in grid]
    fitted = comb.weighted_nll_and_grad(np.array(info["weights"]), label_probs)[0]
    assert fitted <= min(values) + 1e-9
    assert abs(info["weights"][0] - grid[int(np.argmin(values))]) <= 1e-3


def test_weighted_optimum_satisfies_kkt():
    # min over the simplex of f(w): grad_m = lambda where w_m > 0 and grad_m >= lambda where w_m = 0; for this
    # f, sum_m w_m grad_m = -1, so lambda = -1
    lp, y = _lp(m=5, n=500)
    lp[1] = log_softmax(np.random.default_rng(9).normal(size=lp[1].shape))  # a useless member: weight -> 0
    _, info = comb.fit_weighted(lp, y)
    w = np.array(info["weights"])
    _, grad = comb.weighted_nll_and_grad(w, np.exp(lp[:, np.arange(len(y)), y]))
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[1] < 1e-3
    np.testing.assert_allclose(grad[w > 1e-3], -1.0, atol=1e-5)
    assert (grad >= -1.0 - 1e-5).all()


def test_stack_matches_scikit_learn_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    lp, y = _lp(m=3, n=400, c=4)
    features = comb._stack_features(lp)
    predict, info = comb.stack_fitter("logistic")(lp, y)
    from cnnjax.ensemble.stacking import fit_logistic

    ours = fit_logistic(features, y, 4, 1.0)
    ref = linear_model.LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(features, y)
    # the same strictly convex objective: both solutions are its unique optimum up to the two optimisers'
    # tolerances (ours: projected gradient < 1e-7 on the mean objective). Coefficients are O(1).
    np.testing.assert_allclose(ours.coef, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.intercept, ref.intercept_, atol=1e-4)
    np.testing.assert_allclose(predict(lp), ref.predict_proba(features), atol=1e-5)
    assert info["converged"]


def test_stratified_folds_keep_class_proportions():
    labels = np.random.default_rng(0).choice(4, size=1003, p=[0.5, 0.3, 0.15, 0.05])
    fold_of = comb.stratified_folds(labels, 5, seed=0)
    sizes = np.bincount(fold_of)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == len(labels)
    for c in range(4):
        per_fold = np.bincount(fold_of[labels == c], minlength=5)
        n_c = (labels == c).sum()
        assert set(per_fold) <= {n_c // 5, -(-n_c // 5)}
    np.testing.assert_array_equal(fold_of, comb.stratified_folds(labels, 5, seed=0))
    assert not np.array_equal(fold_of, comb.stratified_folds(labels, 5, seed=1))
    with pytest.raises(comb.CombinerError):
        comb.stratified_folds(labels[:3], 5)


@pytest.mark.parametrize("stack_model", ["logistic", "mlp"])
def test_cross_fitting_is_not_fooled_by_noise_features(stack_model):
    # members that know nothing about the labels: a meta-learner can fit their noise in sample, but its
    # cross-fitted accuracy is chance (1/3) within 4 standard errors (sqrt(1/3 * 2/3 / 600) = 0.019)
    rng = np.random.default_rng(0)
    lp = log_softmax(rng.normal(size=(6, 600, 3)) * 2)
    y = rng.integers(0, 3, 600)
    out = comb.run_combiner("stack", lp, y, lp, stack_model=stack_model)
    crossed = np.mean(out.fit_probs.argmax(1) == y)
    in_sample = np.mean(out.in_sample_fit_probs.argmax(1) == y)
    assert abs(crossed - 1 / 3) < 4 * 0.019
    assert in_sample > crossed + 0.04


def test_greedy_starts_from_the_best_member_and_only_improves():
    lp, y = _lp(m=4, n=400, skill=0.8)
    lp[2] = log_softmax(3 * np.eye(4)[y] + np.random.default_rng(5).normal(size=(400, 4)))  # clearly better
    _, info = comb.fit_greedy(lp, y)
    member_nll = [-lp[m, np.arange(400), y].mean() for m in range(4)]
    assert int(np.argmin(member_nll)) == 2 and info["nll_path"][0] == pytest.approx(member_nll[2])
    assert info["counts"][2] == max(info["counts"]) > 0
    assert sum(info["counts"]) == info["rounds"] <= comb.greedy_rounds(4) == len(info["nll_path"])
    assert info["nll_path"][info["rounds"] - 1] == min(info["nll_path"]) <= min(member_nll)


def test_greedy_matches_an_explicit_loop():
    lp, y = _lp(m=3, n=200, skill=1.0)
    _, info = comb.fit_greedy(lp, y)
    p = np.exp(lp[:, np.arange(200), y])
    chosen = [int(np.argmin([-np.log(p[m]).mean() for m in range(3)]))]
    for _ in range(comb.greedy_rounds(3) - 1):
        scores = [-np.log((p[chosen].sum(0) + p[m]) / (len(chosen) + 1)).mean() for m in range(3)]
        chosen.append(int(np.argmin(scores)))
    path = [-np.log(p[chosen[:k]].mean(0)).mean() for k in range(1, len(chosen) + 1)]
    np.testing.assert_allclose(info["nll_path"], path, rtol=1e-12)
    keep = int(np.argmin(path)) + 1
    assert info["counts"] == np.bincount(chosen[:keep], minlength=3).tolist()


def test_temperature_scaling_recovers_a_known_temperature():
    # labels drawn from softmax(z / 2) while the member says softmax(z): the fitted T must be ~2
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20_000, 5)) * 4
    truth = np.exp(log_softmax(z / 2.0))
    y = (rng.random((20_000, 1)) > truth.cumsum(1)).sum(1)
    lp = log_softmax(z)[None]
    out = comb.run_combiner("mean", lp, y, lp, temperature_scaling=True)
    assert out.info["temperature"] == pytest.approx(2.0, abs=0.1)
    np.testing.assert_allclose(out.report_probs, comb.apply_temperature(np.exp(lp[0]), out.info["temperature"]))


@pytest.mark.parametrize("name", comb.COMBINERS)
def test_every_combiner_gives_probabilities_of_both_splits(name):
    lp, y = _lp(n=200)
    report, _ = _lp(seed=1, n=50)
    out = comb.run_combiner(name, lp, y, report, temperature_scaling=name == "weighted")
    assert out.fit_probs.shape == (200, 4) and out.report_probs.shape == (50, 4)
    np.testing.assert_allclose(out.fit_probs.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(out.report_probs.sum(1), 1.0, atol=1e-9)
    assert ("cross_fit" in out.info) == (name in comb.FITTED)


def test_unknown_combiner_is_a_one_line_value_error():
    lp, y = _lp(n=20)
    with pytest.raises(comb.CombinerError) as err:
        comb.run_combiner("median", lp, y, lp)
    assert isinstance(err.value, ValueError) and isinstance(err.value, CnnjaxError)
    message = str(err.value)
    assert "\n" not in message and "'median'" in message and all(n in message for n in comb.COMBINERS)
    with pytest.raises(comb.CombinerError, match="stack model"):
        comb.run_combiner("stack", lp, y, lp, stack_model="forest")


def test_stack_model_specs_carry_settings_and_bad_ones_are_one_line():
    assert comb.parse_stack_model("logistic") == ("logistic", {})
    assert comb.parse_stack_model("logistic(C=0.01)") == ("logistic", {"C": 0.01})
    assert comb.parse_stack_model(" mlp(hidden=16, alpha=3) ") == ("mlp", {"hidden": 16, "alpha": 3.0})
    for bad, expected in (("lin", "unknown stack model 'lin'"), ("logistic(C=-1)", "'C=-1' is not one"),
                          ("logistic(D=1)", "'D=1' is not one"), ("mlp(hidden=x)", "'hidden=x' is not one")):
        with pytest.raises(comb.CombinerError, match=re.escape(expected)):
            comb.parse_stack_model(bad)


def test_a_stronger_l2_shrinks_the_stacker_towards_the_prior():
    rng = np.random.default_rng(0)
    log_probs = np.log(rng.dirichlet(np.ones(3), size=(2, 300)))
    labels = rng.integers(0, 3, 300)
    norms = []
    for spec in ("logistic(C=100)", "logistic(C=0.001)"):
        predict, info = comb.stack_fitter(spec)(log_probs, labels)
        assert info["C"] == float(spec.split("=")[1].rstrip(")"))
        norms.append(np.abs(np.log(predict(log_probs)) - np.log(1 / 3)).mean())
    assert norms[1] < norms[0]
