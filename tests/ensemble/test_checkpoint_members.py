"""The evaluator's checkpoint side on real runs: member specs, the predictions cache, grouped inference, the
data agreement check and `evaluate_ensemble` end to end. Tiny in-process runs on a slice of real
Fashion-MNIST (an MLP and a LeNet-5 on 512 examples, validation 256, one or two epochs)."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil

import numpy as np
import pytest

from cnnjax.ensemble import members as member_lib, predictions
from cnnjax.ensemble.members import MemberError
from cnnjax.errors import CnnjaxError
from cnnjax.ensemble.run import EnsembleError, evaluate_ensemble
from cnnjax.evaluate.exact import predict_logits, preprocess_predict_fn
from cnnjax.evaluate.run import evaluate_workdir, load_split_for
from cnnjax.groups import write_members
from tests.train.tiny_runs import train_run
from cnnjax.train.checkpoint import CheckpointError, StepNotFoundError

TINY = {"model": "mlp", "num_train_examples": 512, "validation_size": 256, "batch_size": 128,
        "eval_batch_size": 1000, "progress_bar": False, "log_every_steps": 4, "num_epochs": 1}
SPLITS = ("validation", "test")


def _train(workdir: pathlib.Path, **kw) -> pathlib.Path:
    return train_run(workdir, {**TINY, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("runs")
    _train(root / "mlp0", seed=0)
    # two checkpoints, each the end of a cosine cycle: mlp1@all and mlp1@snapshots have 2 members
    _train(root / "mlp1", seed=1, num_epochs=2, schedule="cyclic_cosine", num_cycles=2)
    _train(root / "lenet", model="lenet5", seed=2)
    _train(root / "other_carve", seed=3, validation_seed=7)
    write_members(root / "group", "sweep", [{"workdir": "a"}, {"workdir": "b"}])
    for name, source in (("a", "mlp1"), ("b", "mlp0")):  # a group whose members are copies, best first
        shutil.copytree(root / source, root / "group" / name, ignore=shutil.ignore_patterns("predictions"))
    return root


def _names(specs: list[str], root: pathlib.Path) -> list[tuple[str, int]]:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return [(m.name, m.step) for m in member_lib.resolve(specs)]
    finally:
        os.chdir(cwd)


def test_specs_resolve_to_workdirs_steps_globs_and_groups(runs):
    assert _names(["mlp0", "mlp1@4"], runs) == [("mlp0", 4), ("mlp1@4", 4)]
    assert _names(["mlp1@all", "lenet"], runs) == [("mlp1@4", 4), ("mlp1@8", 8), ("lenet", 4)]
    assert _names(["mlp1@snapshots"], runs) == [("mlp1@4", 4), ("mlp1@8", 8)]
    assert [n for n, _ in _names(["mlp*"], runs)] == ["mlp0", "mlp1"]
    assert _names(["group"], runs) == [("group/a", 8), ("group/b", 4)]
    assert _names(["group@top1", "mlp0"], runs) == [("group/a", 8), ("mlp0", 4)]


@pytest.mark.parametrize("specs, expected, error", [
    (["mlp0", "nowhere"], "member 'nowhere': nowhere does not exist", MemberError),
    (["mlp0", "mlp1@99"], "no checkpoint for step 99", StepNotFoundError),
    (["mlp0"], "an ensemble needs at least 2 members, the specs give mlp0", MemberError),
    (["mlp0", "mlp0@4"], "mlp0@4 is listed twice (also as mlp0)", MemberError),
    (["mlp0", "zz*"], "member pattern 'zz*' matches no training workdir", MemberError),
    (["mlp0", "mlp1@top2"], "@topK is for a group of runs", MemberError),
    (["group@top3", "mlp0"], "lists 2 members, so top1..top2", MemberError),
    (["group@4", "mlp0"], "is a group of runs; use group or group@topK", MemberError),
    (["mlp0", "empty"], "is not a training workdir (no run.json) nor a group", MemberError),
    (["mlp0@snapshots", "mlp1"], "no snapshot (schedule=cyclic_cosine keeps one per cycle)", CheckpointError),
])
def test_bad_specs_are_one_line_errors_naming_the_culprit(runs, specs, expected, error):
    (runs / "empty").mkdir(exist_ok=True)
    with pytest.raises(error) as info:
        _names(specs, runs)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_member_without_checkpoints_and_a_corrupt_group_are_named(runs, tmp_path):
    untrained = tmp_path / "untrained"
    shutil.copytree(runs / "mlp0", untrained, ignore=shutil.ignore_patterns("checkpoints", "predictions"))
    (untrained / "checkpoints").mkdir()
    with pytest.raises(CheckpointError, match="member 'untrained': no checkpoint in"):
        _names(["untrained", str(runs / "mlp0")], tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "members.json").write_text("{not json")
    with pytest.raises(CnnjaxError, match="members.json is corrupt"):
        _names(["bad", str(runs / "mlp0")], tmp_path)


def _rounding_bound(logits: np.ndarray) -> float:
    """How far two float32 evaluations of the same network may differ: the longest reduction here is the
    MLP's first layer over 784 pixels (n u = 784 x 2^-24 relative), times 4 for the layers it passes
    through, relative to the logit scale."""
    return 4 * 784 * 2.0 ** -24 * float(np.abs(logits).max())


def test_grouped_logits_equal_the_single_checkpoint_path_and_are_cached(runs, tmp_path):
    members = member_lib.resolve([str(runs / "mlp0"), str(runs / "mlp1@all"), str(runs / "lenet")])
    data = predictions.load_member_data(members, SPLITS)
    first = predictions.member_predictions(data, SPLITS)
    assert first.computed == 2 * len(members) and first.cached == 0
    # The same members through single-checkpoint evaluation (eval.py --workdir, one at a time).
    for i, member in enumerate(members):
        result = evaluate_workdir(member.workdir, "test", member.step, out=tmp_path / f"{i}.json")
        single = np.load(result["logits_npy"])
        assert np.abs(first.logits["test"][i] - single).max() <= _rounding_bound(single)
    again = predictions.member_predictions(data, SPLITS)
    assert again.computed == 0 and again.cached == 2 * len(members)
    for split in SPLITS:
        np.testing.assert_array_equal(again.logits[split], first.logits[split])
    assert not list(runs.glob("*/predictions/.*.tmp"))


def test_the_group_forward_matches_one_member_at_a_time_to_float32_rounding(runs):
    """Stacked members, vmapped or run in turn, agree with one member at a time to float32 rounding."""
    members = member_lib.resolve([str(runs / "mlp0"), str(runs / "mlp1")])
    data = predictions.load_member_data(members, SPLITS)
    grouped = {vectorize: predictions.member_predictions(data, SPLITS, use_cache=False, vectorize=vectorize)
               .logits["validation"] for vectorize in (False, True)}
    from cnnjax import sharding
    from cnnjax.data.pipeline import replicate
    from cnnjax.evaluate.restore import abstract_variables, restore_variables
    from cnnjax.train import experiment
    from cnnjax.train.checkpoint import open_read_only

    mesh = sharding.make_mesh()
    for i, d in enumerate(data):
        net = experiment.build_model(d.config, d.meta.num_classes, d.meta.image_shape)
        with open_read_only(d.member.workdir) as ckpt:
            variables, _ = restore_variables(ckpt, d.member.step, abstract_variables(net, d.meta.image_shape, mesh))
        single = predict_logits(preprocess_predict_fn(net, d.stats, mesh), variables,
                                replicate(d.splits["validation"], mesh), 100, mesh)
        for logits in grouped.values():
            assert np.abs(logits[i] - single).max() <= _rounding_bound(single)


def test_a_changed_checkpoint_or_a_damaged_cache_file_is_recomputed(runs, tmp_path, caplog):
    for name in ("mlp0", "mlp1"):
        shutil.copytree(runs / name, tmp_path / name, ignore=shutil.ignore_patterns("predictions"))
    members = member_lib.resolve([str(tmp_path / "mlp0"), str(tmp_path / "mlp1")])
    data = predictions.load_member_data(members, SPLITS)
    predictions.member_predictions(data, SPLITS)
    cached = sorted((tmp_path / "mlp0" / "predictions").glob("*.npz"))
    assert len(cached) == 2
    cached[0].write_bytes(b"garbage")  # damaged: ignored with a warning, recomputed, replaced
    with caplog.at_level(logging.WARNING, logger="cnnjax"):
        again = predictions.member_predictions(data, SPLITS)
    assert again.computed == 1 and "damaged predictions cache" in caplog.text
    # A re-trained step (other checkpoint content, same step number) must not reuse the logits of the old one,
    # even with the old cache files still in its workdir.
    before = predictions.cache_key(data[1], "test")
    shutil.rmtree(tmp_path / "mlp1" / "checkpoints")
    _train(tmp_path / "mlp1", seed=11, num_epochs=2)
    assert predictions.cache_key(data[1], "test") != before
    after = predictions.member_predictions(data, SPLITS)
    assert after.computed == 2 and after.cached == 2
    assert not np.array_equal(after.logits["test"][1], again.logits["test"][1])


def test_an_unwritable_cache_costs_only_the_cache(runs, tmp_path, caplog):
    for name in ("mlp0", "lenet"):
        shutil.copytree(runs / name, tmp_path / name, ignore=shutil.ignore_patterns("predictions"))
        (tmp_path / name / "predictions").write_text("a file where the cache directory would go")
    members = member_lib.resolve([str(tmp_path / "mlp0"), str(tmp_path / "lenet")])
    data = predictions.load_member_data(members, SPLITS)
    with caplog.at_level(logging.WARNING, logger="cnnjax"):
        result = predictions.member_predictions(data, SPLITS)
    assert result.computed == 4 and "predictions not cached" in caplog.text
    assert result.logits["test"].shape == (2, 10_000, 10)


def test_members_with_other_examples_are_refused_before_any_inference(runs, tmp_path):
    shutil.copytree(runs / "mlp0", tmp_path / "mlp0", ignore=shutil.ignore_patterns("predictions"))
    members = member_lib.resolve([str(tmp_path / "mlp0"), str(runs / "other_carve")])
    with pytest.raises(MemberError) as info:
        predictions.load_member_data(members, SPLITS)
    assert "other_carve has other validation examples than" in str(info.value)
    assert "validation_seed=7" in str(info.value)
    assert not (tmp_path / "mlp0" / "predictions").exists()


def test_agreement_is_decided_by_the_examples_not_by_the_config_text(runs, tmp_path):
    """A member whose config differs only where the data does not (its validation_size is the whole of another
    spelling: data_dir given explicitly) is accepted; digests are of the images and labels."""
    shutil.copytree(runs / "mlp0", tmp_path / "mlp0", ignore=shutil.ignore_patterns("predictions"))
    record = json.loads((tmp_path / "mlp0" / "run.json").read_text())
    record["config"]["data_dir"] = os.path.expanduser("~/tensorflow_datasets")
    (tmp_path / "mlp0" / "run.json").write_text(json.dumps(record))
    data = predictions.load_member_data(member_lib.resolve([str(tmp_path / "mlp0"), str(runs / "mlp1")]), SPLITS)
    assert data[0].digests == data[1].digests
    assert data[0].digests["test"] == predictions._digest(load_split_for(data[1].config, "test")[1])


def test_evaluate_ensemble_writes_the_documented_report(runs, tmp_path):
    result = evaluate_ensemble([str(runs / "mlp0"), str(runs / "mlp1"), str(runs / "lenet")], tmp_path / "ens",
                               "vote,mean,stack", folds=2)
    report = json.loads((tmp_path / "ens" / "report.json").read_text())
    assert report["fit_split"] == "validation" and report["report_split"] == "test"
    assert report["num_examples"] == {"fit": 256, "report": 10_000}
    assert [m["name"] for m in report["members"]] == [str(runs / n) for n in ("mlp0", "mlp1", "lenet")]
    assert [m["step"] for m in report["members"]] == [4, 8, 4]
    assert set(report["combiners"]) == {"vote", "mean", "stack"}
    for row in report["combiners"].values():
        assert {"top1", "top5", "nll", "ece", "brier", "vs_best"} <= set(row)
    assert report["combiners"]["vote"]["nll"] is None
    member_top1 = [m["top1"] for m in report["members"]]
    assert report["diversity"]["oracle_top1"] >= max(member_top1)
    assert result["inference"]["computed"] == 0  # earlier tests cached these members' logits
    for name in ("report.md", "size_curve.png", "reliability.png", "disagreement.png"):
        assert (tmp_path / "ens" / name).stat().st_size > 0


@pytest.mark.parametrize("kwargs, expected", [
    ({"fit_split": "test"}, "are both 'test'"),
    ({"combiners": "vote,median"}, "unknown combiner 'median'"),
    ({"folds": 1}, "--folds must be at least 2"),
])
def test_bad_ensemble_options_fail_before_any_work(runs, tmp_path, kwargs, expected):
    with pytest.raises(EnsembleError, match=expected):
        evaluate_ensemble([str(runs / "mlp0"), str(runs / "mlp1")], tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_the_report_may_not_go_into_a_members_run_files(runs, tmp_path):
    (tmp_path / "file").write_text("")
    for out, expected in ((runs / "mlp0" / "checkpoints", "inside the training run"),
                          (runs / "mlp0", "inside the training run"), (tmp_path / "file", "is a file")):
        with pytest.raises(EnsembleError, match=expected):
            evaluate_ensemble([str(runs / "mlp0"), str(runs / "mlp1")], out)


def test_eval_py_members_prints_the_summary_and_writes_the_report(runs, tmp_path):
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    cmd = [sys.executable, str(root / "eval.py"), "--members", str(runs / "mlp*"), str(runs / "lenet"),
           "--combiners", "mean,weighted", "--out", str(tmp_path / "ens")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| mean |" in result.stdout and "| weighted |" in result.stdout and "| vote |" not in result.stdout
    assert "3 members on fashion_mnist" in result.stdout
    assert json.loads((tmp_path / "ens" / "report.json").read_text())["settings"]["folds"] == 5
