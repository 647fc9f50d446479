"""Checks of a config's values and combinations, with what to write instead (one-line `ConfigError`s).

Only what the config alone decides; what depends on the data or the devices (validation_size vs the split,
batch_size vs the device count) is checked where those are read. Keys added after a run was saved are read
with `config.get`, so older run configs still validate. `cnnjax.config` re-exports the public names.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, TypeVar

import ml_collections

from cnnjax import recipe_checks
from cnnjax.data.types import uses_stream
from cnnjax.errors import CnnjaxError, first_line

T = TypeVar("T")

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "warmup_cosine", "plateau", "cyclic_cosine", "one_cycle",
             "inverse_time")


class ConfigError(CnnjaxError, ValueError):
    """A config file or override that cannot be used as given."""


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks values that would otherwise fail deep inside training, with what to do instead.

    Only what the config alone decides; what depends on the data or the devices (validation_size vs
    the split, batch_size vs the device count) is checked where those are read.
    """
    _validate_model(config)
    _validate_augment(config.augment)
    _validate_preprocess(config)
    if not config.dataset.strip():
        raise ConfigError("dataset is empty; name a TFDS dataset, e.g. --config.dataset=fashion_mnist")
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if config.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {config.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if config.lr_scaling not in ("none", "linear"):
        raise ConfigError(f"lr_scaling must be 'none' or 'linear', got {config.lr_scaling!r}")
    if config.weight_decay_mask not in ("kernels", "all"):
        raise ConfigError(f"weight_decay_mask must be 'kernels' or 'all', got {config.weight_decay_mask!r}")
    for key in ("num_epochs", "batch_size", "eval_batch_size", "log_every_steps", "keep_checkpoints",
                "learning_rate"):
        if config[key] <= 0:
            raise ConfigError(f"{key} must be positive, got {config[key]}")
    for key in ("validation_size", "num_train_examples", "checkpoint_every_steps", "num_devices",
                "weight_decay", "grad_clip_norm", "warmup_epochs"):
        if config[key] < 0:
            raise ConfigError(f"{key} must be >= 0, got {config[key]}")
    _validate_classes(config)
    if config.get("dead_relu_probe", 0) < 0:
        raise ConfigError(f"dead_relu_probe must be >= 0 (0 = off), got {config.dead_relu_probe}")
    if not 0 <= config.label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.init_from and not pathlib.Path(config.init_from).expanduser().is_dir():
        raise ConfigError(f"init_from={config.init_from!r} is not a directory: give the --out directory of "
                          "`cnnjax convert` or a training workdir")
    if config.schedule == "plateau" and not has_validation(config):
        raise ConfigError("schedule='plateau' watches the validation split: set validation_size > 0")
    _validate_ensemble_members(config)
    _validate_imbalance(config)
    _validate_mixing(config)
    problem = recipe_checks.first_problem(config)
    if problem:
        raise ConfigError(problem)
    _validate_numerics(config)
    _validate_stream(config)


def _validate_stream(config: ml_collections.ConfigDict) -> None:
    """input_pipeline and the `stream` group (configs older than them read the defaults)."""
    pipeline = config.get("input_pipeline", "memory")
    if pipeline not in ("memory", "stream"):
        raise ConfigError(f"input_pipeline must be 'memory' or 'stream', got {pipeline!r}")
    if not uses_stream(config):
        return
    s = config.stream
    for key in ("worker_count", "prefetch", "max_eval_examples"):
        if s[key] < 0:
            raise ConfigError(f"stream.{key} must be >= 0, got {s[key]}")
    for key in ("crop_size", "synthetic_classes", "synthetic_examples"):
        if s[key] <= 0:
            raise ConfigError(f"stream.{key} must be positive, got {s[key]}")
    if s.resize_size < s.crop_size:
        raise ConfigError(f"stream.resize_size={s.resize_size} is smaller than stream.crop_size={s.crop_size}; "
                          "the eval crop is cut from the resized image (e.g. 256 for 224)")
    if not 0 < s.min_scale <= 1:
        raise ConfigError(f"stream.min_scale must be in (0, 1], got {s.min_scale}")
    if s.stats not in ("auto", "imagenet", "sample"):
        raise ConfigError(f"stream.stats must be 'auto', 'imagenet' or 'sample', got {s.stats!r}")
    if _needs_training_pca(config.augment):
        raise ConfigError(f"augment={config.augment!r}: fancy_pca(eig='train') needs the training images in memory; "
                          "the streaming pipeline (host crops and flips, then these ops on device) can use "
                          "fancy_pca(eig='imagenet')")
    for key in ("cv_folds", "bootstrap_seed", "train_sample_weights"):
        if config[key] not in (0, -1, ""):
            raise ConfigError(f"{key} needs the in-memory pipeline; use --config.input_pipeline=memory")


def as_config_error(check: Callable[[], T], error: type[Exception]) -> T:
    """Runs a module's own check of (or derivation from) config keys; its one-line `error` is raised as a
    ConfigError, the type the entry scripts report."""
    try:
        return check()
    except error as err:
        raise ConfigError(str(err)) from None


def _validate_classes(config: ml_collections.ConfigDict) -> None:
    """class_subset and labels_per_class (the dataset's class count is checked when it is loaded)."""
    from cnnjax.data.splits import SplitError, check_class_keys

    as_config_error(lambda: check_class_keys(config), SplitError)


def has_validation(config: ml_collections.ConfigDict) -> bool:
    """Whether the run holds out a validation split (validation_size, or a fold of cv_folds)."""
    return config.validation_size > 0 or config.get("cv_folds", 0) >= 2


def _validate_ensemble_members(config: ml_collections.ConfigDict) -> None:
    """The keys that make ensemble members differ: cross-validation folds, resampling, snapshot cycles."""
    if config.cv_folds == 1 or config.cv_folds < 0:
        raise ConfigError(f"cv_folds must be 0 (off) or >= 2, got {config.cv_folds}")
    if config.cv_folds >= 2 and not 0 <= config.cv_fold < config.cv_folds:
        raise ConfigError(f"cv_fold must be in 0..{config.cv_folds - 1} for cv_folds={config.cv_folds}, "
                          f"got {config.cv_fold}")
    if config.cv_folds == 0 and config.cv_fold != 0:
        raise ConfigError(f"cv_fold={config.cv_fold} needs cross-validation: set cv_folds >= 2 too")
    if config.bootstrap_seed < -1:
        raise ConfigError(f"bootstrap_seed must be -1 (off) or a seed >= 0, got {config.bootstrap_seed}")
    weights = config.train_sample_weights
    if weights and not pathlib.Path(weights).expanduser().is_file():
        raise ConfigError(f"train_sample_weights={weights!r} is not a file: give a .npy with one weight per "
                          "training example, or '' for none")
    if config.num_cycles < 1:
        raise ConfigError(f"num_cycles must be positive, got {config.num_cycles}")
    if config.num_cycles != 1 and config.schedule != "cyclic_cosine":
        raise ConfigError(f"num_cycles={config.num_cycles} needs --config.schedule=cyclic_cosine (or num_cycles=1)")
    if config.schedule == "cyclic_cosine":
        if config.num_epochs % config.num_cycles:
            raise ConfigError(f"num_epochs={config.num_epochs} does not split into num_cycles={config.num_cycles} "
                              "cycles of whole epochs; make num_epochs a multiple of num_cycles")
        if config.warmup_epochs >= config.num_epochs // config.num_cycles:
            raise ConfigError(f"warmup_epochs={config.warmup_epochs} must be shorter than a cycle "
                              f"({config.num_epochs // config.num_cycles} epochs)")


def _validate_mixing(config: ml_collections.ConfigDict) -> None:
    """Mixup/CutMix keys (configs older than them read as off); a setting that would change nothing is an error."""
    mixup, cutmix = config.get("mixup_alpha", 0.0), config.get("cutmix_alpha", 0.0)
    prob, switch = config.get("mix_prob", 1.0), config.get("mix_switch_prob", 0.5)
    for key, value in (("mixup_alpha", mixup), ("cutmix_alpha", cutmix), ("mix_prob", prob),
                       ("mix_switch_prob", switch)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{key} must be a number >= 0, got {value!r}")
    for key, value in (("mix_prob", prob), ("mix_switch_prob", switch)):
        if value > 1:
            raise ConfigError(f"{key} is a probability: give a value in [0, 1], got {value}")
    if prob != 1.0 and not (mixup or cutmix):
        raise ConfigError(f"mix_prob={prob} has no effect without mixing: set mixup_alpha or cutmix_alpha > 0")
    if switch != 0.5 and not (mixup and cutmix):
        raise ConfigError(f"mix_switch_prob={switch} chooses between Mixup and CutMix: set both mixup_alpha and "
                          "cutmix_alpha > 0, or leave it at 0.5")


def _validate_numerics(config: ml_collections.ConfigDict) -> None:
    """The EMA and profiler keys."""
    if not 0 <= config.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1) (0 = off), got {config.ema_decay}")
    if config.ema_select_best and not config.ema_decay:
        raise ConfigError("ema_select_best ranks checkpoints by the EMA weights: set ema_decay > 0 too")
    if config.ema_select_best and not has_validation(config):
        raise ConfigError("ema_select_best ranks checkpoints by validation top-1: set validation_size > 0")
    parse_profile_steps(config.profile_steps)


def parse_profile_steps(spec: str) -> tuple[int, int] | None:
    """"START:STOP" -> (start, stop), the steps [start, stop) to trace; "" -> None; a one-line error otherwise."""
    if not spec.strip():
        return None
    start, sep, stop = spec.partition(":")
    try:
        bounds = int(start), int(stop)
    except ValueError:
        bounds = None
    if not sep or bounds is None or not 0 <= bounds[0] < bounds[1]:
        raise ConfigError(f"profile_steps must look like 'START:STOP' with 0 <= START < STOP (steps [START, STOP)), "
                          f"e.g. '10:15'; got {spec!r}")
    return bounds


def _validate_model(config: ml_collections.ConfigDict) -> None:
    """Builds the model and traces its init abstractly: a wrong model name, option name or option value
    (act=, init=, a width of the wrong type, ...) fails here, not after the data is loaded."""
    import jax
    import jax.numpy as jnp

    from cnnjax.models import create_model, model_info  # local: keep config import light

    try:  # unknown model -> suggestions; unknown model option -> the list of its options
        model = create_model(config.model, **config.model_overrides.to_dict())
    except (KeyError, TypeError) as err:
        raise ConfigError(str(err)) from None
    try:
        shape = (1, *model_info(config.model).input_shape)
        variables = jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                                      jnp.zeros(shape), train=False))
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{config.model} with {config.model_overrides.to_dict()}: {first_line(err, None)}") \
            from None
    _validate_param_patterns(config, model, shape[1:], variables["params"])


