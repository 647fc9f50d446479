"""benchmarks/time_to_accuracy.py: the PyTorch recipe runs on the splits it is given and reports per epoch, and a
metrics line being appended is never read half-written."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tta = _load("time_to_accuracy")


def test_validation_records_skip_a_line_being_written(tmp_path):
    done = {"step": 10, "epoch": 1.0, "split": "validation", "top1": 0.9}
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 10, "split": "train", "loss": 1.0}) + "\n" +
                                            json.dumps(done) + "\n" + '{"step": 20, "split": "valid')
    assert tta._val_records(tmp_path) == [done]


@pytest.mark.torch
def test_torch_recipe_trains_on_the_given_splits_and_reports_each_epoch(tmp_path):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = {}
    for name, n in (("train", 256), ("validation", 32), ("test", 32)):
        labels = rng.integers(0, 10, n)
        # learnable: the class is the image's brightness
        arrays[f"{name}_images"] = np.clip(labels[:, None, None, None] * 25 + rng.integers(0, 8, (n, 28, 28, 1)),
                                           0, 255).astype(np.uint8)
        arrays[f"{name}_labels"] = labels.astype(np.int64)
    np.savez(tmp_path / "splits.npz", **arrays)
    outcome = tta.run_torch(tmp_path / "splits.npz", epochs=2, workdir=tmp_path, target=0.5)
    assert outcome.epochs == 2 and 0 <= outcome.best_val_top1 <= 1 and 0 <= outcome.test_top1 <= 1
    assert outcome.time_to_target_s is None or outcome.time_to_target_s <= outcome.total_s
    records = [json.loads(line) for line in (tmp_path / "torch.log").read_text().splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in records[:-1]] == [1, 2] and "test_top1" in records[-1]


def test_unknown_flags_are_usage_errors():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "time_to_accuracy.py"), "--bogus"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr
