"""The cluster launch scripts, run for real with stand-ins for the cluster's commands: `sbatch` and `gcloud`
record what they were asked to do, and `srun` starts its tasks as local processes with the variables SLURM
gives them, so train.py's `jax.distributed.initialize()` finds its job from SLURM's environment exactly as
on a cluster (2 processes, 1 CPU device each, gloo over loopback)."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import stat
import subprocess
import sys

import pytest

from tests.train.test_distributed import SMALL, _env

ROOT = pathlib.Path(__file__).resolve().parents[2]
SLURM = str(ROOT / "scripts/launch_slurm.sh")
TPU = str(ROOT / "scripts/launch_tpu_vm.sh")
CONFIG = "configs/fashion_mnist/mlp.py"

RECORDER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["RECORD"], "w") as f:
    json.dump(sys.argv[1:], f)
"""

# srun: its options, then the program; each task gets SLURM's per-task variables; SIGTERM is forwarded.
FAKE_SRUN = """#!/usr/bin/env python3
import os, signal, subprocess, sys
args = sys.argv[1:]
while args and args[0].startswith("--"):
    args.pop(0)
n = int(os.environ["FAKE_SRUN_TASKS"])
env = dict(os.environ, SLURM_NTASKS=str(n), SLURM_STEP_NODELIST="localhost", SLURM_STEP_NUM_NODES=str(n),
           SLURM_LOCALID="0")
procs = [subprocess.Popen(args, env=dict(env, SLURM_PROCID=str(i))) for i in range(n)]
signal.signal(signal.SIGTERM, lambda *_: [p.send_signal(signal.SIGTERM) for p in procs])
sys.exit(max(p.wait() for p in procs))
"""


def _tool(tmp_path: pathlib.Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _run(cmd: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "CNNJAX_PYTHON": sys.executable, **extra}


def test_on_a_login_node_the_script_submits_itself_with_sbatch(tmp_path):
    record = tmp_path / "sbatch.json"
    env = _clean_env(SBATCH=_tool(tmp_path, "sbatch", RECORDER), RECORD=str(record), NODES="4",
                     GPUS_PER_NODE="0", PARTITION="gpu", SBATCH_EXTRA="--exclusive --qos=high")
    result = _run([SLURM, CONFIG, str(tmp_path / "run"), "--config.num_epochs=2"], env)
    assert result.returncode == 0, result.stderr
    args = json.loads(record.read_text())
    assert "--nodes=4" in args and "--ntasks-per-node=1" in args and "--partition=gpu" in args
    assert "--signal=TERM@120" in args and "--requeue" in args and f"--output={tmp_path}/run/slurm-%j.out" in args
    assert not any(a.startswith("--gpus-per-node") for a in args)  # GPUS_PER_NODE=0: none requested
    assert args[-6:-3] == ["--exclusive", "--qos=high", SLURM]
    assert args[-3:] == [CONFIG, str(tmp_path / "run"), "--config.num_epochs=2"]


@pytest.mark.parametrize("cmd, message", [
    ([SLURM, CONFIG], "usage: scripts/launch_slurm.sh CONFIG WORKDIR"),
    ([SLURM, "configs/none.py", "w"], "config file configs/none.py does not exist"),
    ([TPU, "tpu", "zone", CONFIG], "usage: scripts/launch_tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR"),
])
def test_missing_arguments_are_one_line_errors(cmd, message):
    result = _run(cmd, _clean_env())
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_the_tpu_script_runs_train_py_on_every_worker(tmp_path):
    record = tmp_path / "gcloud.json"
    env = _clean_env(GCLOUD=_tool(tmp_path, "gcloud", RECORDER), RECORD=str(record), PROJECT="p1")
    result = _run([TPU, "my-tpu", "us-central2-b", "configs/imagenet/resnet50.py", "/mnt/runs/r50",
                   "--config.model_overrides.act=relu", "--config.augment=flip_lr|random_crop(padding=4)"], env)
    assert result.returncode == 0, result.stderr
    args = json.loads(record.read_text())
    assert args[:5] == ["compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
    assert "--zone=us-central2-b" in args and "--worker=all" in args and "--project=p1" in args
    command = next(a for a in args if a.startswith("--command="))
    assert command == ("--command=cd ~/cnnjax && .venv/bin/python train.py --config configs/imagenet/resnet50.py "
                       "--workdir /mnt/runs/r50 --distributed --config.model_overrides.act=relu "
                       "--config.augment=flip_lr\\|random_crop\\(padding=4\\)")


def _slurm_job_id() -> str:
    """A job id whose coordinator port (JAX: id % 4096 + 61440) is free on this machine."""
    for candidate in range(61440, 65536):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return str(100_000 + candidate - 61440)
    pytest.skip("no free port in JAX's SLURM coordinator range")


@pytest.mark.slow
def test_inside_an_allocation_every_task_trains_and_jax_reads_its_job_from_slurm(tmp_path):
    workdir = tmp_path / "run"
    env = {**_env(1), **_clean_env(SRUN=_tool(tmp_path, "srun", FAKE_SRUN), FAKE_SRUN_TASKS="2",
                                   SLURM_JOB_ID=_slurm_job_id())}
    env["XLA_FLAGS"] = _env(1)["XLA_FLAGS"]
    result = _run([SLURM, CONFIG, str(workdir), *SMALL], env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads((workdir / "run.json").read_text())
    assert len(info["devices"]) == 2 and info["config"]["num_epochs"] == 2
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [20, 40]
