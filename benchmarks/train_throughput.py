"""Training throughput (img/s): cnnjax's real training step versus the same model in PyTorch, on CPU.

Why: a JAX codebase is only a credible replacement for a PyTorch one if its training step is not slower
on the machines people actually have. This script measures exactly what `train.py` runs — the AOT-compiled,
sharded step of `cnnjax.train.parallel.compile_train_step` (on-device batch selection from a replicated
uint8 dataset, normalisation, forward, backward, Adam update, metrics) — against an equivalent PyTorch
`nn.Module` doing a full step (random batch gather from a uint8 tensor, uint8 -> float normalisation,
zero_grad, forward, cross-entropy, backward, Adam step) in train mode (dropout on).

Both sides see the same global batch of Fashion-MNIST-shaped synthetic data (28x28x1 uint8, 10 classes).
Repetitions are run alternately (cnnjax, torch, cnnjax, torch, ...) so drift of the machine (other jobs,
thermal state) hits both sides alike; the per-repetition ratio cnnjax/torch compares adjacent reps.

Usage:
    python benchmarks/train_throughput.py                          # lenet5,keras_cnn, batch 128
    python benchmarks/train_throughput.py --models keras_cnn --steps 20 --reps 5 --threads 2

Flags: --models (comma-separated registry names with a torch twin here: lenet5, keras_cnn), --batch (global
batch, default 128), --steps (timed steps per repetition), --reps (repetitions per side), --warmup (untimed
steps after compilation), --threads (torch.set_num_threads; default: all cores of this process),
--examples (size of the synthetic training set, default 6400).

--threads only sets PyTorch's intra-op threads; XLA:CPU always uses every core it is allowed to. To give
both the same cores, restrict the process instead: `taskset -c 0-3 python benchmarks/train_throughput.py`.
On a machine busy with other jobs, PyTorch's multi-threaded (OpenMP) step slows down far more than XLA's
when cores are oversubscribed (measured: 3-7x on a loaded 2-core VM), so there the steadier comparison is
one pinned core: `taskset -c 0 python benchmarks/train_throughput.py --threads 1`.
The script prints the machine, library versions, load average and command line with the figures, so a
table can be pasted into the README with its provenance. If torch is not installed it prints the cnnjax
figures and how to install torch (`pip install torch==2.14.1 torchvision==0.29.1`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnjax.config import base_config
from cnnjax.data.pipeline import DeviceSplit, TrainBatches, normalize, replicate
from cnnjax.data.sources import Split
from cnnjax.data.splits import channel_stats
from cnnjax import sharding
from cnnjax.train import experiment, optim, parallel
from cnnjax.train.state import create_train_state
from cnnjax.train.step import StepConfig, train_step

IMAGE_SHAPE = (28, 28, 1)  # Fashion-MNIST, (H, W, C)
NUM_CLASSES = 10
TORCH_INSTALL = "pip install torch==2.14.1 torchvision==0.29.1"

# The PyTorch twins as layer tables: (kind, *args). Kept as data so the two models share one builder.
# Conv rows are (out_channels, kernel, padding); "same" 3x3 = padding 1.
TORCH_LAYERS: dict[str, tuple[tuple[Any, ...], ...]] = {
    "lenet5": (  # pad 2 + VALID conv == conv with padding 2
        ("conv", 6, 5, 2), ("tanh",), ("avgpool", 2),
        ("conv", 16, 5, 0), ("tanh",), ("avgpool", 2),
        ("flatten",), ("linear", 120), ("tanh",), ("linear", 84), ("tanh",), ("linear", NUM_CLASSES),
    ),
    "keras_cnn": (
        ("conv", 32, 3, 1), ("relu",), ("conv", 32, 3, 0), ("relu",), ("maxpool", 2), ("dropout", 0.25),
        ("conv", 64, 3, 1), ("relu",), ("conv", 64, 3, 0), ("relu",), ("maxpool", 2), ("dropout", 0.25),
        ("flatten",), ("linear", 512), ("relu",), ("dropout", 0.5), ("linear", NUM_CLASSES),
    ),
}


@dataclasses.dataclass(frozen=True)
class Side:
    """One framework's training step, ready to time: `run(n)` trains n steps and returns when done."""

    framework: str
    params: int
    run: Callable[[int], None]


