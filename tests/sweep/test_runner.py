"""Sweeps end to end, in-process on a tiny slice of real Fashion-MNIST: tables, members.json, resuming, CV.

Each run is the MLP on 512 examples for one epoch (8 steps of 64), so a run costs about two seconds.
"""

from __future__ import annotations

import csv
import json
import pathlib
import signal
import subprocess
import sys
import types

import pytest

from cnnjax.config import ConfigError
from cnnjax.errors import CnnjaxError
from cnnjax.sweep.runner import STATE_FILE, SweepSpec, best_validation_top1, run_sweep
from cnnjax.sweep.space import SweepError

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs/fashion_mnist/mlp.py")
TINY = ("num_train_examples=512", "validation_size=256", "num_epochs=1", "batch_size=64", "progress_bar=false",
        "log_every_steps=8")
POINTS = (("learning_rate=1e-3",), ("learning_rate=3e-3",))


def recording_train(preempt: tuple[str, ...] = ()):
    """train_and_evaluate that records which workdirs it was called on; those in `preempt` stop at once."""
    from cnnjax.train.loop import train_and_evaluate

    calls: list[str] = []

    def train(config, workdir):
        calls.append(pathlib.Path(workdir).as_posix())
        if calls[-1].endswith(preempt):
            return types.SimpleNamespace(preempted=True, stop_signal=signal.SIGTERM)
        return train_and_evaluate(config, workdir)

    return train, calls


