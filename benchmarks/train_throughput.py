"""Training and inference throughput (img/s): cnnjax's real programs versus the same model in PyTorch, on CPU.

Why: a JAX codebase is only a credible replacement for a PyTorch one if it is not slower on the machines people
actually have. Training: exactly what `train.py` runs — the AOT-compiled, sharded step of
`cnnjax.train.parallel.compile_train_step` (on-device batch selection from a replicated uint8 dataset,
normalisation, forward, backward, Adam update, metrics) — against a PyTorch `nn.Module` twin doing a full step
(random batch gather from a uint8 tensor, uint8 -> float normalisation, zero_grad, forward, cross-entropy,
backward, Adam step) in train mode (dropout on, BatchNorm batch statistics). Inference (eval): what evaluation
compiles — `cnnjax.evaluate.exact.preprocess_predict_fn`, the eval-mode forward (BatchNorm running statistics,
dropout off) jitted and batch-sharded over the training mesh — against the twin's `model.eval()` forward under
`torch.inference_mode()`, both on consecutive batches of the same size as training's.

Models: lenet5, keras_cnn, bn_cnn (28x28x1, Fashion-MNIST) and resnet20 (32x32x3, CIFAR): synthetic uint8 data of
each model's registry input shape, 10 classes (the content does not change the speed). The twins (in
`torch_twins.py`) must have exactly cnnjax's parameter count; the script refuses to compare otherwise.
Repetitions alternate (cnnjax, torch, cnnjax, torch, ...) so drift of the machine (other jobs, thermal state)
hits both sides alike; the ratio column compares adjacent repetitions, and the last row holds the medians.
Per model two tables are printed: training, then inference.

Cores: each `--cores` setting (default `1,all`) runs in a child process whose CPU affinity is set before JAX or
torch are imported. In it, torch uses one intra-op thread per core and cnnjax one CPU device per core that
divides the batch (`cnnjax.cpu_runtime.configure_cpu_devices`, as train.py). The script re-executes itself with
the huge-page malloc of `cnnjax.cpu_runtime.reexec_with_hugepage_malloc` (as train.py), which the children
inherit: both frameworks run in the same process, so both get the same malloc. `CNNJAX_CPU_TUNING=0` turns both
tunings off, to compare: `CNNJAX_CPU_TUNING=0 python benchmarks/train_throughput.py`. Each setting prints the
cores, threads and devices it used and whether the tuning was on. (Pinning needs Linux' sched_setaffinity.)

Usage:
    python benchmarks/train_throughput.py                          # all four models, batch 128, 1 core and all
    python benchmarks/train_throughput.py --models resnet20 --cores all --steps 20 --reps 5

Flags: --models (comma-separated: lenet5, keras_cnn, resnet20, bn_cnn), --cores (comma-separated settings: 1,
all, or a number of cores N: the first N of this process's), --batch (global batch, default 128), --steps (timed
steps per repetition), --reps (repetitions per side), --warmup (untimed steps after compilation), --threads
(torch intra-op threads; default one per core of the setting), --examples (size of the synthetic data set,
default 6400), --seed, --xla-backward (a third training side: cnnjax with XLA's own convolution backward, the
model option `cpu_kernels=false`, so the table shows what `cnnjax/models/cpu_conv.py` gains). Internally each
child is the same command with `--cores <setting> --child` (measure in this process, whose affinity is already
set).

On a machine busy with other jobs PyTorch's multi-threaded (OpenMP) step slows down far more than XLA's when
cores are oversubscribed (measured: 3-7x on a loaded 2-core VM); there the steadier comparison is `--cores 1`.
The script prints the machine, library versions, load average and command line with the figures, so a table can
be pasted into the README with its provenance. If torch is not installed it prints the cnnjax figures and how to
install torch (`pip install torch==2.14.1 torchvision==0.29.1`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

if __name__ == "__main__":  # before the heavy imports below, so that the re-executed process alone loads them
    from cnnjax.cpu_runtime import reexec_with_hugepage_malloc

    reexec_with_hugepage_malloc()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from cnnjax import cpu_runtime, sharding  # noqa: E402
from cnnjax.config import base_config  # noqa: E402
from cnnjax.data import preprocess  # noqa: E402
from cnnjax.data.pipeline import DeviceSplit, TrainBatches, normalize, replicate  # noqa: E402
from cnnjax.data.sources import Split  # noqa: E402
from cnnjax.data.splits import channel_stats  # noqa: E402
from cnnjax.evaluate.exact import preprocess_predict_fn  # noqa: E402
from cnnjax.models import model_info  # noqa: E402
from cnnjax.train import experiment, optim, parallel  # noqa: E402
from cnnjax.train.state import create_train_state  # noqa: E402
from cnnjax.train.step import StepConfig, train_step  # noqa: E402

IMAGE_SHAPE = (28, 28, 1)  # Fashion-MNIST (H, W, C): synthetic_data's default; each model gets its registry shape
NUM_CLASSES = 10
MODELS = ("lenet5", "keras_cnn", "resnet20", "bn_cnn")  # the models with a twin in torch_twins.TORCH_LAYERS
TORCH_INSTALL = "pip install torch==2.14.1 torchvision==0.29.1"


@dataclasses.dataclass(frozen=True)
class Side:
    """One framework's program, ready to time: `run(n)` runs n steps (batches) and returns when done."""

    framework: str
    params: int
    run: Callable[[int], None]


