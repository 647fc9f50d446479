"""`cnnjax visualize` (arguments: `add_arguments`/`run`, registered in cli.py): what a trained network's first layers look at (seed 000's filter images, seed 004 §7).

Two kinds of PNG, each a grid of small images written pixel-exactly (`plt.imsave`, nearest-neighbour zoom):
- filters.png: the first convolution's filters, each normalised to its own [min, max] (RGB when it reads 3
  channels, else its first input channel in grey). Smooth, varied filters mean a trained layer; noisy ones an
  untrained one or too high a learning rate.
- feature_maps_<k>_<layer>.png: every channel of the first `num_layers` convolutions' outputs for one input
  (input.png), each normalised alone; all-dark tiles are units that do not fire on it.

The convolutions are found by intercepting the model's `nn.Conv` calls, so any model of the zoo works.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from cnnjax.data import preprocess
from cnnjax.evaluate.run import split_and_statistics
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.workdir_model import load_workdir_model
from cnnjax.plots import pyplot

ZOOM, GAP = 8, 2  # pixels per weight/activation, background pixels between tiles


@dataclasses.dataclass(frozen=True)
class ConvCall:
    path: str
    outputs: np.ndarray  # (H, W, C) of the one input


def conv_calls(model: nn.Module, variables: dict[str, Any], image: np.ndarray) -> list[ConvCall]:
    """Every `nn.Conv` call of an inference pass of one (H, W, C) float image, in call order."""
    calls: list[tuple[str, jax.Array]] = []

    def record(next_fun: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and isinstance(context.module, nn.Conv):
            calls.append(("/".join(context.module.path), out))
        return out

    with nn.intercept_methods(record):
        model.apply(variables, image[None], train=False)
    return [ConvCall(path, np.asarray(out[0], np.float32)) for path, out in calls]


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the most square grid holding `count` tiles."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def mosaic(tiles: np.ndarray) -> np.ndarray:
    """(N, h, w[, 3]) tiles in [0, 1] -> one image of grid_shape(N), each tile zoomed ZOOM x, GAP between."""
    rows, cols = grid_shape(len(tiles))
    h, w = tiles.shape[1] * ZOOM, tiles.shape[2] * ZOOM
    out = np.ones((rows * h + (rows - 1) * GAP, cols * w + (cols - 1) * GAP, *tiles.shape[3:]), np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        big = tile.repeat(ZOOM, 0).repeat(ZOOM, 1)
        out[r * (h + GAP):r * (h + GAP) + h, c * (w + GAP):c * (w + GAP) + w] = big
    return out


def normalise_each(tiles: np.ndarray) -> np.ndarray:
    """Each tile (first axis) scaled to [0, 1] by its own min and max (a constant tile becomes 0)."""
    flat = tiles.reshape(len(tiles), -1)
    low, span = flat.min(1), np.ptp(flat, 1)
    shape = (-1,) + (1,) * (tiles.ndim - 1)
    return (tiles - low.reshape(shape)) / np.where(span > 0, span, 1.0).reshape(shape)


def filter_tiles(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, in, out) kernel -> (out, kh, kw[, 3]) tiles: RGB for 3 input channels, else the first one."""
    tiles = np.moveaxis(kernel, -1, 0)
    tiles = tiles if kernel.shape[2] == 3 else tiles[..., 0]
    return normalise_each(tiles)


def visualize(workdir: str | pathlib.Path, out: str | pathlib.Path, step: int | None = None, split: str = "test",
              index: int = 0, num_layers: int = 2) -> list[pathlib.Path]:
    """Writes input.png, filters.png and feature-map grids of the first `num_layers` convolutions into `out`."""
    source = load_workdir_model(workdir, step)
    _, examples, stats = split_and_statistics(source.config, workdir, split)
    if not 0 <= index < len(examples):
        raise CnnjaxError(f"--index {index} is outside the {len(examples)} examples of {split}")
    image = np.asarray(preprocess.apply(stats, examples.images[index:index + 1]))[0]
    calls = conv_calls(source.model, source.variables, image)
    if not calls:
        raise CnnjaxError(f"{source.config.model} has no convolution: nothing to draw (an MLP has no filters)")
    out = pathlib.Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CnnjaxError(f"--out {str(out)!r}: cannot create the directory ({err.strerror or err})") from None
    plt, written = pyplot(), []

    def save(name: str, picture: np.ndarray) -> None:
        path = out / name
        plt.imsave(path, picture, cmap=None if picture.ndim == 3 else "gray", vmin=0.0, vmax=1.0)
        written.append(path)

    raw = examples.images[index].astype(np.float32) / 255.0
    save("input.png", mosaic(raw[None] if raw.shape[-1] == 3 else raw[None, ..., 0]))
    first = source.variables["params"]
    for part in calls[0].path.split("/"):
        first = first[part]
    save("filters.png", mosaic(filter_tiles(np.asarray(first["kernel"], np.float32))))
    for k, call in enumerate(calls[:num_layers]):
        save(f"feature_maps_{k}_{call.path.replace('/', '.')}.png",
             mosaic(normalise_each(np.moveaxis(call.outputs, -1, 0))))
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="training workdir (its best checkpoint unless --step)")
    parser.add_argument("--step", type=int, default=None, help="this checkpoint step instead of the best")
    parser.add_argument("--out", required=True, metavar="DIR", help="write the PNGs here")
    parser.add_argument("--split", default="test", help="where the sample input comes from: train, validation, test")
    parser.add_argument("--index", type=int, default=0, help="which example of the split is the sample input")
    parser.add_argument("--layers", type=int, default=2, help="feature maps of the first N convolutions")


def run(args: argparse.Namespace) -> None:
    if args.layers < 1:
        raise CnnjaxError(f"--layers must be >= 1, got {args.layers}")
    for path in visualize(args.workdir, args.out, args.step, args.split, args.index, args.layers):
        print(f"wrote {path}")
