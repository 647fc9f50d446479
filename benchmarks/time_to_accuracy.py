"""Wall time to a validation accuracy on Fashion-MNIST: a cnnjax config against a PyTorch CPU recipe, one run.

Why: "fast on CPU" means a user's whole run — start-up, data, compilation, training, validation — reaches
the accuracy sooner, not that one step is quicker. Each side runs as its own process with all the cores this
process may use, one after the other (never side by side), on the same splits: the config's validation carve
of Fashion-MNIST's training set, and the 10,000 test images. Time is measured by this script from the start of
each process to the moment the first validation result at or above `--target` is written (cnnjax: the
`metrics.jsonl` record, polled every 0.1 s; PyTorch: its per-epoch JSON line), so both include start-up.
The final test top-1 is the last checkpoint's (cnnjax, `eval.py --step LAST`) and the final model's (PyTorch).

Usage:
    python benchmarks/time_to_accuracy.py                                    # fast.py vs the PyTorch recipe
    python benchmarks/time_to_accuracy.py --config configs/fashion_mnist/fast.py --torch_epochs 20 \\
        --target 0.93 --workdir /tmp/tta [--config.key=value ...] [--skip_torch]

The PyTorch side is benchmarks/torch_fashion_mnist.py (its docstring states the recipe). The figures print as
a Markdown table with the machine, load average and command, ready for the README.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
TORCH_SCRIPT = ROOT / "benchmarks" / "torch_fashion_mnist.py"
POLL_S = 0.1


@dataclasses.dataclass
class Outcome:
    name: str
    time_to_target_s: float | None  # None: never reached
    total_s: float
    best_val_top1: float
    test_top1: float
    epochs: int


def _val_records(workdir: pathlib.Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    if not path.is_file():
        return []
    text = path.read_text()
    complete = text[:text.rfind("\n") + 1]  # a line being appended right now is not read yet
    return [r for r in map(json.loads, complete.splitlines()) if r.get("split") == "validation"]


def run_cnnjax(config: str, overrides: Sequence[str], workdir: pathlib.Path, target: float,
               metric: str = "top1") -> Outcome:
    """train.py on `config`, timed from its start; then eval.py of its last checkpoint on test.

    `metric` is the validation record's key the run selects its model by: "top1", or "ema_top1" when the config
    ranks checkpoints by the weights' moving average (`ema_select_best`) — then that average is what is timed
    and tested (`eval.py --ema`), as a user of the run would deploy it."""
    run = workdir / "cnnjax"
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, str(ROOT / "train.py"), "--config", config, "--workdir", str(run),
               "--config.progress_bar=false", *overrides]
    start = time.monotonic()
    reached = None
    with open(workdir / "cnnjax.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        while proc.poll() is None:
            if reached is None and any(r[metric] >= target for r in _val_records(run)):
                reached = time.monotonic() - start
            time.sleep(POLL_S)
    total = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"cnnjax run failed (exit {proc.returncode}); see {workdir / 'cnnjax.log'}")
    records = _val_records(run)
    if reached is None and any(r[metric] >= target for r in records):
        reached = total  # reached in the last poll interval
    last = max(r["step"] for r in records)
    out = workdir / "cnnjax_test.json"
    subprocess.run([sys.executable, str(ROOT / "eval.py"), "--workdir", str(run), "--step", str(last), "--split",
                    "test", "--out", str(out), *(["--ema"] if metric == "ema_top1" else [])], check=True, cwd=ROOT,
                   capture_output=True)
    name = "cnnjax (EMA weights)" if metric == "ema_top1" else "cnnjax"
    return Outcome(name, reached, total, max(r[metric] for r in records), json.loads(out.read_text())["top1"],
                   len(records))


def write_splits(config, path: pathlib.Path) -> None:
    """The config's train/validation/test examples (as training carves them) for the PyTorch side."""
    import numpy as np

    from cnnjax.data.splits import load_for_config

    data = load_for_config(config)
    arrays = {}
    for name in ("train", "validation", "test"):
        split = data.split(name)
        arrays[f"{name}_images"], arrays[f"{name}_labels"] = split.images, split.labels.astype(np.int64)
    np.savez(path, **arrays)


def run_torch(data: pathlib.Path, epochs: int, workdir: pathlib.Path, target: float) -> Outcome:
    """torch_fashion_mnist.py, timed by its own per-epoch elapsed times (from its process start)."""
    command = [sys.executable, str(TORCH_SCRIPT), "--data", str(data), "--epochs", str(epochs)]
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    total = time.monotonic() - start
    (workdir / "torch.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"PyTorch run failed (exit {result.returncode}); see {workdir / 'torch.log'}")
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    epochs_done = [r for r in records if "val_top1" in r]
    reached = next((r["elapsed_s"] for r in epochs_done if r["val_top1"] >= target), None)
    return Outcome("PyTorch", reached, total, max(r["val_top1"] for r in epochs_done), records[-1]["test_top1"],
                   len(epochs_done))


def format_table(outcomes: Sequence[Outcome], target: float) -> str:
    def fmt(t: float | None) -> str:
        return "not reached" if t is None else f"{t:.0f} s"
    lines = [f"| side | time to {100 * target:.1f}% validation | total wall time | epochs | best validation | "
             "final test top-1 |", "|---|--:|--:|--:|--:|--:|"]
    lines += [f"| {o.name} | {fmt(o.time_to_target_s)} | {o.total_s:.0f} s | {o.epochs} | {100 * o.best_val_top1:.2f}% "
              f"| {100 * o.test_top1:.2f}% |" for o in outcomes]
    if len(outcomes) == 2 and all(o.time_to_target_s for o in outcomes):
        ratio = outcomes[0].time_to_target_s / outcomes[1].time_to_target_s
        lines.append(f"\ncnnjax / PyTorch time to {100 * target:.1f}%: {ratio:.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs/fashion_mnist/fast.py"))
    p.add_argument("--target", type=float, default=0.93, help="validation top-1 to time (default 0.93)")
    p.add_argument("--torch_epochs", type=int, default=20)
    p.add_argument("--workdir", default="/tmp/time_to_accuracy")
    p.add_argument("--skip_torch", action="store_true")
    args, overrides = p.parse_known_args(argv)
    from cnnjax.cli_support import config_overrides
    from cnnjax.config import load_config
    from cnnjax.errors import CnnjaxError

    try:
        config = load_config(args.config, config_overrides(p, overrides))  # train.py gets `overrides` as given
    except CnnjaxError as err:
        p.error(str(err))
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_throughput import machine_info

    from cnnjax.cpu_runtime import configure_cpu_devices

    configure_cpu_devices(config.batch_size, config.num_devices)  # so the devices printed are train.py's
    print(machine_info(None))
    metric = "ema_top1" if config.get("ema_select_best", False) else "top1"
    outcomes = [run_cnnjax(args.config, overrides, workdir, args.target, metric)]
    if not args.skip_torch:
        data = workdir / "splits.npz"
        write_splits(config, data)
        outcomes.append(run_torch(data, args.torch_epochs, workdir, args.target))
    print(format_table(outcomes, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
