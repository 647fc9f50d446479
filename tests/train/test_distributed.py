"""`train.py --distributed` with 2 local processes standing in for 2 hosts (1 CPU device each, gloo
collectives over loopback), against a single-process run of the same config on 2 forced CPU devices.

The two processes share one workdir, as hosts share a filesystem. Both must finish, the run's checkpoints
must restore, validation must be exact (every one of the 500 examples once, gathered from both processes),
and the trained parameters must equal the single-process run's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.train.test_train_script import ROOT, metric_records

CONFIG = str(ROOT / "configs/fashion_mnist/mlp.py")
# 960 examples / 48 per batch = 20 steps per epoch, 2 epochs: checkpoints at steps 20 and 40.
SMALL = ["--config.num_train_examples=960", "--config.batch_size=48", "--config.validation_size=500",
         "--config.num_epochs=2", "--config.progress_bar=false"]
STEPS = [20, 40]
# The cluster's path: the streaming pipeline (host-decoded 28x28 crops of the arrays), validated on 100 test images.
STREAMED = ["--config.input_pipeline=stream", "--config.stream.crop_size=28", "--config.stream.resize_size=28",
            "--config.stream.eval_split=test", "--config.stream.max_eval_examples=100"]
TIMEOUT_S = 300


def _env(devices: int) -> dict[str, str]:
    """The environment with exactly `devices` CPU devices per process (conftest forces 4 for this one)."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                     if not f.startswith("--xla_force_host_platform_device_count"))
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={devices}".strip()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_cmd(workdir, *extra) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--config", CONFIG, "--workdir", str(workdir), *SMALL, *extra]


def _run_distributed(workdir, tmp_path) -> None:
    """Runs the job's 2 processes to the end; both exit 0 within `TIMEOUT_S`, or the test fails (all killed)."""
    codes, logs = _wait_all(_start(workdir, tmp_path, f"127.0.0.1:{_free_port()}", [], "process"), tmp_path,
                            "process")
    if codes != [0, 0]:
        pytest.fail(f"the 2-process run failed or did not finish within {TIMEOUT_S} s (exit codes {codes}; -9: "
                    f"killed when the other failed or at the deadline):\n{logs}")


