"""Config checks of the regularisation and optimisation options (L1/elastic net, max-norm, one-cycle,
inverse-time and plateau schedules, gradient accumulation, progressive resizing).

Kept apart from `cnnjax.config` so that module stays one screenful per concern; `config.validate` raises the
first problem found here as a one-line `ConfigError` saying what to write instead. Keys are read with
`config.get` so configs saved before the keys existed still validate.
"""

from __future__ import annotations

import ml_collections

from cnnjax.data.types import uses_stream


def first_problem(config: ml_collections.ConfigDict) -> str | None:
    """The first invalid value or combination of these options, as a message; None if all is well."""
    for check in (_penalties, _schedules, _grad_accum, _progressive_resize):
        problem = check(config)
        if problem:
            return problem
    return None


def _penalties(config: ml_collections.ConfigDict) -> str | None:
    for key in ("l1_penalty", "max_norm"):
        if config.get(key, 0.0) < 0:
            return f"{key} must be >= 0 (0 = off), got {config[key]}"
    return None


def _schedules(config: ml_collections.ConfigDict) -> str | None:
    kind = config.schedule
    if kind == "plateau" and not 0 < config.lr_decay_factor < 1:
        return (f"lr_decay_factor={config.lr_decay_factor} must be in (0, 1) for schedule='plateau' (the learning "
                "rate is multiplied by it): 0.5 divides by 2, 0.2 by 5")
    if kind == "one_cycle":
        if config.warmup_epochs:
            return "schedule='one_cycle' warms up by itself (one_cycle_pct_start): set --config.warmup_epochs=0"
        if not 0 < config.one_cycle_pct_start < 1:
            return f"one_cycle_pct_start must be in (0, 1) (the rising fraction), got {config.one_cycle_pct_start}"
        for key in ("one_cycle_div_factor", "one_cycle_final_div_factor"):
            if config[key] < 1:
                return f"{key} must be >= 1 (the learning rate is divided by it), got {config[key]}"
        if config.one_cycle_shape not in ("cosine", "linear"):
            return f"one_cycle_shape must be 'cosine' or 'linear', got {config.one_cycle_shape!r}"
    if config.get("inverse_time_decay", 0.0) < 0:
        return f"inverse_time_decay must be >= 0, got {config.inverse_time_decay}"
    if config.get("inverse_time_decay", 0.0) and kind != "inverse_time":
        return f"inverse_time_decay={config.inverse_time_decay} needs --config.schedule=inverse_time"
    return None


def _grad_accum(config: ml_collections.ConfigDict) -> str | None:
    k = config.get("grad_accum_steps", 1)
    if type(k) is not int or k < 1:
        return f"grad_accum_steps must be an integer >= 1 (1 = off), got {k!r}"
    if config.batch_size % k:
        return (f"batch_size={config.batch_size} does not split into grad_accum_steps={k} micro-batches; "
                "make batch_size a multiple of it (batch_size is the examples per update)")
    if k > 1 and config.get("input_pipeline", "memory") == "stream":
        return "grad_accum_steps > 1 needs the in-memory pipeline; use --config.input_pipeline=memory"
    return None


def _progressive_resize(config: ml_collections.ConfigDict) -> str | None:
    from cnnjax.data.resize import sizes_per_epoch

    spec = config.get("progressive_resize", "")
    sizes = sizes_per_epoch(spec, config.num_epochs)  # a spec that does not parse raises its own error
    if not sizes:
        return None
    if uses_stream(config):
        return "progressive_resize needs the in-memory pipeline; use --config.input_pipeline=memory"
    return _accepts_sizes(config, min(sizes), sizes[-1])


def _accepts_sizes(config: ml_collections.ConfigDict, small: int, final: int) -> str | None:
    """Whether the model, initialised at the final size, also runs at the smallest (global pooling) size."""
    import flax.errors
    import jax
    import jax.numpy as jnp

    from cnnjax.models import create_model, model_info

    info = model_info(config.model)
    if small < info.min_input_size:
        return (f"progressive_resize starts at {small}x{small}, below {config.model}'s minimum input "
                f"{info.min_input_size}x{info.min_input_size}; start at >= {info.min_input_size}")
    model = create_model(config.model, **config.model_overrides.to_dict())
    channels = info.input_shape[-1]
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    variables = jax.eval_shape(lambda: model.init(rngs, jnp.zeros((1, final, final, channels)), train=False))
    try:
        jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, small, small, channels)), train=False), variables)
    except (flax.errors.FlaxError, TypeError, ValueError):  # a parameter or matmul shape that depends on the size
        return (f"{config.model} has a fixed-size classifier (its weights depend on the image size), so it cannot "
                "train on resized images; use a model with global pooling (e.g. resnet20) or progressive_resize=''")
    return None