def synthetic_data(num_examples: int, seed: int = 0, image_shape: tuple[int, ...] = IMAGE_SHAPE) -> Split:
    """Random uint8 images and labels (content does not change the speed)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_examples, *image_shape), dtype=np.uint8)
    return Split(images, rng.integers(0, NUM_CLASSES, num_examples).astype(np.int32))


def param_count(tree: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


# ----------------------------------------------------------------------------------------------- cnnjax


class _CnnjaxStep:
    """Holds the (donated) train state between calls; mirrors `cnnjax.train.loop.train_and_evaluate`."""

    def __init__(self, name: str, batch_size: int, data: Split, seed: int = 0, cpu_kernels: bool = True) -> None:
        config = base_config()  # adam, lr 1e-3, constant schedule, float32
        config.model, config.batch_size, config.seed = name, batch_size, seed
        self.mesh = mesh = sharding.make_mesh(config.num_devices)
        sharding.check_batch_size(batch_size, mesh)
        image_shape = data.images.shape[1:]
        self.batches = TrainBatches(len(data), batch_size, seed, config.augment)
        schedule = optim.make_schedule(config, self.batches.steps_per_epoch)
        tx = optim.make_optimizer(config, schedule)
        if not cpu_kernels:  # XLA's own convolution backward, to measure cnnjax.models.cpu_conv's share
            config.model_overrides.cpu_kernels = False
        self.model = experiment.build_model(config, NUM_CLASSES, image_shape)
        self.mean, self.std = mean, std = channel_stats(data)

        def make_batch(split: DeviceSplit, order: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
            images, labels = self.batches(split, order, step)
            return normalize(images, mean, std), labels

        step_fn = functools.partial(train_step, model=self.model, tx=tx, schedule=schedule,
                                    cfg=StepConfig(config.label_smoothing, config.aux_loss_weight, config.bn_sync))
        # The library's init, jitted and compiled without LLVM optimisation: it runs once and is not timed,
        # and this takes ~1 s of CPU instead of ~7 s (jit, -O2) or ~10 s (op-by-op) on a 2-core machine.
        init = jax.jit(lambda: create_train_state(self.model, tx, image_shape, seed))
        state = init.lower().compile({"xla_backend_optimization_level": 0})()
        self.params = param_count(state.params)
        self.state = sharding.replicate_tree(state, mesh)
        self.data = replicate(data, mesh)
        self.epoch_order = jax.jit(self.batches.order, out_shardings=NamedSharding(mesh, P()))
        self.step, self.order = 0, self.epoch_order(0)
        self.fn = parallel.compile_train_step(step_fn, make_batch, mesh).lower(
            self.state, self.data, self.order).compile()

    def __call__(self, steps: int) -> None:
        in_flight = parallel.DispatchWindow()  # as the loop: XLA:CPU deadlocks with >= 32 steps in flight
        for _ in range(steps):
            if self.step % self.batches.steps_per_epoch == 0:  # as the loop does: a new order per epoch
                self.order = self.epoch_order(self.batches.epoch_of(self.step))
            self.state, metrics = self.fn(self.state, self.data, self.order)
            in_flight.push(metrics)
            self.step += 1
        jax.block_until_ready(self.state)


class _CnnjaxEval:
    """Eval-mode logits of consecutive batches with the program exact evaluation compiles, on the weights of a
    trained `_CnnjaxStep` (its mesh, replicated data and normalisation). The batch indices are on the devices
    beforehand and the logits stay there: the time is the model's, as torch's side keeps its logits too."""

    def __init__(self, train: _CnnjaxStep, batch_size: int) -> None:
        self.variables = {"params": train.state.params, "batch_stats": train.state.batch_stats}
        self.data, self.step = train.data, 0
        starts = range(0, int(train.data.labels.shape[0]) - batch_size + 1, batch_size)
        self.indices = [sharding.replicate_array(np.arange(s, s + batch_size, dtype=np.int32), train.mesh)
                        for s in starts]
        predict = preprocess_predict_fn(train.model, preprocess.standardized(train.mean, train.std), train.mesh)
        self.fn = predict.lower(self.variables, self.data, self.indices[0]).compile()

    def __call__(self, steps: int) -> None:
        in_flight, logits = parallel.DispatchWindow(), None
        for _ in range(steps):
            logits = self.fn(self.variables, self.data, self.indices[self.step % len(self.indices)])
            in_flight.push(logits)
            self.step += 1
        jax.block_until_ready(logits)


def cnnjax_side(name: str, batch_size: int, data: Split, seed: int = 0, label: str = "cnnjax",
                cpu_kernels: bool = True) -> Side:
    """cnnjax's training step for registry model `name`, AOT-compiled (`cpu_kernels=False`: XLA's backward)."""
    step = _CnnjaxStep(name, batch_size, data, seed, cpu_kernels)
    return Side(label, step.params, step)


# ------------------------------------------------------------------------------------------------ torch


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_side(name: str, batch_size: int, data: Split, seed: int = 0, threads: int | None = None) -> Side:
    """The PyTorch twin's training step (`torch_twins`, imported only here: the script works without torch)."""
    import torch
    from torch_twins import TorchTrainStep

    if threads:
        torch.set_num_threads(threads)
    step = TorchTrainStep(name, batch_size, data, base_config().learning_rate, seed)
    return Side("torch", step.params, step)