def synthetic_data(num_examples: int, seed: int = 0) -> Split:
    """Random uint8 images and labels shaped like Fashion-MNIST (content does not change the speed)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_examples, *IMAGE_SHAPE), dtype=np.uint8)
    return Split(images, rng.integers(0, NUM_CLASSES, num_examples).astype(np.int32))


def param_count(tree: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


# ----------------------------------------------------------------------------------------------- cnnjax


class _CnnjaxStep:
    """Holds the (donated) train state between calls; mirrors `cnnjax.train.loop.train_and_evaluate`."""

    def __init__(self, name: str, batch_size: int, data: Split, seed: int = 0,
                 model: nn.Module | None = None) -> None:
        config = base_config()  # adam, lr 1e-3, constant schedule, float32
        config.model, config.batch_size, config.seed = name, batch_size, seed
        mesh = sharding.make_mesh(config.num_devices)
        sharding.check_batch_size(batch_size, mesh)
        self.batches = TrainBatches(len(data), batch_size, seed, config.augment)
        schedule = optim.make_schedule(config, self.batches.steps_per_epoch)
        tx = optim.make_optimizer(config, schedule)
        if model is None:
            model = experiment.build_model(config, NUM_CLASSES, IMAGE_SHAPE)
        mean, std = channel_stats(data)

        def make_batch(split: DeviceSplit, order: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
            images, labels = self.batches(split, order, step)
            return normalize(images, mean, std), labels

        step_fn = functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                                    cfg=StepConfig(config.label_smoothing, config.aux_loss_weight, config.bn_sync))
        # The library's init, jitted and compiled without LLVM optimisation: it runs once and is not timed,
        # and this takes ~1 s of CPU instead of ~7 s (jit, -O2) or ~10 s (op-by-op) on a 2-core machine.
        init = jax.jit(lambda: create_train_state(model, tx, IMAGE_SHAPE, seed))
        state = init.lower().compile({"xla_backend_optimization_level": 0})()
        self.params = param_count(state.params)
        self.state = sharding.replicate_tree(state, mesh)
        self.data = replicate(data, mesh)
        self.epoch_order = jax.jit(self.batches.order, out_shardings=NamedSharding(mesh, P()))
        self.step, self.order = 0, self.epoch_order(0)
        self.fn = parallel.compile_train_step(step_fn, make_batch, mesh).lower(
            self.state, self.data, self.order).compile()

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            if self.step % self.batches.steps_per_epoch == 0:  # as the loop does: a new order per epoch
                self.order = self.epoch_order(self.batches.epoch_of(self.step))
            self.state, _metrics = self.fn(self.state, self.data, self.order)
            self.step += 1
        jax.block_until_ready(self.state)


def cnnjax_side(name: str, batch_size: int, data: Split, seed: int = 0, model: nn.Module | None = None,
                label: str = "cnnjax") -> Side:
    """cnnjax's training step for registry model `name` (or `model`, a variant of it), AOT-compiled."""
    step = _CnnjaxStep(name, batch_size, data, seed, model)
    return Side(label, step.params, step)


# ------------------------------------------------------------------------------------------------ torch


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_model(name: str):
    """The PyTorch twin of cnnjax model `name` on 28x28x1 inputs (NCHW), built from TORCH_LAYERS."""
    from torch import nn

    if name not in TORCH_LAYERS:
        raise ValueError(f"no PyTorch twin for {name!r}; available: {', '.join(TORCH_LAYERS)}")
    layers, channels, size = [], IMAGE_SHAPE[2], IMAGE_SHAPE[0]
    for kind, *args in TORCH_LAYERS[name]:
        if kind == "conv":
            out, kernel, padding = args
            layers.append(nn.Conv2d(channels, out, kernel, padding=padding))
            channels, size = out, size + 2 * padding - kernel + 1
        elif kind in ("avgpool", "maxpool"):
            layers.append((nn.AvgPool2d if kind == "avgpool" else nn.MaxPool2d)(args[0]))
            size //= args[0]
        elif kind == "flatten":
            layers.append(nn.Flatten())
            channels = channels * size * size
        elif kind == "linear":
            layers.append(nn.Linear(channels, args[0]))
            channels = args[0]
        elif kind == "dropout":
            layers.append(nn.Dropout(args[0]))
        else:
            layers.append({"tanh": nn.Tanh, "relu": nn.ReLU}[kind]())
    return nn.Sequential(*layers)


class _TorchStep:
    """A full PyTorch training step: shuffled batch gather, normalisation, forward, backward, Adam."""

    def __init__(self, name: str, batch_size: int, data: Split, seed: int = 0, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.model = torch_model(name).train()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=base_config().learning_rate)
        self.loss = torch.nn.CrossEntropyLoss()
        self.images = torch.from_numpy(np.ascontiguousarray(data.images.transpose(0, 3, 1, 2)))  # NCHW uint8
        self.labels = torch.from_numpy(data.labels.astype(np.int64))
        mean, std = channel_stats(data)
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.batch_size, self.steps_per_epoch = batch_size, len(data) // batch_size
        self.step, self.order = 0, torch.randperm(len(data))

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            offset = self.step % self.steps_per_epoch
            if offset == 0 and self.step:
                self.order = self.torch.randperm(len(self.labels))
            index = self.order[offset * self.batch_size:(offset + 1) * self.batch_size]
            images = (self.images[index].float() / 255.0 - self.mean) / self.std
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(images), self.labels[index])
            loss.backward()
            self.optimizer.step()
            self.step += 1


