"""Ensembles of members that stream their data (ImageNet's path) on the fake ILSVRC archive: the members'
logits come from the same streamed evaluation as `eval.py`, are digested from the stored examples, cached,
and combined like any others."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnjax.config import base_config
from cnnjax.ensemble import members as member_lib, predictions
from cnnjax.ensemble.run import evaluate_ensemble
from cnnjax.evaluate.run import evaluate_workdir
from cnnjax.train import loop
from tests.data.fake_imagenet import fake_imagenet  # noqa: F401 (a fixture)

SPLITS = ("train", "validation")  # the fake archive, like ImageNet, has no test split


def _train(workdir, data_dir, seed: int):
    config = base_config()
    for key, value in {"model": "mlp", "dataset": "imagenet2012", "data_dir": data_dir, "input_pipeline": "stream",
                       "num_train_examples": 16, "batch_size": 8, "eval_batch_size": 8, "num_epochs": 1,
                       "progress_bar": False, "seed": seed}.items():
        config[key] = value
    config.stream.crop_size, config.stream.resize_size = 32, 36
    loop.train_and_evaluate(config, workdir)
    return workdir


@pytest.fixture(scope="module")
def streamed(tmp_path_factory, fake_imagenet):  # noqa: F811
    root = tmp_path_factory.mktemp("streamed")
    return [_train(root / f"m{seed}", fake_imagenet, seed) for seed in (0, 1)]


def test_streamed_members_score_as_eval_py_and_are_cached(streamed, tmp_path):
    members = member_lib.resolve([str(w) for w in streamed])
    data = predictions.load_member_data(members, SPLITS)
    assert data[0].digests == data[1].digests and data[0].stream is not None
    first = predictions.member_predictions(data, SPLITS)
    assert first.computed == 4 and first.labels["validation"].shape == (10,)
    for i, workdir in enumerate(streamed):
        result = evaluate_workdir(workdir, "validation", out=tmp_path / f"{i}.json")
        np.testing.assert_array_equal(first.logits["validation"][i], np.load(result["logits_npy"]))
    again = predictions.member_predictions(data, SPLITS)
    assert again.cached == 4 and again.computed == 0
    np.testing.assert_array_equal(again.logits["train"], first.logits["train"])


def test_an_ensemble_of_streamed_members_reports(streamed, tmp_path):
    evaluate_ensemble([str(w) for w in streamed], tmp_path / "ens", "mean,weighted", fit_split="train",
                      report_split="validation", folds=2)
    report = json.loads((tmp_path / "ens" / "report.json").read_text())
    assert report["num_examples"] == {"fit": 30, "report": 10} and report["dataset"] == "imagenet2012"
    assert set(report["combiners"]) == {"mean", "weighted"}
