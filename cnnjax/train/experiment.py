"""Everything a config determines before the first step: data, model, mesh, batches, optimizer, state.

Training and evaluation both build it, so a checkpoint is always restored into exactly the structure it
was saved from.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from cnnjax.config import ConfigError
from cnnjax.config_checks import as_config_error
from cnnjax.data import balance
from cnnjax.data.splits import Datasets, load_for_config
from cnnjax.data.types import uses_stream
from cnnjax.data import resize
from cnnjax.data.mixing import Mixer, mix_if
from cnnjax.data.pipeline import DeviceSplit, TrainBatches, train_batches
from cnnjax.data.stream import inputs as stream_inputs
from cnnjax.models import create_model, model_info
from cnnjax.models.head import head_path
from cnnjax import cpu_runtime, sharding
from cnnjax.train import optim, param_groups
from cnnjax.train.state import TrainState, create_train_state

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class Experiment:
    config: ml_collections.ConfigDict
    data: Datasets
    model: nn.Module
    mesh: Mesh
    batches: TrainBatches
    schedule: optim.Schedule
    tx: optax.GradientTransformation
    inputs: stream_inputs.StreamInputs | None = None  # host-streamed or synthetic batches (not `data`)
    class_weights: tuple[float, ...] = ()  # the loss weight of each class (class_weights); () = unweighted
    mixer: Mixer | None = None  # Mixup/CutMix of each global batch (soft targets); None = off
    frozen: param_groups.Globs = ()  # config.freeze resolved: parameters and BatchNorm statistics not trained

    @property
    def total_steps(self) -> int:
        return self.config.num_epochs * self.batches.steps_per_epoch

    @property
    def dtype(self):
        return DTYPES[self.config.dtype]

    def is_snapshot(self, step: int) -> bool:
        """Whether the checkpoint of `step` ends a cycle of cyclic_cosine (retention keeps it)."""
        return optim.is_cycle_end(self.config, step, self.batches.steps_per_epoch)

    def batch_maker(self, preprocess: Callable[[jax.Array], jax.Array]) -> Callable[..., tuple[jax.Array, jax.Array]]:
        """make_batch(split, order, step) of the in-memory pipeline, the global batch of `step` as the train step
        takes it: selected and augmented (uint8), resized to `size` (progressive resizing), `preprocess`ed, then mixed
        when the run mixes (integer labels (B,) or soft targets (B, K))."""
        def make_batch(split: DeviceSplit, order: jax.Array, step: jax.Array,
                       size: int | None = None) -> tuple[jax.Array, jax.Array]:
            images, labels = self.batches(split, order, step, size)
            return mix_if(self.mixer, preprocess(images), labels, step)

        return make_batch

    def init_state(self) -> TrainState:
        state = create_train_state(self.model, self.tx, self.data.meta.image_shape, self.config.seed,
                                   ema=self.config.get("ema_decay", 0.0) > 0)
        return sharding.replicate_tree(state, self.mesh)


def build_model(config: ml_collections.ConfigDict, num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    if config.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {config.dtype!r}")
    info = model_info(config.model)
    if min(image_shape[:2]) < info.min_input_size:
        raise ConfigError(f"{config.model} needs inputs of at least {info.min_input_size}x{info.min_input_size}; "
                          f"{config.dataset} images are {image_shape[0]}x{image_shape[1]}")
    overrides = dict(config.model_overrides.to_dict())
    overrides.setdefault("bn_axis_name", sharding.AXIS if config.bn_sync else None)
    overrides.setdefault("dtype", DTYPES[config.dtype])
    overrides.setdefault("cpu_kernels", cpu_runtime.enabled())  # CNNJAX_CPU_TUNING=0: XLA's own kernels
    return create_model(config.model, num_classes, **overrides)


def build(config: ml_collections.ConfigDict) -> Experiment:
    inputs = stream_inputs.build(config) if uses_stream(config) else None
    # evaluate.run.split_and_statistics re-derives validation/test; the preprocessing statistics are stored with
    # the checkpoints by the loop (train.run_statistics)
    data = load_for_config(config) if inputs is None else inputs.datasets()
    num_train = len(data.train) if inputs is None else inputs.num_train
    mesh = sharding.make_mesh(config.num_devices)
    sharding.check_batch_size(config.batch_size, mesh)
    labels = data.train_unresampled.labels if inputs is None else None  # validate(): no label-reading key streams
    sampler = None if labels is None else as_config_error(
        lambda: balance.epoch_sampler(config.get("class_balance", "none"), data.train.labels), balance.BalanceError)
    class_weights = as_config_error(
        lambda: balance.class_weights(config.get("class_weights", ""), labels, data.meta.num_classes),
        balance.BalanceError)
    _check_grad_accum(config, mesh)
    batches = train_batches(config, num_train, data.train.images if inputs is None else None,
                            data.meta.image_shape[-1], sampler, _train_sizes(config, data.meta.image_shape))
    if config.batch_size > batches.epoch_size:
        raise ConfigError(f"batch_size={config.batch_size} exceeds the {batches.epoch_size} training examples "
                          "of an epoch")
    schedule = optim.make_schedule(config, batches.steps_per_epoch)
    model = build_model(config, data.meta.num_classes, data.meta.image_shape)
    head = head_path(model, data.meta.image_shape) if param_groups.needs_head(config) else None
    frozen, multipliers = param_groups.from_config(config, head)
    tx = param_groups.wrap_optimizer(optim.make_optimizer(config, schedule), frozen, multipliers)
    return Experiment(config, data, model, mesh, batches, schedule, tx, inputs, class_weights,
                      Mixer.from_config(config, data.meta.num_classes), frozen)


def _check_grad_accum(config: ml_collections.ConfigDict, mesh: Mesh) -> None:
    k = config.get("grad_accum_steps", 1)
    per_device = config.batch_size // mesh.size
    if per_device % k:
        raise ConfigError(f"batch_size={config.batch_size} on {mesh.size} devices is {per_device} per device, which "
                          f"does not split into grad_accum_steps={k} micro-batches; make it a multiple of "
                          f"{mesh.size * k}")


def _train_sizes(config: ml_collections.ConfigDict, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Progressive resizing's size per epoch; it must end at the images' size, where validation runs."""
    sizes = resize.sizes_per_epoch(config.get("progressive_resize", ""), config.num_epochs)
    if sizes and (sizes[-1], sizes[-1]) != tuple(image_shape[:2]):
        raise ConfigError(f"progressive_resize={config.progressive_resize!r} ends at {sizes[-1]}, but "
                          f"{config.dataset} images are {image_shape[0]}x{image_shape[1]} and validation runs at "
                          f"that size: end the ramp at {image_shape[0]}")
    return sizes
