"""Everything a config determines before the first step: data, model, mesh, batches, optimizer, state.

Training and evaluation both build it, so a checkpoint is always restored into exactly the structure it
was saved from.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from cnnjax.config import ConfigError
from cnnjax.data.splits import Datasets, load_for_config
from cnnjax.data.pipeline import TrainBatches
from cnnjax.data.stream import inputs as stream_inputs
from cnnjax.models import create_model, model_info
from cnnjax.models.head import head_path
from cnnjax import sharding
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
    return create_model(config.model, num_classes, **overrides)


def build(config: ml_collections.ConfigDict) -> Experiment:
    inputs = stream_inputs.build(config) if stream_inputs.uses_stream(config) else None
    # evaluate.run.load_split_for re-derives validation/test and statistics
    data = load_for_config(config) if inputs is None else inputs.datasets()
    num_train = len(data.train) if inputs is None else inputs.num_train
    mesh = sharding.make_mesh(config.num_devices)
    sharding.check_batch_size(config.batch_size, mesh)
    if config.batch_size > num_train:
        raise ConfigError(f"batch_size={config.batch_size} exceeds the {num_train} training examples")
    batches = TrainBatches(num_train, config.batch_size, config.seed, config.augment)
    schedule = optim.make_schedule(config, batches.steps_per_epoch)
    model = build_model(config, data.meta.num_classes, data.meta.image_shape)
    head = head_path(model, data.meta.image_shape) if param_groups.needs_head(config) else None
    frozen, multipliers = param_groups.from_config(config, head)
    tx = param_groups.wrap_optimizer(optim.make_optimizer(config, schedule), frozen, multipliers)
    return Experiment(config, data, model, mesh, batches, schedule, tx, inputs, frozen)