def ends(calls: list[str]) -> list[str]:
    return [pathlib.PurePath(c).name for c in calls]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2-point sweep whose second run is stopped by SIGTERM, then resumed (and re-run when finished)."""
    workdir = tmp_path_factory.mktemp("sweep")
    spec = SweepSpec(CONFIG, TINY, POINTS)
    train, first = recording_train(preempt=("001-lr-3e-3",))
    stopped = run_sweep(spec, workdir, train)
    resumed_train, second = recording_train()
    outcome = run_sweep(spec, workdir, resumed_train)
    again_train, third = recording_train()
    again = run_sweep(spec, workdir, again_train)
    return types.SimpleNamespace(workdir=workdir, spec=spec, stopped=stopped, outcome=outcome, again=again,
                                 calls=(first, second, third))


def test_a_stopped_sweep_resumes_with_the_unfinished_run_and_skips_finished_ones(sweep):
    first, second, third = sweep.calls
    assert ends(first) == ["000-lr-1e-3", "001-lr-3e-3"] and sweep.stopped.stop_signal == signal.SIGTERM
    assert ends(second) == ["001-lr-3e-3"]  # the finished point is not trained again
    assert third == []  # a finished sweep trains nothing
    assert [r.name for r in sweep.again.ranked] == [r.name for r in sweep.outcome.ranked]


def test_sweep_writes_ranked_tables_and_members_best_first(sweep):
    ranked = sweep.outcome.ranked
    assert sorted(r.name for r in ranked) == ["000-lr-1e-3", "001-lr-3e-3"]
    assert ranked[0].score >= ranked[1].score
    for r in ranked:  # the score is the best validation top-1 the run logged
        logged = [json.loads(line) for line in (sweep.workdir / r.name / "metrics.jsonl").read_text().splitlines()]
        assert r.score == max(m["top1"] for m in logged if m["split"] == "validation")
        assert r.score == best_validation_top1(sweep.workdir / r.name)
    rows = list(csv.DictReader((sweep.workdir / "sweep.csv").open()))
    assert [(row["rank"], row["point"], row["overrides"]) for row in rows] == [
        (str(i + 1), r.name, " ".join(r.overrides)) for i, r in enumerate(ranked)]
    assert all(float(row["seconds"]) > 0 for row in rows)
    assert (sweep.workdir / "sweep.md").read_text().count("\n| ") == 3  # header + 2 points
    listing = json.loads((sweep.workdir / "members.json").read_text())
    assert listing["kind"] == "sweep" and listing["metric"] == "val_top1"
    assert listing["members"] == [{"workdir": r.name, "score": r.score, "overrides": list(r.overrides)}
                                  for r in ranked]


def test_the_members_are_an_ensemble_group(sweep):
    from cnnjax.ensemble.members import resolve

    members = resolve([f"{sweep.workdir}@top2"])
    assert [m.workdir.name for m in members] == [r.name for r in sweep.outcome.ranked]


def test_another_sweep_in_the_same_directory_is_refused_before_training(sweep):
    train, calls = recording_train()
    with pytest.raises(SweepError, match="holds another sweep .*points differ"):
        run_sweep(SweepSpec(CONFIG, TINY, POINTS[:1]), sweep.workdir, train)
    assert calls == []


def test_cv_scores_points_by_their_folds_and_refits_the_best(tmp_path):
    spec = SweepSpec(CONFIG, TINY, POINTS, cv=2, top_k=1)
    train, calls = recording_train()
    outcome = run_sweep(spec, tmp_path, train)
    best, other = outcome.ranked
    assert len(calls) == 5 and calls[-1].endswith(f"{best.name}/refit")
    state = json.loads((tmp_path / STATE_FILE).read_text())["runs"]
    for r in outcome.ranked:
        folds = [state[f"{r.name}/fold{k}"]["score"] for k in range(2)]
        assert r.fold_scores == tuple(folds) and r.score == pytest.approx(sum(folds) / 2)
        assert r.std == pytest.approx(abs(folds[0] - folds[1]) / 2)
        for k in range(2):  # each fold run trained with its own held-out fold
            config = json.loads((tmp_path / r.name / f"fold{k}" / "run.json").read_text())["config"]
            assert (config["cv_folds"], config["cv_fold"]) == (2, k)
    refit = json.loads((tmp_path / best.name / "refit" / "run.json").read_text())["config"]
    assert refit["cv_folds"] == 0 and refit["validation_size"] == 256  # the standard carve: ensemble-able
    assert best.refit_score == best_validation_top1(tmp_path / best.name / "refit")
    assert not (tmp_path / other.name / "refit").exists()
    listing = json.loads((tmp_path / "members.json").read_text())
    assert [m["workdir"] for m in listing["members"]] == [f"{best.name}/refit"]
    assert listing["members"][0]["score"] == best.score


def test_a_diverged_run_ranks_last_is_no_member_and_is_not_retried(tmp_path):
    from cnnjax.errors import NonFiniteLossError

    calls = []

    def diverging(config, workdir):
        calls.append(workdir)
        raise NonFiniteLossError("loss became NaN/Inf at training step 3; stopped.")

    outcome = run_sweep(SweepSpec(CONFIG, TINY, POINTS), tmp_path, diverging)
    assert len(calls) == 2 and [r.ok for r in outcome.ranked] == [False, False]
    assert all("loss became NaN/Inf at training step 3" in r.note for r in outcome.ranked)
    assert json.loads((tmp_path / "members.json").read_text())["members"] == []
    assert "NaN/Inf" in (tmp_path / "sweep.md").read_text()
    run_sweep(SweepSpec(CONFIG, TINY, POINTS), tmp_path, diverging)
    assert len(calls) == 2  # recorded as finished: a deterministic failure is not re-run


@pytest.mark.parametrize("argv, error, message", [
    (["--grid", "learning_rat=1e-3,3e-3"], ConfigError, "unknown config key 'learning_rat' .*did you mean"),
    (["--grid", "learning_rate"], SweepError, "must look like key=value1,value2"),
    (["--grid", "learning_rate=1e-3,3e-3", "--cv", "1"], SweepError, "--cv 1 has no held-out fold"),
    (["--grid", "learning_rate=1e-3,3e-3", "--cv", "2", "--top_k", "3"], SweepError, "--top_k 3 must be between 1 "
                                                                                       "and the sweep's 2 points"),
    (["--grid", "learning_rate=1e-3,3e-3", "--top_k", "1"], SweepError, "--top_k chooses the points refit"),
    (["--grid", "learning_rate=1e-3", "--random", "2"], SweepError, "more points than the grid's 1"),
    (["--grid", "learning_rate=1e-3", "--bogus"], CnnjaxError, "unrecognized arguments: --bogus"),
    (["--grid", "learning_rate=1e-3", "--config.validation_size=0"], SweepError, "validation_size > 0"),
])
def test_bad_flags_are_one_line_errors_before_any_training(tmp_path, argv, error, message):
    sys.path.insert(0, str(ROOT))
    try:
        import sweep as script
    finally:
        sys.path.remove(str(ROOT))
    with pytest.raises(error, match=message) as err:
        script.main(["--config", CONFIG, "--workdir", str(tmp_path / "s"), *[f"--config.{o}" for o in TINY], *argv])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "s").exists()


def test_the_script_prints_one_line_and_exits_2():
    result = subprocess.run([sys.executable, str(ROOT / "sweep.py"), "--config", CONFIG, "--workdir", "unused",
                             "--grid", "learning_rate=1e-3,,3e-3"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1:] == result.stderr.strip().splitlines()  # one line
    assert "has an empty value" in result.stderr
