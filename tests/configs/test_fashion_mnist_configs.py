"""The Fashion-MNIST configs: each loads and validates, states its command and a measured result, and the two
recipe configs (fast, accurate) run: two real steps on a slice, with every option they set (what each option
does is tested where the option lives)."""

from __future__ import annotations

import json
import math
import pathlib
import re

import pytest

from cnnjax.config import load_config
from cnnjax.train import loop

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs" / "fashion_mnist").glob("*.py"))


def test_every_config_is_found():
    assert {"configs/fashion_mnist/fast.py", "configs/fashion_mnist/accurate.py",
            "configs/fashion_mnist/default.py"} <= set(CONFIGS)


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads(path):
    assert load_config(str(ROOT / path)).dataset == "fashion_mnist"  # and validates


@pytest.mark.parametrize("name", ["default", "fast", "accurate"])
def test_recipe_states_its_command_and_measured_result(name):
    path = f"configs/fashion_mnist/{name}.py"
    doc = (ROOT / path).read_text().split('"""')[1]
    assert re.search(rf"Command:\s+python train\.py --config {re.escape(path)} --workdir \S+", doc), doc
    assert re.search(r"Expected:\s.*\d+\.\d\d% test", doc), "the docstring must state a measured test top-1"


@pytest.mark.parametrize("name", ["fast", "accurate"])
def test_recipe_config_trains(name, fashion_mnist, tmp_path):
    config = load_config(str(ROOT / f"configs/fashion_mnist/{name}.py"),
                         ["num_epochs=1", "num_train_examples=128", "validation_size=128", "batch_size=64",
                          "eval_batch_size=128", "progress_bar=false", "diagnosis=false"])
    loop.train_and_evaluate(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in records if r.get("split") == "validation"]
    assert len(validation) == 1 and validation[0]["num_examples"] == 128 and validation[0]["step"] == 2
    assert math.isfinite(validation[0]["loss"])
    assert ("ema_top1" in validation[0]) == bool(config.ema_decay)
