"""`cnnjax augment`: a PNG grid of training examples as the in-memory pipeline feeds them, so a user can see
what a config's `augment` spec does before training on it.

Row 0 holds `cols` examples of the first training batch as stored; row r >= 1 holds the same examples through
the run's own `TrainBatches.augmented` at step r - 1 (same ops, context and key derivation as training, the
key seeded by `seed`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.config import ConfigError, load_config
from cnnjax.data.pipeline import train_batches
from cnnjax.data.splits import load_for_config
from cnnjax.data.types import uses_stream
from cnnjax.errors import CnnjaxError

PAD = 2  # white pixels between and around the tiles
AUTO_TILE = 64  # scale=0: the smallest integer upscaling that makes a tile at least this many pixels high


class GridWriteError(CnnjaxError):
    """The PNG could not be written where asked."""


def augment_rows(config_path: str, overrides: Sequence[str], rows: int, cols: int, seed: int) -> np.ndarray:
    """(rows, cols, H, W, C) uint8: the originals, then rows - 1 augmented passes."""
    if rows < 1 or cols < 1:
        raise ConfigError(f"--rows and --cols must be positive, got {rows} and {cols}")
    config = load_config(config_path, overrides)
    if uses_stream(config):
        raise ConfigError("cnnjax augment draws the in-memory pipeline; use a config with "
                          "--config.input_pipeline=memory (a small num_train_examples is enough)")
    data = load_for_config(config, with_test=False)
    cols = min(cols, len(data.train))
    batches = train_batches(config, len(data.train), data.train.images, data.meta.image_shape[-1])
    batches = dataclasses.replace(batches, seed=seed)
    originals = data.train.images[np.sort(np.asarray(batches.order(0))[:cols])]
    augmented = jax.jit(batches.augmented)  # one compile for every row (the step is traced)
    passes = [np.asarray(augmented(originals, jnp.asarray(step, jnp.int32))) for step in range(rows - 1)]
    return np.stack([originals, *passes])


def mosaic(tiles: np.ndarray, scale: int = 0) -> np.ndarray:
    """(rows, cols, H, W, C) uint8 -> one RGB image, each tile upscaled `scale` times (0: auto) and framed."""
    rows, cols, h, w, channels = tiles.shape
    scale = scale or max(1, -(-AUTO_TILE // h))
    tiles = tiles.repeat(scale, 2).repeat(scale, 3)
    tiles = np.broadcast_to(tiles, (*tiles.shape[:4], 3)) if channels == 1 else tiles
    th, tw = h * scale, w * scale
    out = np.full((rows * th + (rows + 1) * PAD, cols * tw + (cols + 1) * PAD, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = PAD + r * (th + PAD), PAD + c * (tw + PAD)
            out[top:top + th, left:left + tw] = tiles[r, c]
    return out


def write_grid(config_path: str, overrides: Sequence[str], out: str | pathlib.Path, rows: int = 4, cols: int = 8,
               seed: int = 0, scale: int = 0) -> pathlib.Path:
    """Writes the grid PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    path = pathlib.Path(out)
    if path.suffix.lower() != ".png":
        raise GridWriteError(f"--out {str(out)!r} must end in .png")
    if not path.parent.is_dir():
        raise GridWriteError(f"cannot write {str(out)!r}: directory {str(path.parent)!r} does not exist")
    image = mosaic(augment_rows(config_path, overrides, rows, cols, seed), scale)
    try:
        matplotlib.image.imsave(path, image)
    except OSError as err:
        raise GridWriteError(f"cannot write {str(out)!r}: {err.strerror or err}") from None
    return path
