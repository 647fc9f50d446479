"""Input pipeline throughput: decoded + augmented 224x224 images/s per host core, and the device ceiling.

Why: a streaming run is input-bound unless each accelerator gets enough host workers. This measures what the
streaming pipeline's training path (`cnnjax.data.stream`: JPEG decode, random-resized crop, flip, batching
in grain worker processes) delivers with 1..N workers, so that workers per accelerator = (device images/s)
/ (images/s per worker). The device side is measured with `--config.dataset=synthetic` (images generated on
the devices: no host input at all), running the same compiled train step as train.py.

Usage:
    python benchmarks/input_pipeline.py                              # generated ImageNet-sized JPEGs
    python benchmarks/input_pipeline.py --workers 1,2,4 --batches 20 --model resnet18
    python benchmarks/input_pipeline.py --dataset imagenet2012 --data_dir ~/tensorflow_datasets

Flags: --dataset/--data_dir (a prepared dataset's train split; default: --images generated JPEGs of
--size, ImageNet's typical 500x375), --workers (comma-separated worker counts; 0 = in the main process),
--batch (images per batch), --batches (timed batches per worker count, after one untimed), --crop (crop
size), --model/--steps/--device_batch (synthetic-data step rate; --model none skips it).
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import sys
import time
from typing import Sequence

import numpy as np
from PIL import Image

from cnnjax.data.stream import loader
from cnnjax.data.stream.loader import Crops, TrainElement, Workers
from cnnjax.data.stream.plan import TrainPlan


class GeneratedJpegs:
    """`num` JPEGs of ImageNet's typical size (smooth gradients plus noise, quality 90: ~100 KB each)."""

    def __init__(self, num: int, size: tuple[int, int] = (500, 375), seed: int = 0):
        rng = np.random.default_rng(seed)
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w]
        self.images = []
        for i in range(num):
            base = np.stack([(xx * (i + 1) + yy) % 256, (yy * 2 + i * 40) % 256, (xx + yy * 3) % 256], -1)
            pixels = np.clip(base + rng.integers(-25, 26, base.shape), 0, 255).astype(np.uint8)
            out = io.BytesIO()
            Image.fromarray(pixels).save(out, "JPEG", quality=90)
            self.images.append(out.getvalue())

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": index % 1000}


def host_throughput(source, workers: int, batch: int, batches: int, crop: int) -> float:
    """Images/s of the training path with `workers` processes (the first batch, with worker start-up, untimed)."""
    plan = TrainPlan(len(source), batch, seed=0)
    ds = loader.dataset(TrainElement(source, plan, Crops(crop_size=crop)), batches + 1, Workers(workers, 2))
    iterator = iter(ds)
    try:
        next(iterator)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        return batches * batch / (time.perf_counter() - t0)
    finally:
        getattr(iterator, "close", lambda: None)()


def device_throughput(model: str, batch: int, steps: int, crop: int) -> float:
    """Images/s of train.py's compiled step on device-generated data (`--config.dataset=synthetic`)."""
    import jax

    from cnnjax.config import base_config, validate
    from cnnjax.train import experiment
    from cnnjax.train.step import StepConfig, train_step

    config = base_config()
    config.model, config.dataset, config.batch_size = model, "synthetic", batch
    config.stream.crop_size = config.stream.resize_size = crop
    validate(config)
    exp = experiment.build(config)
    state = exp.init_state()
    step_fn = functools.partial(train_step, model=exp.model, tx=exp.tx, schedule=exp.schedule,
                                cfg=StepConfig.from_config(config))
    compiled = exp.inputs.programs(exp, step_fn, state, 0, None)["train_step"]
    state, metrics = compiled(state, None, None)  # warm-up
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, None, None)
    jax.block_until_ready(metrics)
    return steps * batch / (time.perf_counter() - t0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="", help="a prepared dataset (its train split); default: generated JPEGs")
    p.add_argument("--data_dir", default="")
    p.add_argument("--images", type=int, default=256, help="generated JPEGs (without --dataset)")
    p.add_argument("--size", default="500x375", help="generated JPEG size WxH")
    p.add_argument("--workers", default="", help="comma-separated worker counts (default: 0..cores)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--model", default="resnet18", help="model for the synthetic-data device rate; none = skip")
    p.add_argument("--device_batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_throughput import machine_info

    print(machine_info(None))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts = [int(w) for w in args.workers.split(",")] if args.workers else list(range(0, cores + 1))
    if args.dataset:
        from cnnjax.data.records import open_source

        source, what = open_source(args.dataset, "train", args.data_dir), f"{args.dataset} train"
    else:
        w, h = map(int, args.size.split("x"))
        source, what = GeneratedJpegs(args.images, (w, h)), f"{args.images} generated {w}x{h} JPEGs"
    print(f"\nhost: {what} -> decode, random-resized crop {args.crop}x{args.crop}, flip; batches of {args.batch}")
    print(f"{'workers':>8} {'images/s':>10} {'per worker':>11}")
    for count in counts:
        rate = host_throughput(source, count, args.batch, args.batches, args.crop)
        print(f"{count:>8} {rate:>10.1f} {rate / max(count, 1):>11.1f}" + ("  (in the main process)" if not count
                                                                          else ""), flush=True)
    if args.model != "none":
        rate = device_throughput(args.model, args.device_batch, args.steps, args.crop)
        print(f"\ndevice: {args.model} train step on synthetic {args.crop}x{args.crop} data, batch {args.device_batch}:"
              f" {rate:.1f} images/s -> host workers needed to keep up: rate / (images/s per worker)")
    if hasattr(os, "getloadavg"):
        print("\nload average at the end (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