def eval_side(train: Side, batch_size: int, data: Split) -> Side:
    """Inference with the weights of training side `train` (built after its table: it shares the model)."""
    if isinstance(train.run, _CnnjaxStep):
        return Side(train.framework, train.params, _CnnjaxEval(train.run, batch_size))
    from torch_twins import TorchEvalStep

    return Side(train.framework, train.params, TorchEvalStep(train.run.model, batch_size, data))


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


def format_table(title: str, sides: Sequence[Side], results: Sequence[Sequence[float]]) -> str:
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
    return "\n".join([f"### {title} (parameters: {params})", "", line(header), rule, *map(line, rows)])


def host_info() -> str:
    """The machine and the command, without starting JAX's backend (the parent process must not pick devices)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    lines = [f"machine: {cpu}, {cpu_runtime.cores()} of {os.cpu_count()} cores available to this process, "
             f"{platform.system()} {platform.release()}, python {platform.python_version()}"]
    if hasattr(os, "getloadavg"):
        lines.append("load average (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    lines.append("command: " + " ".join([os.path.basename(sys.executable), *sys.argv]))
    return "\n".join(lines)


def machine_info(threads: int | None) -> str:
    """Where and with what the figures were measured (to paste next to them); starts JAX's backend."""
    lines = [host_info(), f"jax {jax.__version__}: {jax.device_count()} x {jax.default_backend()} device(s); "
                          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"]
    if torch_available():
        import torch

        lines.append(f"torch {torch.__version__}: {threads or torch.get_num_threads()} intra-op threads")
    else:
        lines.append("torch: not installed")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- running


def available_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask; all of them where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cores_of(setting: str, available: Sequence[int]) -> list[int]:
    """The CPUs of a --cores setting: "all", or the first N of this process's; ValueError if impossible."""
    if setting == "all":
        return list(available)
    if not setting.isdigit() or not 1 <= int(setting) <= len(available):
        raise ValueError(f"--cores {setting!r}: use 'all' or a number of cores from 1 to {len(available)}")
    return list(available[:int(setting)])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--cores", default="1,all", help="comma-separated settings, each measured in a child process: "
                                                     "'all' or N (the first N cores of this process)")
    p.add_argument("--batch", type=int, default=128, help="global batch size (training and inference)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=5, help="repetitions per side (alternated)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compilation")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = one per core of the setting)")
    p.add_argument("--examples", type=int, default=6400, help="synthetic examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--xla-backward", action="store_true",
                   help="also time cnnjax's training step with XLA's own convolution backward (model option "
                        "cpu_kernels=false), to see what cnnjax.models.cpu_conv gains")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # measure here: affinity already set
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"no PyTorch twin for {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    args.cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    try:
        for setting in args.cores:
            cores_of(setting, available_cpus())
    except ValueError as e:
        p.error(str(e))
    if not args.cores:
        p.error("--cores needs at least one setting, e.g. 1,all")
    if min(args.batch, args.steps, args.reps) < 1 or min(args.warmup, args.threads) < 0:
        p.error("--batch, --steps and --reps must be positive, --warmup and --threads not negative")
    if args.batch > args.examples:
        p.error(f"--batch {args.batch} exceeds --examples {args.examples}")
    return args


