"""The CPU process set-up of the entry scripts: huge-page malloc by re-executing, one XLA device per core.

Each case runs in a fresh interpreter: both settings only act before JAX starts, and this test process's JAX
has long started.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from cnnjax.cpu_runtime import (MALLOC_TUNABLE, SWITCH, _glibc_has_hugetlb_tunable, configure_cpu_devices,
                                 per_core_device_count)

ROOT = pathlib.Path(__file__).resolve().parents[1]

REEXEC = """
import json, os, sys
before = os.getpid()
from cnnjax.cpu_runtime import reexec_with_hugepage_malloc
reexec_with_hugepage_malloc()
print(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:], "tunables": os.environ.get("GLIBC_TUNABLES")}))
"""

DEVICES = """
import json, sys
from cnnjax.cpu_runtime import configure_cpu_devices
count = configure_cpu_devices(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1")
import jax
print(json.dumps({"set": count, "devices": jax.device_count()}))
"""


def run(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("GLIBC_TUNABLES", "XLA_FLAGS", "JAX_NUM_CPU_DEVICES", SWITCH)}
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**base, "JAX_PLATFORMS": "cpu", **(env or {})}, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("batch, available, expected", [
    (128, 2, 2), (128, 1, 1), (125, 2, 1), (100, 3, 2), (96, 8, 8), (1, 4, 1), (128, 64, 64), (128, 0, 1)])
def test_per_core_devices_divide_the_batch(batch: int, available: int, expected: int) -> None:
    assert per_core_device_count(batch, available=available) == expected


def test_a_configured_device_count_wins() -> None:
    assert per_core_device_count(128, num_devices=4, available=2) == 4


@pytest.mark.skipif(not _glibc_has_hugetlb_tunable(), reason="needs Linux with glibc >= 2.35")
def test_reexec_keeps_the_pid_and_arguments_and_sets_the_tunable() -> None:
    got = run(REEXEC, "--flag", "a b")
    assert got == {"pid": got["pid"], "argv": ["--flag", "a b"], "tunables": MALLOC_TUNABLE}
    kept = run(REEXEC, env={"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert kept["tunables"] == f"glibc.malloc.arena_max=2:{MALLOC_TUNABLE}"  # the user's tunables stay
    assert run(REEXEC, env={"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})["tunables"] == "glibc.malloc.hugetlb=0"
    assert run(REEXEC, env={SWITCH: "0"})["tunables"] is None


def test_one_device_per_core() -> None:
    assert run(DEVICES, "128", "0", "0") == {"set": per_core_device_count(128), "devices": per_core_device_count(128)}
    assert run(DEVICES, "128", "3", "0") == {"set": 3, "devices": 3}  # num_devices > cores is allowed on CPU
    assert run(DEVICES, "127", "0", "0") == {"set": 1, "devices": 1}  # 127 is prime: one device, whatever cores


@pytest.mark.parametrize("env, distributed", [
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=5"}, False), ({"JAX_NUM_CPU_DEVICES": "3"}, False),
    ({SWITCH: "0"}, False), ({}, True)])
def test_the_device_count_is_left_alone_where_the_user_or_launcher_chose(monkeypatch, env, distributed) -> None:
    """Decided before JAX is touched, so this process (whose JAX has started) can ask."""
    for key in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", SWITCH):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert configure_cpu_devices(128, 0, distributed) is None


@pytest.mark.slow
def test_train_script_runs_on_one_device_per_core(tmp_path):
    """train.py applies the set-up: its run record lists the devices it trained on."""
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", SWITCH)}
    subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs/fashion_mnist/mlp.py"),
                    "--workdir", str(tmp_path), "--config.num_train_examples=256", "--config.validation_size=128",
                    "--config.batch_size=64", "--config.num_epochs=1", "--config.progress_bar=false",
                    "--config.diagnosis=false"], cwd=ROOT, env=base, check=True, capture_output=True, timeout=300)
    devices = json.loads((tmp_path / "run.json").read_text())["devices"]
    assert len(devices) == per_core_device_count(64)
