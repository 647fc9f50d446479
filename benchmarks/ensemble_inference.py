"""Ensemble inference: members of one architecture one by one versus stacked in one vmapped program.

Why: the ensemble evaluator computes every member's logits on the fit and report splits. Members that
share an architecture can run as one jitted forward vmapped over stacked parameters
(`cnnjax.ensemble.inference`), which reads and shards each batch of images once and dispatches one
program per batch instead of one per member. This measures what that buys against the one-member path
of single-checkpoint evaluation (`cnnjax.evaluate.exact.make_predict_fn`), on the same exact-evaluation
loop (`predict_logits`), same data, same batch size, and checks that both give the same logits.

Usage:
    python benchmarks/ensemble_inference.py                           # lenet5, 8 members, 10,000 images
    python benchmarks/ensemble_inference.py --model resnet20 --members 4 --examples 2000 --image 32x32x3

Repetitions alternate (one-by-one, stacked, one-by-one, ...) and the median of each side is reported,
with the ratio, the machine and the command line.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import numpy as np

from cnnjax import sharding
from cnnjax.data import preprocess
from cnnjax.data.pipeline import replicate
from cnnjax.data.sources import Split
from cnnjax.ensemble import inference
from cnnjax.evaluate.exact import make_predict_fn, predict_logits
from cnnjax.models import create_model


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--image", default="28x28x1", help="HxWxC")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    shape = tuple(int(x) for x in args.image.split("x"))
    mesh = sharding.make_mesh()
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (args.examples, *shape), dtype=np.uint8),
                  rng.integers(0, args.classes, args.examples).astype(np.int32))
    data = replicate(split, mesh)
    model = create_model(args.model, args.classes)
    variables = [sharding.replicate_tree(model.init({"params": jax.random.key(i), "dropout": jax.random.key(i)},
                                                    np.zeros((1, *shape), np.float32), train=False), mesh)
                 for i in range(args.members)]
    mean, std = (0.5,) * shape[-1], (0.25,) * shape[-1]
    single_fn = make_predict_fn(model, mean, std, mesh)
    stacked = inference.stack_members(variables, [preprocess.standardized(mean, std)] * args.members, mesh)
    stacked_fns = {"stacked (lax.map)": inference.stacked_predict_fn(model, mesh),
                   "stacked (vmap)": inference.stacked_predict_fn(model, mesh, vectorize=True)}

    def one_by_one() -> np.ndarray:
        return np.stack([predict_logits(single_fn, v, data, args.batch, mesh) for v in variables])

    def together(fn) -> np.ndarray:
        return inference.group_logits(fn, stacked, data, args.batch, mesh)

    paths = {"one by one": one_by_one, **{name: (lambda f=f: together(f)) for name, f in stacked_fns.items()}}
    outputs = {name: path() for name, path in paths.items()}  # compiles each
    reference = outputs["one by one"]
    error = max(float(np.abs(reference - out).max()) for out in outputs.values())
    scale = float(np.abs(reference).max())
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.reps):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.default_backend()}, {mesh.size} device(s)), load {os.getloadavg()[0]:.2f}")
    print(f"# {' '.join(['python', *sys.argv])}")
    print(f"{args.members} x {args.model} on {args.examples:,} images {args.image}, batch {args.batch}; "
          f"max |logit difference| {error:.2e} (logit scale {scale:.2f})")
    print("| path | median s | member-images/s |\n|---|--:|--:|")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {args.members * args.examples / seconds:,.0f} |")
    for name in stacked_fns:
        print(f"{name} / one by one speed: {medians['one by one'] / medians[name]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
