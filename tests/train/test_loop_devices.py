"""The training loop on several forced CPU devices: full Fashion-MNIST, more steps than XLA:CPU admits in
flight per device (32), in a subprocess so a deadlock fails this test instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnjax.train.parallel import DispatchWindow
from tests.train.test_train_script import ROOT, metric_records

pytestmark = pytest.mark.slow


class _Recorder:
    """Stands in for a step's outputs: counts how often the window waited for it."""

    def __init__(self) -> None:
        self.waited = 0

    def block_until_ready(self) -> "_Recorder":
        self.waited += 1
        return self


def test_dispatch_window_waits_for_the_step_depth_dispatches_back():
    window = DispatchWindow(depth=3)
    outputs = [_Recorder() for _ in range(10)]
    for i, out in enumerate(outputs):
        window.push(out)
        assert [o.waited for o in outputs[: i + 1]] == [1] * max(0, i - 2) + [0] * min(i + 1, 3)


def test_full_fashion_mnist_epoch_on_two_forced_devices(tmp_path):
    """429 steps on 2 devices of a 2-core host; before the dispatch window this aborted after ~35 steps
    ("Termination timeout for all reduce ... only 1 of them arrived")."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                     if not f.startswith("--xla_force_host_platform_device_count"))
    env = {**os.environ, "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2"}
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs/fashion_mnist/lenet5.py"),
           "--workdir", str(tmp_path), "--config.num_epochs=1", "--config.progress_bar=false"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=420, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("a 1-epoch run on 2 forced CPU devices did not finish in 420 s (deadlock?)")
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "run.json").read_text())
    assert len(info["devices"]) == 2, info["devices"]
    validation = [r for r in metric_records(tmp_path) if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [55_000 // 128]
    assert validation[0]["num_examples"] == 5000 and validation[0]["top1"] > 0.8
