"""SAMME boosting: the update rules against hand computations (pure), and a 2-round boost end to end."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from cnnjax.train.boosting import (ZERO_ERROR, BoostingError, BoostSpec, member_logits, round_config, run_boosting,
                                   samme_alpha, samme_top1, samme_votes, stop_reason, update_weights, weighted_error)
from tests.sweep.test_runner import CONFIG, ROOT, TINY, recording_train


def test_round_update_matches_a_hand_computation():
    w = np.array([0.1, 0.2, 0.3, 0.4])
    miss = np.array([True, False, False, True])
    err = weighted_error(w, miss)
    assert err == pytest.approx(0.5)
    alpha = samme_alpha(err, 3)  # log(0.5 / 0.5) + log(2)
    assert alpha == pytest.approx(math.log(2))
    # Missed examples are multiplied by e^alpha = 2: [0.2, 0.2, 0.3, 0.8] / 1.5
    np.testing.assert_allclose(update_weights(w, miss, alpha), [0.2 / 1.5, 0.2 / 1.5, 0.3 / 1.5, 0.8 / 1.5])
    assert samme_alpha(0.25, 10) == pytest.approx(math.log(3) + math.log(9))
    assert weighted_error(np.array([2.0, 2.0]), np.array([1, 0])) == 0.5  # unnormalised weights are fine


def test_stop_rules_at_chance_and_at_zero_error():
    assert stop_reason(0.5, 10) is None  # 10 classes: 0.5 is far better than chance (0.9)
    assert "no better than chance" in stop_reason(0.9, 10)
    assert "no better than chance" in stop_reason(0.5, 2) and stop_reason(0.49, 2) is None
    assert samme_alpha(1 - 1 / 10, 10) == pytest.approx(0.0, abs=1e-12)  # the chance boundary: alpha 0
    assert "every training example is right" in stop_reason(0.0, 10)
    assert samme_alpha(0.0, 10) == pytest.approx(math.log((1 - ZERO_ERROR) / ZERO_ERROR) + math.log(9))
    assert math.isfinite(samme_alpha(0.0, 10))


def test_samme_vote_weighs_members_by_alpha():
    predictions = np.array([[0, 1, 2], [1, 1, 0], [1, 2, 0]])  # 3 members x 3 examples
    votes = samme_votes(predictions, np.array([2.5, 1.0, 1.0]), 3)
    np.testing.assert_allclose(votes, [[2.5, 2.0, 0.0], [0.0, 3.5, 1.0], [2.0, 0.0, 2.5]])
    assert samme_top1(predictions, np.array([2.5, 1.0, 1.0]), np.array([0, 1, 0]), 3) == pytest.approx(2 / 3)
    assert samme_top1(predictions, np.array([1.0, 1.0, 1.0]), np.array([1, 1, 0]), 3) == pytest.approx(1.0)


def test_two_rounds_reweight_by_the_first_rounds_mistakes_and_write_the_group(tmp_path):
    from cnnjax.data.splits import training_examples

    spec = BoostSpec(CONFIG, TINY, rounds=2)
    train, calls = recording_train()
    state = run_boosting(spec, tmp_path, train).state
    assert [pathlib.PurePath(c).name for c in calls] == ["round0", "round1"]
    carved = training_examples(round_config(spec, tmp_path, 0))
    w0, w1 = np.load(tmp_path / "weights0.npy"), np.load(tmp_path / "weights1.npy")
    np.testing.assert_allclose(w0, np.full(512, 1 / 512))
    first = state["rounds"][0]
    # Round 0 scored again here on the carved examples: its mistakes, error, alpha and the next weights.
    config0 = json.loads((tmp_path / "round0" / "run.json").read_text())["config"]
    assert (config0["bootstrap_seed"], pathlib.Path(config0["train_sample_weights"]).name) == (0, "weights0.npy")
    from cnnjax.data.splits import load_for_config

    data = load_for_config(round_config(spec, tmp_path, 0), resample=False)
    miss = member_logits(tmp_path / "round0", round_config(spec, tmp_path, 0), data, ("train",))["train"].argmax(1) \
        != carved.labels
    assert first["train_error"] == pytest.approx(miss.mean()) and 0 < miss.mean() < 0.9
    from cnnjax.evaluate.run import evaluate_workdir

    assert first["train_error"] == pytest.approx(1 - evaluate_workdir(tmp_path / "round0", "train")["top1"])
    assert first["alpha"] == pytest.approx(math.log((1 - miss.mean()) / miss.mean()) + math.log(9))
    np.testing.assert_allclose(w1, update_weights(w0, miss, first["alpha"]))
    assert w1[miss].min() > w1[~miss].max()  # the mistakes gained weight
    members = json.loads((tmp_path / "members.json").read_text())
    assert members["kind"] == "boost"
    assert members["members"] == [{"workdir": f"round{r['round']}", "weight": r["alpha"], "error": r["train_error"]}
                                  for r in state["rounds"]]
    report = json.loads((tmp_path / "boosting.json").read_text())["report"]
    assert [row["round"] for row in report] == [0, 1]
    assert report[0]["ensemble_test_top1"] == report[0]["member_test_top1"]  # one member: the vote is it
    assert all(0.1 < row[k] <= 1 for row in report for k in row if k.endswith("_top1"))
    assert (tmp_path / "boosting.md").read_text().count("\n| ") == 3
    # Finished: re-running trains nothing; a larger --rounds continues from round 2.
    again, calls = recording_train()
    assert run_boosting(spec, tmp_path, again).state["rounds"] == state["rounds"] and calls == []
    more, calls = recording_train()
    longer = run_boosting(BoostSpec(CONFIG, TINY, rounds=3), tmp_path, more).state
    assert [pathlib.PurePath(c).name for c in calls] == ["round2"] and longer["rounds"][:2] == state["rounds"]


@pytest.mark.parametrize("overrides, rounds, message", [
    (("bootstrap_seed=3",), 2, "boosting sets bootstrap_seed itself"),
    (("validation_size=0",), 2, "set validation_size > 0"),
    ((), 0, "--rounds must be positive"),
])
def test_bad_options_are_one_line_errors(tmp_path, overrides, rounds, message):
    with pytest.raises(BoostingError, match=message) as err:
        run_boosting(BoostSpec(CONFIG, (*TINY, *overrides), rounds), tmp_path / "b")
    assert "\n" not in str(err.value) and not (tmp_path / "b").exists()


def test_the_script_refuses_bad_flags_in_one_line():
    result = subprocess.run([sys.executable, str(ROOT / "boost.py"), "--config", CONFIG, "--workdir", "unused",
                             "--rounds", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--rounds: must be positive, got 0" in result.stderr
