"""Scoring converted weights (`cnnjax convert MODEL FILE --out DIR`) with the model's own preprocessing.

A convert output is not a training workdir: it has no run.json (so no dataset, no normalisation statistics)
and no steps. Pretrained models expect what they were trained on, which the registry records
(`ModelInfo.input_shape`, `crop_pct`, `mean`, `std`): so images are resized to `size / crop_pct` on their
shorter side, centre-cropped to `size` (the torchvision/timm evaluation transform), grayscale is repeated
to the model's RGB channels, and they are normalised with the model's mean/std — never the dataset's.
This runs inside the jitted predict function, batch by batch, so a 28x28 split never exists at 224x224
in memory.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from cnnjax import sharding
from cnnjax.data.pipeline import replicate
from cnnjax.data.sources import dataset_meta, load_split
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.exact import classification_metrics, predict_fn_for, predict_images_fn, predict_logits
from cnnjax.evaluate.outputs import prepare as prepare_outputs, write_outputs
from cnnjax.evaluate.restore import abstract_variables, converted_tree, restore_converted
from cnnjax.models import create_model, model_info
from cnnjax.models.registry import ModelInfo

DEFAULT_BATCH = 64


def resize_size(info: ModelInfo) -> int:
    """Shorter-side size before the centre crop, as torchvision computes it (224 / 0.875 = 256)."""
    return int(info.input_shape[0] / info.crop_pct)


def preprocess(images: jax.Array, info: ModelInfo) -> jax.Array:
    """uint8 (N, H, W, C) -> the model's float32 input: resize, centre crop, channels, mean/std."""
    x = images.astype(jnp.float32) / 255.0
    n, h, w, c = x.shape
    size, channels = info.input_shape[0], info.input_shape[2]
    scale = resize_size(info) / min(h, w)
    rh, rw = max(size, round(h * scale)), max(size, round(w * scale))
    if (rh, rw) != (h, w):
        x = jax.image.resize(x, (n, rh, rw, c), method="bilinear", antialias=True)
    top, left = (rh - size) // 2, (rw - size) // 2
    x = x[:, top:top + size, left:left + size, :]
    if c == 1 and channels == 3:
        x = jnp.repeat(x, 3, axis=-1)
    return (x - jnp.asarray(info.mean)) / jnp.asarray(info.std)


def _normalize(images: jax.Array, info: ModelInfo) -> jax.Array:
    """Host-cropped uint8 images -> the model's input: channels, mean/std (the crop is already done)."""
    x = images.astype(jnp.float32) / 255.0
    if x.shape[-1] == 1 and info.input_shape[2] == 3:
        x = jnp.repeat(x, 3, axis=-1)
    return (x - jnp.asarray(info.mean)) / jnp.asarray(info.std)


def _streamed_split(dataset: str, split: str, data_dir: str, info: ModelInfo, num_examples: int | None):
    """`split` read, decoded and cut on the host as torchvision's evaluation transform does it (PIL: shorter
    side bilinear to `resize_size`, centre crop), batch by batch, every example once."""
    from cnnjax.data.records import open_source
    from cnnjax.data.stream.feed import StreamSplit
    from cnnjax.data.stream.loader import Crops, Workers

    source = open_source(dataset, split, data_dir)
    crops = Crops(crop_size=info.input_shape[0], resize_size=resize_size(info), ten_crop=False,
                  channels=source.meta.image_shape[2] or 3)
    return StreamSplit(source, min(len(source), num_examples or len(source)), crops, Workers())


def evaluate_weights(path: str | pathlib.Path, model: str | None, dataset: str | None, split: str = "test",
                     out: str | pathlib.Path | None = None, batch_size: int | None = None, *,
                     num_examples: int | None = None, data_dir: str = "") -> dict[str, Any]:
    """Scores the converted checkpoint `path` for registry model `model` on `dataset`/`split`."""
    path = pathlib.Path(path)
    if model is None or dataset is None:
        raise CnnjaxError(f"{path} holds converted weights, which do not record their model or dataset: "
                          "pass both (eval.py --model NAME --dataset NAME)")
    info = model_info(model)
    meta = dataset_meta(dataset, data_dir)
    if meta.image_shape[2] not in (1, info.input_shape[2]):
        raise CnnjaxError(f"{dataset} has {meta.image_shape[2]}-channel images; {model} takes "
                          f"{info.input_shape[2]} channels")
    saved = converted_tree(path)
    outputs = prepare_outputs(str(out), path) if out is not None else None
    mesh = sharding.make_mesh(0)
    net, target = _model_for(saved, info, meta.num_classes, mesh, path)
    variables = restore_converted(path, target)
    if None in meta.image_shape[:2]:  # images of varying sizes (ImageNet): decoded and cropped on the host
        data = _streamed_split(dataset, split, data_dir, info, num_examples)
        predict_fn = predict_images_fn(net, functools.partial(_normalize, info=info), mesh)
        device_data = data
    else:
        data = load_split(dataset, split, data_dir)
        if num_examples:
            data = data.take(np.arange(min(num_examples, len(data))))
        predict_fn = predict_fn_for(net, functools.partial(preprocess, info=info), mesh)
        device_data = replicate(data, mesh)
    logits = predict_logits(predict_fn, variables, device_data, batch_size or DEFAULT_BATCH, mesh)
    result = {"workdir": str(path), "model": model, "dataset": dataset, "split": split, "step": "converted",
              "epoch": None, "preprocessing": {"resize": resize_size(info), "crop": info.input_shape[0],
                                               "mean": list(info.mean), "std": list(info.std)},
              **classification_metrics(logits, data.labels)}
    if outputs is not None and jax.process_index() == 0:  # the processes computed the same; one writes
        write_outputs(outputs, result, logits, data.labels, meta, title=f"{model} (converted) on {dataset} {split}")
    return result


def _model_for(saved: dict[str, Any], info: ModelInfo, dataset_classes: int, mesh: Mesh,
               path: pathlib.Path) -> tuple[Any, dict[str, Any]]:
    """The model whose variable shapes are those saved: its registry head, or one re-sized to the dataset
    (`cnnjax convert --num-classes`)."""
    want = _shapes(saved)
    for num_classes in dict.fromkeys((info.num_classes, dataset_classes)):
        net = create_model(info.name, num_classes)
        target = abstract_variables(net, info.input_shape, mesh)
        if _shapes(target) == {k: v for k, v in want.items() if k.split("/")[0] in target}:
            return net, target
    counts = " or ".join(map(str, dict.fromkeys((info.num_classes, dataset_classes))))
    raise CnnjaxError(f"{path} does not hold {info.name} weights with {counts} classes (converted for another "
                      "model?)")


def _shapes(tree: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {"/".join(str(getattr(k, "key", k)) for k in p): tuple(v.shape)
            for p, v in jax.tree_util.tree_leaves_with_path(tree)}
