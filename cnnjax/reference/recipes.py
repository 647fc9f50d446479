"""The papers' training recipes as configs: what `configs/imagenet/*.py` and `configs/cifar10/*.py` build on.

Why a module and not a `common.py` beside the config files: `load_config` runs each file on its own (no
package, no sys.path entry), so a sibling import would need path tricks; a package import works anywhere.
Every recipe starts from `cnnjax.config.base_config()` and sets keys by name, so a key that does not exist
is an error here rather than a silently ignored setting.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from cnnjax.config import ConfigError, base_config
from cnnjax.models import model_info

CIFAR_TRAIN_EXAMPLES = 50_000
# AlexNet and VGG trained on random 224 crops of 256x256 images: the streaming pipeline's random-resized crop
# with at least this area fraction (aspect ratio still jittered in [3/4, 4/3]) is the nearest it has.
FIXED_SCALE_CROP = dict(min_scale=(224 / 256) ** 2)
CIFAR_AUGMENT = "random_crop(padding=4)|flip_lr"  # He et al. 2016 sec. 4.2: 4-pixel pad, 32 crop, flip


def _set(config: ml_collections.ConfigDict, keys: dict[str, Any]) -> ml_collections.ConfigDict:
    """Sets existing keys only: a typo in a recipe fails loading instead of adding an unused key."""
    for key, value in keys.items():
        if key not in config:
            raise ConfigError(f"recipe key {key!r} is not a config key; see cnnjax.config.base_config()")
        config[key] = value
    return config


def paper_recipe(model: str, dataset: str, *, model_overrides: dict[str, Any] | None = None,
                 **keys: Any) -> ml_collections.ConfigDict:
    """base_config() with the model, dataset, model options and the recipe's keys set."""
    config = _set(base_config(), dict(model=model, dataset=dataset, **keys))
    for name, value in (model_overrides or {}).items():
        config.model_overrides[name] = value
    return config


def imagenet_recipe(model: str, *, stream: dict[str, Any] | None = None, **keys: Any) -> ml_collections.ConfigDict:
    """ILSVRC-2012 (TFDS imagenet2012, 1,281,167 training images) through the streaming input pipeline: random
    resized crops at the model's input size and flips on the host (`augment` adds device ops), validation on the 50k validation set
    (centre crop of the shorter side resized to crop / crop_pct, e.g. 224 of 256); `stream` overrides its keys.
    """
    config = paper_recipe(model, "imagenet2012", input_pipeline="stream", **{"augment": "", **keys})
    info = model_info(model)
    config.stream.crop_size = info.input_shape[0]
    config.stream.resize_size = round(info.input_shape[0] / info.crop_pct)
    _set(config.stream, stream or {})
    return config


def cifar10_recipe(model: str, **keys: Any) -> ml_collections.ConfigDict:
    """CIFAR-10 as the papers ran it: all 50k training images (validation_size=0), tested on the 10k test set."""
    return paper_recipe(model, "cifar10", augment=CIFAR_AUGMENT, validation_size=0, **keys)


def torchvision_step_recipe(model: str, **keys: Any) -> ml_collections.ConfigDict:
    """torchvision's reference classification recipe (references/classification, README "ResNet"), also
    DenseNet's (Huang et al. 2017 sec. 4.1, with Nesterov): SGD momentum 0.9, lr 0.1 per 256 images, ÷10 at
    epochs 30 and 60 of 90, weight decay 1e-4 on every parameter (torchvision's default
    norm_weight_decay=None decays BatchNorm too), batch 256 (32 x 8 GPUs)."""
    recipe = dict(optimizer="momentum", momentum=0.9, learning_rate=0.1, lr_scaling="linear", batch_size=256,
                  num_epochs=90, schedule="step", lr_boundaries_epochs=(30, 60), lr_decay_factor=0.1,
                  weight_decay=1e-4, weight_decay_mask="all")
    return imagenet_recipe(model, **{**recipe, **keys})


def epochs_for_iterations(iterations: int, batch_size: int, num_examples: int) -> int:
    """Whole epochs that hold `iterations` steps of `batch_size` (the loop drops each epoch's last partial
    batch), rounded to the nearest epoch: He et al.'s 32k/48k/64k iterations at batch 128 on 50k images
    are epochs 82/123/164."""
    return round(iterations / (num_examples // batch_size))


def he_cifar_resnet_recipe(model: str, **keys: Any) -> ml_collections.ConfigDict:
    """He et al. 2016 sec. 4.2: SGD momentum 0.9, lr 0.1, weight decay 1e-4, batch 128, ÷10 at 32k and 48k
    iterations, stop at 64k; option A (zero-padding, parameter-free) shortcuts."""
    batch = keys.get("batch_size", 128)
    at = lambda iterations: epochs_for_iterations(iterations, batch, CIFAR_TRAIN_EXAMPLES)
    recipe = dict(optimizer="momentum", momentum=0.9, learning_rate=0.1, batch_size=batch, weight_decay=1e-4,
                  schedule="step", lr_boundaries_epochs=(at(32_000), at(48_000)), lr_decay_factor=0.1,
                  num_epochs=at(64_000))
    return cifar10_recipe(model, model_overrides=dict(shortcut="A"), **{**recipe, **keys})
