"""Per-example augmentation ops that run inside jit, composed by name: "random_crop(padding=4)|flip_lr".

The registry, parser and batch application are in `registry` (pixel units and dtypes are explained there);
the ops register themselves by name when their module is imported here: `geometric` (crops, flips, the
affine family), `color` (channel shift, HSV jitter, fancy PCA), `erasing`, `rand_augment`. Ops that need the
training data (fancy PCA) get it from an `AugmentContext` built by `context_for`.
"""

from cnnjax.data.augment.registry import (AugmentContext, AugmentSpecError, Op, apply, op_names, parse,
                                          parse_calls, register_op)
from cnnjax.data.augment.geometric import (flip_lr, flip_ud, random_crop, random_resized_crop, random_scale, rotate,
                                           shear, translate, warp, zoom)
from cnnjax.data.augment.color import channel_shift, context_for, fancy_pca, hsv_jitter, needs_training_pca, rgb_pca
from cnnjax.data.augment.erasing import random_erasing
from cnnjax.data.augment.rand_augment import randaugment

__all__ = ["AugmentContext", "AugmentSpecError", "Op", "apply", "channel_shift", "context_for", "fancy_pca",
           "flip_lr", "flip_ud", "hsv_jitter", "needs_training_pca", "op_names", "parse", "parse_calls",
           "randaugment", "random_crop", "random_erasing", "random_resized_crop", "random_scale", "register_op",
           "rgb_pca", "rotate", "shear", "translate", "warp", "zoom"]