def compare(name: str, args: argparse.Namespace, threads: int, has_torch: bool) -> None:
    """Both tables of one model: training, then inference with the trained sides' weights."""
    data = synthetic_data(args.examples, args.seed, model_info(name).input_shape)
    t0 = time.perf_counter()
    train = [cnnjax_side(name, args.batch, data, args.seed)]
    print(f"\n{name}: cnnjax train step compiled in {time.perf_counter() - t0:.1f} s", flush=True)
    if has_torch:
        train.append(torch_side(name, args.batch, data, args.seed, threads))
        if train[0].params != train[1].params:
            raise SystemExit(f"{name}: parameter counts differ: cnnjax {train[0].params:,} "
                             f"vs torch {train[1].params:,}")
    extra = [cnnjax_side(name, args.batch, data, args.seed, "xla-backward", cpu_kernels=False)] \
        if args.xla_backward else []  # training only: the forward, and so inference, is the same
    results = measure(train + extra, args.steps, args.reps, args.warmup, args.batch)
    print(format_table(f"{name} training", train + extra, results), flush=True)
    evals = [eval_side(side, args.batch, data) for side in train]
    results = measure(evals, args.steps, args.reps, args.warmup, args.batch)
    print("\n" + format_table(f"{name} inference", evals, results), flush=True)


def measure_here(args: argparse.Namespace) -> int:
    """One --cores setting in this process, whose affinity the parent set: torch gets a thread per core, cnnjax
    a device per core dividing the batch (set before anything starts JAX's backend)."""
    devices_set = cpu_runtime.configure_cpu_devices(args.batch)
    cores = available_cpus()
    threads, has_torch = args.threads or len(cores), torch_available()
    print(machine_info(threads if has_torch else None))
    devices_how = ("one per core dividing the batch, by configure_cpu_devices" if devices_set else
                   "configure_cpu_devices left JAX's count alone: tuning off, or set by XLA_FLAGS/JAX_NUM_CPU_DEVICES")
    print(f"setting --cores {args.cores[0]}: CPUs {cores}; torch {threads} intra-op thread(s); cnnjax "
          f"{jax.device_count()} CPU device(s) ({devices_how}); {cpu_runtime.SWITCH} "
          f"{'on' if cpu_runtime.enabled() else 'off'}, GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}")
    print(f"global batch {args.batch}, {args.steps} timed steps x {args.reps} alternated reps after "
          f"{args.warmup} warm-up steps; synthetic {args.examples} uint8 images per model, {NUM_CLASSES} classes")
    for name in args.models:
        compare(name, args, threads, has_torch)
    if not has_torch:
        print(f"\ntorch is not installed, so only cnnjax was measured. To compare: {TORCH_INSTALL}")
    if hasattr(os, "getloadavg"):
        print("\nload average at the end (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return measure_here(args)
    print(host_info())
    print(f"{cpu_runtime.SWITCH}={'on' if cpu_runtime.enabled() else 'off'}; settings: --cores "
          f"{','.join(args.cores)}, each in a child process pinned before JAX and torch are imported")
    available, failed = available_cpus(), 0
    for setting in args.cores:
        cores = cores_of(setting, available)
        print(f"\n## --cores {setting}: CPUs {cores}", flush=True)
        pin = (lambda: os.sched_setaffinity(0, cores)) if hasattr(os, "sched_setaffinity") else None  # Linux
        child = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--cores", setting, "--child"],
                               preexec_fn=pin)
        failed += child.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