def torch_side(name: str, batch_size: int, data: Split, seed: int = 0, threads: int | None = None) -> Side:
    step = _TorchStep(name, batch_size, data, seed, threads)
    return Side("torch", step.params, step)


# -------------------------------------------------------------------------------------------- measuring


def images_per_second(side: Side, steps: int, batch_size: int) -> float:
    start = time.perf_counter()
    side.run(steps)
    return steps * batch_size / (time.perf_counter() - start)


def measure(sides: Sequence[Side], steps: int, reps: int, warmup: int, batch_size: int) -> list[list[float]]:
    """img/s per repetition for each side, the sides interleaved within every repetition."""
    for side in sides:
        side.run(warmup)
    results: list[list[float]] = [[] for _ in sides]
    for _ in range(reps):
        for side, out in zip(sides, results):
            out.append(images_per_second(side, steps, batch_size))
    return results


def format_table(name: str, sides: Sequence[Side], results: Sequence[Sequence[float]]) -> str:
    """One row per repetition, then the median; ratio columns compare each side with torch in the same row."""
    ref = next((i for i, s in enumerate(sides) if s.framework == "torch"), None)
    others = [i for i in range(len(sides)) if ref is not None and i != ref]
    params = " | ".join(f"{s.framework} {s.params:,}" for s in sides)
    header = ["rep", *(f"{s.framework} img/s" for s in sides), *(f"{sides[i].framework}/torch" for i in others)]
    rows = [[str(r + 1), *(f"{v:,.0f}" for v in values), *(f"{values[i] / values[ref]:.2f}" for i in others)]
            for r, values in enumerate(zip(*results))]
    ratios = [statistics.median(a / b for a, b in zip(results[i], results[ref])) for i in others]
    rows.append(["median", *(f"{statistics.median(r):,.0f}" for r in results), *(f"{x:.2f}" for x in ratios)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([f"### {name} (parameters: {params})", "", line(header), rule, *map(line, rows)])


def machine_info(threads: int | None) -> str:
    """Where and with what the figures were measured (to paste next to them)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [f"machine: {cpu}, {cores} of {os.cpu_count()} cores available to this process, {platform.system()} "
             f"{platform.release()}, python {platform.python_version()}",
             f"jax {jax.__version__}: {jax.device_count()} x {jax.default_backend()} device(s); "
             f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"]
    if torch_available():
        import torch

        lines.append(f"torch {torch.__version__}: {threads or torch.get_num_threads()} intra-op threads")
    else:
        lines.append("torch: not installed")
    if hasattr(os, "getloadavg"):
        lines.append("load average (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    lines.append("command: " + " ".join([os.path.basename(sys.executable), *sys.argv]))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="lenet5,keras_cnn", help="comma-separated: " + ", ".join(TORCH_LAYERS))
    p.add_argument("--batch", type=int, default=128, help="global batch size")
    p.add_argument("--steps", type=int, default=20, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=5, help="repetitions per side (alternated)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compilation")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = all available cores)")
    p.add_argument("--examples", type=int, default=6400, help="synthetic training examples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in TORCH_LAYERS]
    if unknown:
        p.error(f"no PyTorch twin for {', '.join(unknown)}; choose from {', '.join(TORCH_LAYERS)}")
    if args.batch > args.examples:
        p.error(f"--batch {args.batch} exceeds --examples {args.examples}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or len(os.sched_getaffinity(0))
    has_torch = torch_available()
    print(machine_info(threads if has_torch else None))
    print(f"global batch {args.batch}, {args.steps} timed steps x {args.reps} alternated reps after "
          f"{args.warmup} warm-up steps; synthetic {args.examples} x {IMAGE_SHAPE} uint8, {NUM_CLASSES} classes")
    data = synthetic_data(args.examples, args.seed)
    for name in args.models:
        t0 = time.perf_counter()
        sides = [cnnjax_side(name, args.batch, data, args.seed)]
        print(f"\n{name}: cnnjax step compiled in {time.perf_counter() - t0:.1f} s")
        if has_torch:
            sides.append(torch_side(name, args.batch, data, args.seed, threads))
            if sides[0].params != sides[1].params:
                raise SystemExit(f"{name}: parameter counts differ: cnnjax {sides[0].params:,} "
                                 f"vs torch {sides[1].params:,}")
        results = measure(sides, args.steps, args.reps, args.warmup, args.batch)
        print(format_table(name, sides, results))
    if not has_torch:
        print(f"\ntorch is not installed, so only cnnjax was measured. To compare: {TORCH_INSTALL}")
    if hasattr(os, "getloadavg"):
        print("\nload average at the end (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
