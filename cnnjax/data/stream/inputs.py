"""The streaming pipeline (or the synthetic dataset) as an experiment's input: what `experiment.build` and
the training loop's `_compile` call for `--config.input_pipeline=stream` or `--config.dataset=synthetic`."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnjax.config import ConfigError
from cnnjax.data.mixing import mix_if
from cnnjax.data.pipeline import normalize
from cnnjax.data.sources import DatasetMeta
from cnnjax.data.splits import Datasets
from cnnjax.data.stream import ops
from cnnjax.data.stream.feed import StreamSplit, TrainFeed
from cnnjax.data.stream.loader import Crops, RecordSource, TrainElement, Workers
from cnnjax.data.stream.plan import TrainPlan
from cnnjax.data.stream.state import META_KEY
from cnnjax.data.stream.synthetic import NAME as SYNTHETIC, SyntheticBatches
from cnnjax.evaluate.exact import predict_images_fn
from cnnjax.sharding import AXIS

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STATS_SAMPLE = 500  # training examples (centre crops) the per-channel statistics are estimated from


@dataclasses.dataclass(frozen=True)
class StreamInputs:
    """Sources, crops and statistics of a streamed (or synthetic) run; `programs` builds its loop programs."""

    config: ml_collections.ConfigDict
    meta: DatasetMeta
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_train: int
    crops: Crops
    workers: Workers
    train: RecordSource | None = None  # None: synthetic
    validation: RecordSource | None = None
    num_validation: int = 0

    @property
    def synthetic(self) -> bool:
        return self.train is None

    def datasets(self) -> Datasets:
        """The experiment's `data`: meta and statistics only (the examples are read by the feed)."""
        return Datasets(self.meta, None, None, None, self.mean, self.std)

    def programs(self, exp: Any, step_fn: Callable[..., Any], state: Any, start: int,
                 resume_meta: dict[str, Any] | None) -> dict[str, Any]:
        """The fields of the loop's `_Programs`: the compiled step fed from the host (or the devices)."""
        from cnnjax.train import parallel

        config, mesh = self.config, exp.mesh
        if self.synthetic:
            batches = SyntheticBatches(config.batch_size, self.meta.image_shape, self.meta.num_classes, config.seed)
            make_batch = lambda _data, _order, step: self.device_batch(exp, batches(step), step)  # noqa: E731
            compiled = parallel.compile_train_step(step_fn, make_batch, mesh).lower(state, None, None).compile()
            return dict(train_step=compiled, epoch_order=lambda _epoch: None, train_data=None, val_data=None,
                        val_labels=None, predict=None)
        make_batch = lambda data, _order, step: self.device_batch(exp, data, step)  # noqa: E731
        shape = (config.batch_size, *self.meta.image_shape)
        abstract = (jax.ShapeDtypeStruct(shape, np.uint8, sharding=NamedSharding(mesh, P(AXIS))),
                    jax.ShapeDtypeStruct(shape[:1], np.int32, sharding=NamedSharding(mesh, P(AXIS))))
        compiled = parallel.compile_train_step(step_fn, make_batch, mesh).lower(state, abstract, None).compile()
        plan = TrainPlan(self.num_train, config.batch_size, config.seed, jax.process_index(), jax.process_count())
        feed = TrainFeed(TrainElement(self.train, plan, self.crops), exp.total_steps, self.workers, mesh, start,
                         (resume_meta or {}).get(META_KEY), config.stream.record_ids_to)
        validation = None
        if self.validation is not None:
            validation = StreamSplit(self.validation, self.num_validation, self.crops, self.workers)
        return dict(train_step=lambda st, data, _order: compiled(st, data.next(), None),
                    epoch_order=lambda epoch: epoch, train_data=feed, val_data=validation,
                    val_labels=validation.labels if validation is not None else None,
                    predict=self.predict_fn(exp.model, mesh, exp.dtype),
                    checkpoint_meta=feed.checkpoint_meta, close=feed.close)

    def eval_split(self, split: str, num_examples: int | None = None) -> StreamSplit:
        """`split` ("train", "validation", "test") of the run's dataset as `eval.py` scores it: "train" and
        "validation" are the run's `stream.train_split`/`stream.eval_split`, read with the evaluation crops."""
        from cnnjax.data.records import open_source

        s = self.config.stream
        name = {"train": s.train_split, "validation": s.eval_split}.get(split, split)
        if not name:
            raise ConfigError("this run streamed no validation split (stream.eval_split is empty); use --split test "
                              "or --split train")
        source = open_source(self.config.dataset, name, self.config.data_dir)
        return StreamSplit(source, min(len(source), num_examples or len(source)), self.crops, self.workers)

    def predict_fn(self, model: Any, mesh: Any, dtype: Any) -> Callable[..., jax.Array]:
        """jit(variables, images) -> logits of a streamed batch, normalised with the run's statistics."""
        return predict_images_fn(model, functools.partial(normalize, mean=self.mean, std=self.std, dtype=dtype),
                                 mesh)

    def device_batch(self, exp: Any, batch: tuple[jax.Array, jax.Array],
                     step: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The host-cropped global batch as the step takes it: through `config.augment`'s device ops (keyed by step
        exactly as the in-memory pipeline's), normalised, then mixed if the run mixes (keyed by the step)."""
        images, labels = batch
        images = normalize(exp.batches.augmented(images, step), self.mean, self.std, exp.dtype)
        return mix_if(exp.mixer, images, labels, step)


def build(config: ml_collections.ConfigDict) -> StreamInputs:
    """Opens the run's sources (nothing is decoded but a statistics sample) and checks the sizes."""
    s = config.stream
    workers = Workers(s.worker_count, s.prefetch)
    if config.dataset == SYNTHETIC:
        shape = (s.crop_size, s.crop_size, 3)
        meta = DatasetMeta(SYNTHETIC, s.synthetic_classes, tuple(map(str, range(s.synthetic_classes))), shape,
                           {"train": s.synthetic_examples})
        return StreamInputs(config, meta, IMAGENET_MEAN, IMAGENET_STD, s.synthetic_examples, Crops(), workers)
    from cnnjax.data.records import open_source

    train = open_source(config.dataset, s.train_split, config.data_dir)
    channels = train.meta.image_shape[-1] or 3
    crops = Crops(s.crop_size, s.resize_size, s.min_scale, s.flip, s.ten_crop, channels)
    num_train = min(len(train), config.num_train_examples or len(train))
    validation, num_validation = None, 0
    if s.eval_split:
        validation = open_source(config.dataset, s.eval_split, config.data_dir)
        num_validation = min(len(validation), s.max_eval_examples or len(validation))
    mean, std = _statistics(s.stats, train, num_train, crops, config.validation_seed)
    meta = dataclasses.replace(train.meta, image_shape=(s.crop_size, s.crop_size, channels))
    return StreamInputs(config, meta, mean, std, num_train, crops, workers, train, validation, num_validation)


def _statistics(kind: str, source: RecordSource, num_train: int, crops: Crops,
                seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std in [0, 1] units: ImageNet's standard values, or estimated from a sample."""
    if kind == "imagenet" or (kind == "auto" and crops.channels == 3):
        if crops.channels != 3:
            raise ConfigError(f"stream.stats='imagenet' needs 3-channel images, these have {crops.channels}; "
                              "use stream.stats='sample'")
        return IMAGENET_MEAN, IMAGENET_STD
    sample = np.random.default_rng([seed, 7]).permutation(num_train)[:STATS_SAMPLE]
    pixels = np.stack([ops.eval_example(source[int(i)]["image"], crops.crop_size, crops.resize_size, crops.channels)
                       for i in np.sort(sample)]).reshape(-1, crops.channels).astype(np.float64) / 255.0
    return tuple(pixels.mean(0).tolist()), tuple(pixels.std(0).tolist())