def _validate_param_patterns(config: ml_collections.ConfigDict, model: Any, image_shape: tuple[int, ...],
                             params: Any) -> None:
    """init_from_skip, freeze and lr_multipliers: well-formed and each pattern matching a parameter."""
    from cnnjax.train import param_groups

    as_config_error(lambda: param_groups.check_config(config, model, image_shape, params), param_groups.PatternError)


def _validate_preprocess(config: ml_collections.ConfigDict) -> None:
    """The preprocessing kind (configs older than the key read standardize, what they did)."""
    from cnnjax.data.preprocess import KINDS

    kind = config.get("preprocess", "standardize")
    if kind not in KINDS:
        raise ConfigError(f"unknown preprocess {kind!r}; choose one of {', '.join(KINDS)}")
    if uses_stream(config) and kind != "standardize":
        raise ConfigError(f"preprocess={kind!r} needs the in-memory pipeline (the streaming one normalises per channel "
                          "with stream.stats): use --config.input_pipeline=memory or --config.preprocess=standardize")


def _validate_imbalance(config: ml_collections.ConfigDict) -> None:
    from cnnjax.data import balance

    as_config_error(lambda: balance.check_config(config), balance.BalanceError)


def _validate_augment(spec: str) -> None:
    from cnnjax.data import augment

    augment.parse(spec)  # no data yet: checks names and arguments


def _needs_training_pca(spec: str) -> bool:
    from cnnjax.data import augment

    return augment.needs_training_pca(spec)