def _start(workdir, tmp_path, address: str, extra: list[str], tag: str,
           command: list[str] | None = None) -> list[subprocess.Popen]:
    """The 2 processes of a job on loopback, one CPU device each (train.py on `workdir`, or `command`); output
    in `<tag>_<i>.log`."""
    procs = []
    for i in range(2):
        with open(tmp_path / f"{tag}_{i}.log", "w") as log:
            procs.append(subprocess.Popen(
                [*(command or _train_cmd(workdir)), *extra, "--distributed", "--coordinator_address", address,
                 "--num_processes", "2", "--process_id", str(i)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env=_env(1), start_new_session=True))
    return procs


def _wait_all(procs: list[subprocess.Popen], tmp_path, tag: str) -> tuple[list[int], str]:
    """Exit codes and logs once all have ended. One process failing leaves the other waiting for it in a
    collective, so a failure (other than a stop signal's 143) or the deadline kills the rest (-9)."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.returncode not in (None, 0, 143) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = "\n".join(f"--- {tag} process {i} (exit {p.returncode}):\n"
                     f"{(tmp_path / f'{tag}_{i}.log').read_text()[-2500:]}" for i, p in enumerate(procs))
    return [p.returncode for p in procs], logs


def _restore(workdir, step):
    """`Checkpointer.restore` of `step` into this test process's own state layout (4 devices): checksums
    verified, every array of the `TrainState` read, whatever topology saved it."""
    from cnnjax.train import experiment, run_info
    from cnnjax.train.checkpoint import Checkpointer

    exp = experiment.build(run_info.load_config(workdir))
    with Checkpointer(workdir, read_only=True) as ckpt:
        assert ckpt.all_steps() == STEPS
        state, meta = ckpt.restore(step, exp.init_state())
    return jax.device_get(state), meta


@pytest.mark.slow
def test_two_processes_train_like_one_process_on_two_devices(tmp_path):
    distributed, reference = tmp_path / "distributed", tmp_path / "reference"
    _run_distributed(distributed, tmp_path)
    try:
        single = subprocess.run(_train_cmd(reference), capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
                                env=_env(2))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the single-process reference run did not finish in {TIMEOUT_S} s")
    assert single.returncode == 0, single.stderr[-3000:]

    info = json.loads((distributed / "run.json").read_text())  # written once, by process 0
    assert len(info["devices"]) == 2, info["devices"]
    assert not list(distributed.glob("*.tmp")), list(distributed.iterdir())
    validation = [r for r in metric_records(distributed) if r["split"] == "validation"]
    assert [r["step"] for r in validation] == STEPS
    assert [r["num_examples"] for r in validation] == [500, 500]
    assert validation == [r for r in metric_records(reference) if r["split"] == "validation"]

    for step in STEPS:
        got, meta = _restore(distributed, step)
        want, want_meta = _restore(reference, step)
        assert meta["validation"] == want_meta["validation"]
        assert int(got.step) == int(want.step) == step
        assert jax.tree.structure(got) == jax.tree.structure(want)
        # Both runs compute the same per-device gradients; only the cross-device mean differs in how it
        # is done (gloo's all-reduce between processes vs XLA:CPU's in-process all-reduce). With 2 devices
        # a sum has a single addition, which is commutative and correctly rounded in IEEE float32, so any
        # order gives the same bits, and the whole run is bit-identical (measured: max difference 0).
        # A looser bound (a few float32 ulps per step) would only be needed with > 2 devices, where
        # the reduction's association order could differ.
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("flags, message", [
    (["--distributed", "--process_id", "1"], "--process_id given without --coordinator_address, --num_processes"),
    (["--distributed", "--coordinator_address", "127.0.0.1:1", "--num_processes", "2"],
     "given without --process_id"),
    (["--distributed", "--coordinator_address", "localhost", "--num_processes", "2", "--process_id", "0"],
     "is not HOST:PORT"),
    (["--distributed", "--coordinator_address", "127.0.0.1:1", "--num_processes", "2", "--process_id", "2"],
     "--process_id=2 must be in 0..1"),
    (["--num_processes", "2"], "--num_processes is only for multi-process runs: add --distributed"),
])
def test_incomplete_launch_flags_are_one_line_errors(tmp_path, flags, message):
    """Refused before any config is loaded or any JAX computation (nothing is written to the workdir)."""
    result = subprocess.run(_train_cmd(tmp_path / "run", *flags), capture_output=True, text=True, timeout=120,
                            cwd=ROOT, env=_env(1))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_sigterm_to_a_multi_process_job_saves_one_agreed_step_and_a_restart_resumes(tmp_path):
    """SLURM preempts by sending SIGTERM to every task, not at the same instant. The processes must stop
    after the same step (JAX's preemption sync), save it once with each one's iterator position, exit 143, and
    a restart must read exactly the examples an uninterrupted run reads after that step and end where it ends
    (bit-identical on 2 devices, see above). On the streaming pipeline, as a cluster job runs."""
    longer = ["--config.num_epochs=10", "--config.log_every_steps=5", *STREAMED]  # 200 steps
    workdir, reference = tmp_path / "preempted", tmp_path / "reference"
    ids = [f"--config.stream.record_ids_to={tmp_path / 'ids'}"]
    procs = _start(workdir, tmp_path, f"127.0.0.1:{_free_port()}", [*longer, *ids], "first")
    deadline = time.monotonic() + TIMEOUT_S
    while not any(r.get("step", 0) >= 20 for r in _records(workdir)) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    procs[0].send_signal(15)  # the notices of a scheduler reach the hosts apart: here by a second, many steps
    time.sleep(1.0)
    procs[1].send_signal(15)
    codes, logs = _wait_all(procs, tmp_path, "first")
    assert codes == [143, 143], logs
    from cnnjax.train.checkpoint import Checkpointer

    with Checkpointer(workdir, read_only=True) as ckpt:
        stopped = ckpt.latest_step()
    # Both processes stopped after the same step, the one saved (it may fall on an epoch end, whose save it
    # then is: where the notices land in the run is up to the scheduler's timing).
    assert 20 <= stopped < 200, (stopped, logs)
    assert logs.count(f"SIGTERM: saved step {stopped}, stopping") == 2, logs
    procs = _start(workdir, tmp_path, f"127.0.0.1:{_free_port()}", [*longer, *ids], "resumed")
    codes, logs = _wait_all(procs, tmp_path, "resumed")
    assert codes == [0, 0], logs
    assert f"resumed from step {stopped}" in logs
    single = subprocess.run(_train_cmd(reference, *longer, f"--config.stream.record_ids_to={tmp_path / 'ref'}"),
                            capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, env=_env(2))
    assert single.returncode == 0, single.stderr[-3000:]
    # Each step's global batch read once over both runs (nothing repeated or skipped across the stop), each
    # process its half, and the same examples as the uninterrupted run's.
    halves = [_recorded_ids(tmp_path / f"ids.{i}") for i in range(2)]
    assert [[row[0] for row in rows] for rows in halves] == [list(range(200))] * 2
    assert [a + b[1:] for a, b in zip(*halves)] == _recorded_ids(tmp_path / "ref.0")
    final = [r for r in metric_records(workdir) if r["split"] == "validation"][-1]
    assert final == [r for r in metric_records(reference) if r["split"] == "validation"][-1]


def _recorded_ids(path) -> list[list[int]]:
    """The rows `step id id ...` that stream.record_ids_to appends, one per step read."""
    return [list(map(int, line.split())) for line in path.read_text().splitlines()]


def _on_one_and_two_processes(command: list[str], single_out, multi_out, tmp_path) -> str:
    """Runs `command --out single_out` in 1 process (2 devices), then `--out multi_out` as a 2-process job;
    both must succeed. Returns the job's logs."""
    single = subprocess.run([*command, "--out", str(single_out)], capture_output=True, text=True,
                            timeout=TIMEOUT_S, cwd=ROOT, env=_env(2))
    assert single.returncode == 0, single.stderr[-3000:]
    procs = _start(None, tmp_path, f"127.0.0.1:{_free_port()}", ["--out", str(multi_out)], "job", command=command)
    codes, logs = _wait_all(procs, tmp_path, "job")
    assert codes == [0, 0], logs
    return logs


@pytest.mark.slow
def test_two_processes_evaluate_a_workdir_like_one(tmp_path):
    """eval.py --distributed: each process scores its share of every batch, process 0 writes the result,
    which equals a single-process evaluation bit for bit (inference has no cross-device arithmetic)."""
    workdir = tmp_path / "run"
    trained = subprocess.run(_train_cmd(workdir), capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
                             env=_env(1))
    assert trained.returncode == 0, trained.stderr[-3000:]
    evaluate = [sys.executable, str(ROOT / "eval.py"), "--workdir", str(workdir), "--split", "test"]
    logs = _on_one_and_two_processes(evaluate, tmp_path / "single.json", tmp_path / "multi.json", tmp_path)
    assert logs.count("| top-1") == 1  # reported once, by process 0
    got, want = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("multi", "single"))
    assert got["num_examples"] == want["num_examples"] == 10_000
    assert {k: got[k] for k in ("top1", "top5", "nll")} == {k: want[k] for k in ("top1", "top5", "nll")}
    np.testing.assert_array_equal(np.load(tmp_path / "multi_logits.npy"), np.load(tmp_path / "single_logits.npy"))


@pytest.mark.slow
def test_two_processes_evaluate_an_ensemble_like_one(tmp_path):
    """eval.py --members --distributed: the members' logits are computed by both processes (each its share of
    every batch), every process combines them alike, process 0 writes the report: the one of a single
    process, bit for bit."""
    members = [tmp_path / f"m{seed}" for seed in (0, 1)]
    for seed, workdir in enumerate(members):
        trained = subprocess.run([*_train_cmd(workdir), f"--config.seed={seed}", "--config.num_epochs=1"],
                                 capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, env=_env(1))
        assert trained.returncode == 0, trained.stderr[-3000:]
    evaluate = [sys.executable, str(ROOT / "eval.py"), "--members", *map(str, members), "--combiners",
                "vote,mean,stack", "--folds", "2", "--no_cache"]
    logs = _on_one_and_two_processes(evaluate, tmp_path / "single", tmp_path / "multi", tmp_path)
    assert logs.count("| mean |") == 1  # reported once, by process 0
    got, want = (json.loads((tmp_path / name / "report.json").read_text()) for name in ("multi", "single"))
    for report in (got, want):
        report.pop("timings"), report.pop("inference"), report.pop("files", None)
        for row in report["combiners"].values():
            row.get("info", {}).pop("seconds", None)
    assert got == want


def _records(workdir) -> list[dict]:
    try:
        return metric_records(workdir)
    except (OSError, ValueError):
        return []
