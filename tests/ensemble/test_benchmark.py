"""Smoke run of benchmarks/ensemble_combine.py at a small size: the timed code path and its output work."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "ensemble_combine.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("ensemble_combine", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_smoke(capsys):
    bench = _load_benchmark()
    assert bench.main(["--members", "3", "--examples", "300", "--classes", "4"]) == 0
    out = capsys.readouterr().out
    assert "total analyse()" in out and ("PASS" in out or "FAIL" in out)
    assert all(name in out for name in ("vote", "mean", "logit_mean", "weighted", "stack", "greedy"))


def test_synthetic_members_are_seeded_and_correlated():
    bench = _load_benchmark()
    logits, labels = bench.synthetic_members(3, 2000, 5, seed=0)
    again, _ = bench.synthetic_members(3, 2000, 5, seed=0)
    assert logits.dtype.name == "float32" and logits.shape == (3, 2000, 5)
    assert (logits == again).all()
    wrong = logits.argmax(2) != labels
    assert (wrong[0] & wrong[1]).mean() > wrong[0].mean() * wrong[1].mean()  # errors are correlated
