"""Experiment configuration: the keys every config shares, loading `get_config()` files, overrides.

Config files build on `base_config()` and only change what differs. The config is locked after loading,
so a mistyped key — in a file or as `--config.key=value` — is an error naming the closest real key instead
of a silently ignored setting.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import pathlib
import traceback
from typing import Any, Sequence

import ml_collections

from cnnjax.config_checks import OPTIMIZERS, SCHEDULES, ConfigError, has_validation, parse_profile_steps, validate

# The checks' public names are re-exported: callers import everything about configs from here.
__all__ = ["OPTIMIZERS", "SCHEDULES", "ConfigError", "adam_cosine_recipe", "apply_override", "base_config",
           "has_validation", "load_config", "parse_profile_steps", "stream_config", "validate"]


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every experiment; config files override what they need."""
    c = ml_collections.ConfigDict()
    # What to train.
    c.model = "lenet5"  # registry name, see `cnnjax models`
    # The model's own options, e.g. {"act": "relu", "shortcut": "B", "norm": "group", "drop_path": 0.1,
    # "spatial_dropout": 0.1}; the options every model has are the fields of cnnjax.models.layers.Classifier.
    c.model_overrides = ml_collections.ConfigDict()
    c.dataset = "fashion_mnist"  # TFDS name
    c.data_dir = ""  # TFDS data dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.validation_size = 5000  # held out from train for model selection
    c.validation_seed = 0
    c.num_train_examples = 0  # 0 = all remaining training examples (smaller for quick runs)
    # Only these classes (relabelled 0..k-1 in this order, in every split), e.g. (5, 6, 7, 8, 9); () = all.
    c.class_subset = ()
    c.labels_per_class = 0  # at most this many training examples per class (few-label runs); 0 = all
    # On-device ops composed by name, e.g. "random_crop(padding=4)|flip_lr" (cnnjax.data.augment: flip_lr/ud,
    # random_crop, random_resized_crop, translate, rotate, shear, zoom, random_scale, channel_shift, hsv_jitter,
    # fancy_pca, random_erasing, randaugment); `cnnjax augment --config ...` draws what they feed the model.
    c.augment = ""
    # Input preprocessing from training-split statistics (cnnjax.data.preprocess), stored in the workdir for eval:
    # standardize (per-channel mean/std), center, pixel_mean, minmax ([-1, 1]), pca_whiten, zca (eps 1e-5).
    c.preprocess = "standardize"
    # Batch mixing (cnnjax.data.mixing): each global batch is mixed with itself rolled by one, labels become soft.
    c.mixup_alpha = 0.0  # Mixup: lambda ~ Beta(mixup_alpha, mixup_alpha); 0 = off (e.g. 0.2)
    c.cutmix_alpha = 0.0  # CutMix: box area from Beta(cutmix_alpha, cutmix_alpha); 0 = off (e.g. 1.0)
    c.mix_prob = 1.0  # probability that a batch is mixed at all
    c.mix_switch_prob = 0.5  # both alphas on: probability that a batch uses CutMix rather than Mixup
    # Progressive resizing of the training images per epoch: "START:END" (linear ramp over the epochs) or
    # "EPOCH:SIZE,..." e.g. "0:16,3:22,6:28"; END is the images' size (validation/eval run at it). "" = off.
    c.progressive_resize = ""
    # k-fold cross-validation: with cv_folds >= 2, validation is fold cv_fold (0..cv_folds-1) of a stratified
    # split of train fixed by validation_seed, and validation_size is ignored; 0 = off.
    c.cv_folds = 0
    c.cv_fold = 0
    # Ensemble members: what is trained on is a same-size resample with replacement of the training examples
    # (validation, test and the normalisation statistics are unchanged). bootstrap_seed >= 0: uniform (bagging).
    c.bootstrap_seed = -1  # -1 = off
    # A .npy of one weight >= 0 per training example (in the order of splits.training_examples): resample in
    # proportion to them (boosting), seeded by bootstrap_seed if >= 0 else seed. "" = off.
    c.train_sample_weights = ""
    # Class imbalance (seed 004), see cnnjax/data/balance.py. class_counts: keep at most this many training examples
    # of each class, one count per class, e.g. (1000,) * 5 + (50,) * 5 (seeded by validation_seed; validation and
    # test untouched); () = off.
    c.class_counts = ()
    # Train on these classes only, e.g. (0, 1, 2, 3, 4): stage 1 of two-stage fine-tuning; () = all.
    c.train_classes = ()
    # Each epoch: "none" (a permutation), "oversample" (N draws, classes equally likely), "undersample" (K x the
    # smallest class count), "minority_crops" (every example, plus augmented copies of the smaller classes).
    c.class_balance = "none"
    # Loss weight per class: "" = off, "balanced" (n / (K * n_c)) or one weight per class, e.g. "1,1,1,5,5".
    c.class_weights = ""
    # How long and how big.
    c.num_epochs = 10
    c.batch_size = 128  # global, across all devices and hosts
    c.eval_batch_size = 500
    c.seed = 0
    # `cnnjax convert` output or training workdir to start from (step 0 only; resuming wins), see init_from.py.
    c.init_from = ""
    # What of init_from is not loaded: "shape" = the variables whose shape differs (e.g. the head for another
    # num_classes); "" = none (a shape mismatch is an error); else a pattern, e.g. "head" or "head|conv1/*".
    c.init_from_skip = "shape"
    # Fine-tuning: parameters not trained (zero updates, BatchNorm statistics kept), "|"-separated globs on
    # parameter paths, e.g. "conv1/*|layer1/*"; "" = none. See cnnjax/train/param_groups.py.
    c.freeze = ""
    # Learning-rate factor per parameter group, first match wins, e.g. "layer4/*=1.0,head=10"; "" = none.
    c.lr_multipliers = ""
    # Optimisation.
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.lr_scaling = "none"  # "linear": learning_rate is per 256 examples, scaled by batch_size / 256
    c.momentum = 0.9  # momentum/nesterov; rmsprop decay is `rmsprop_decay`
    c.rmsprop_decay = 0.9
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.weight_decay = 0.0  # coupled L2 for sgd-family/adam, decoupled for adamw
    c.weight_decay_mask = "kernels"  # "kernels" (no biases/BN/PReLU) or "all"
    c.l1_penalty = 0.0  # L1: + l1_penalty * sign(w) to the gradient (weight_decay_mask); + weight_decay: elastic net
    c.max_norm = 0.0  # > 0: after every update, each unit's incoming kernel weights are projected to norm <= max_norm
    c.grad_accum_steps = 1  # a step's batch_size examples run as this many sequential micro-batches, one update
    c.grad_clip_norm = 0.0  # 0 = off
    c.label_smoothing = 0.0
    c.aux_loss_weight = 0.3  # auxiliary heads (GoogLeNet / Inception-v3) if the model has them
    c.schedule = "constant"
    c.warmup_epochs = 0.0
    c.lr_boundaries_epochs = (30, 60, 80)  # schedule="step"
    c.lr_decay_factor = 0.1  # step: multiply at each boundary; exponential: per epoch; plateau: on plateau
    c.lr_min_factor = 0.0  # warmup_cosine (and each cycle of cyclic_cosine) ends at learning_rate * lr_min_factor
    # schedule="cyclic_cosine" (snapshot ensembles, SGDR restarts): num_epochs splits into num_cycles equal cycles,
    # each restarting at learning_rate; every cycle's last checkpoint is kept as a snapshot (ensemble member).
    c.num_cycles = 1
    # schedule="one_cycle" (Smith): from lr / div_factor up to learning_rate over the first pct_start of the run,
    # then down to learning_rate / (div_factor * final_div_factor); shape "cosine" or "linear".
    c.one_cycle_pct_start = 0.3
    c.one_cycle_div_factor = 25.0
    c.one_cycle_final_div_factor = 1e4
    c.one_cycle_shape = "cosine"
    c.inverse_time_decay = 0.0  # schedule="inverse_time": lr / (1 + inverse_time_decay * step), Keras' decay=
    c.plateau_patience = 2  # epochs without improvement of the validation metric
    c.plateau_min_delta = 1e-4
    # Parallelism and numerics.
    c.bn_sync = True  # BatchNorm statistics over the global batch (True) or per device (False)
    c.num_devices = 0  # 0 = all devices
    # Computation dtype ("bfloat16" on accelerators): activations only; parameters, optimizer state, BatchNorm
    # statistics, the EMA and the loss stay float32.
    c.dtype = "float32"
    # Exponential moving average of the weights (params and BatchNorm statistics), validated beside the raw ones
    # each epoch (validation/ema_top1) and scored by `eval.py --ema`: 0 = off, e.g. 0.999 or 0.9999.
    c.ema_decay = 0.0
    c.ema_warmup = True  # decay min(ema_decay, (1 + t) / (10 + t)) at update t, as TF's ExponentialMovingAverage
    c.ema_select_best = False  # rank checkpoints (the kept "best", eval's default) by EMA validation top-1
    # Profiler trace of the training steps [start, stop), e.g. "10:15", into <workdir>/profile (TensorBoard's
    # profile tab); "" = off. Steps count from 0 over the whole run.
    c.profile_steps = ""
    # Checkpoints, logging.
    c.keep_checkpoints = 2  # the last N, plus the best by validation top-1
    c.checkpoint_every_steps = 0  # 0 = at the end of every epoch only
    c.log_every_steps = 50
    c.progress_bar = True
    # Each epoch end: a `diagnosis` record in metrics.jsonl and hints in the log (learning rate too high/low,
    # over/underfitting, see cnnjax/train/diagnosis.py), and the fraction of dead ReLUs per layer.
    c.diagnosis = True
    c.dead_relu_probe = 256  # examples of the fixed probe batch for dead ReLUs; 0 = off
    # Input pipeline: "memory" (the whole split on every device, cnnjax.data.pipeline) or "stream" (host workers
    # decode and crop each host's share of every batch, cnnjax.data.stream: for data that does not fit in memory).
    c.input_pipeline = "memory"
    c.stream = stream_config()
    return c


def stream_config() -> ml_collections.ConfigDict:
    """The `stream` group: what input_pipeline="stream" (and dataset="synthetic") read."""
    s = ml_collections.ConfigDict()
    s.worker_count = 0  # host worker processes decoding/augmenting per host; 0 = in the training process
    s.prefetch = 2  # batches buffered per worker
    s.crop_size = 224  # train: random-resized crop to this; eval: centre crop (synthetic: image size)
    s.resize_size = 256  # eval: shorter side resized to this before the centre crop (224/256 = 0.875)
    s.min_scale = 0.08  # random-resized crop: area fraction in [min_scale, 1], aspect ratio in [3/4, 4/3]
    s.flip = True  # train: horizontal flip with probability 1/2
    s.ten_crop = False  # eval: 4 corners + centre and their mirrors, logits averaged (AlexNet/GoogLeNet)
    s.train_split = "train"
    s.eval_split = "validation"  # validated at every epoch end; "" = none (validation_size is not used)
    s.max_eval_examples = 0  # 0 = the whole eval split (fewer: quick runs)
    s.stats = "auto"  # normalisation: "imagenet" (standard values), "sample" (500 training images), auto = by channels
    s.synthetic_classes = 1000  # dataset="synthetic": labels drawn from this many classes
    s.synthetic_examples = 12800  # dataset="synthetic": examples per epoch
    s.record_ids_to = ""  # debug: append each step's example ids to <this path>.<process index>
    return s


def adam_cosine_recipe(model: str, dataset: str, num_epochs: int, learning_rate: float,
                       batch_size: int = 128, warmup_epochs: float = 0.5) -> ml_collections.ConfigDict:
    """The recipe of the small-image configs: Adam, linear warm-up then cosine decay to zero."""
    config = base_config()
    config.model, config.dataset = model, dataset
    config.num_epochs, config.batch_size = num_epochs, batch_size
    config.optimizer, config.learning_rate = "adam", learning_rate
    config.schedule, config.warmup_epochs = "warmup_cosine", warmup_epochs
    return config


def one_cycle_recipe(model: str, dataset: str, num_epochs: int, batch_size: int, learning_rate: float,
                     weight_decay: float = 5e-4, label_smoothing: float = 0.1) -> ml_collections.ConfigDict:
    """The recipe of the BatchNorm Fashion-MNIST configs: Nesterov SGD (momentum 0.9), a one-cycle learning rate
    peaking at `learning_rate`, L2 weight decay on the kernels, label smoothing."""
    config = base_config()
    config.model, config.dataset = model, dataset
    config.num_epochs, config.batch_size = num_epochs, batch_size
    config.optimizer, config.learning_rate, config.momentum = "nesterov", learning_rate, 0.9
    config.schedule, config.weight_decay, config.label_smoothing = "one_cycle", weight_decay, label_smoothing
    return config


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Runs `get_config()` from `path`, applies `key=value` overrides, validates, returns it locked."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path!r} does not exist (see the configs/ folder)")
    config = _run_get_config(file)
    config.lock()
    for item in overrides:
        apply_override(config, item)
    validate(config)
    return config


def _run_get_config(file: pathlib.Path) -> ml_collections.ConfigDict:
    """Executes the config file and its get_config(); any failure names the file and line."""
    spec = importlib.util.spec_from_file_location(f"cnnjax_config_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ConfigError(f"config file {str(file)!r} has no get_config() function")
        config = module.get_config()
    except ConfigError:
        raise
    except SyntaxError as err:
        raise ConfigError(f"config file {str(file)!r} line {err.lineno}: syntax error ({err.msg})") from None
    except Exception as err:  # anything the user's file raises: name where, not a traceback
        lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename == str(file)]
        where = f" line {lines[-1]}" if lines else ""
        raise ConfigError(f"config file {str(file)!r}{where}: {type(err).__name__}: {err}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"get_config() in {str(file)!r} returned {type(config).__name__}, not an "
                          "ml_collections.ConfigDict; build it on cnnjax.config.base_config()")
    return config


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Applies one `key=value` (or `config.key=value`), parsing the value as the key's current type."""
    key, sep, text = item.removeprefix("--").removeprefix("config.").partition("=")
    if not sep:
        raise ConfigError(f"override {item!r} must look like --config.key=value")
    node, leaf = _resolve(config, key)
    if leaf not in node:  # a new model option; create_model checks that the model has it
        with node.unlocked():
            node[leaf] = _parse_literal_or_str(text)
        return
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"{key!r} is a group; override its keys, e.g. --config.{key}.<name>=value")
    node[leaf] = _parse_value(text, current, key)


def _resolve(config: ml_collections.ConfigDict, key: str) -> tuple[ml_collections.ConfigDict, str]:
    node = config
    parts = key.split(".")
    for i, part in enumerate(parts):
        is_last = i == len(parts) - 1
        # model_overrides is open-ended: its keys are the model's own options, checked by create_model.
        if is_last and i == 1 and parts[0] == "model_overrides":
            return node, part
        if part not in node:
            close = difflib.get_close_matches(part, list(node.keys()), n=1)
            hint = f" (did you mean {'.'.join(parts[:i] + close)!r}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; run with --show_config to list the keys")
        if is_last:
            return node, part
        node = node[part]
    raise AssertionError("unreachable")


def _parse_literal_or_str(text: str) -> Any:
    if text.lower() in ("true", "false"):  # as flags are written (--config.model_overrides.cpu_kernels=false)
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_value(text: str, current: Any, key: str) -> Any:
    if current is None:
        return _parse_literal_or_str(text)
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key} expects true/false, got {text!r}")
    if isinstance(current, str):
        return text
    value = _parse_literal_or_str(text)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, tuple) and isinstance(value, (list, tuple, int, float)):
        value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if type(value) is not type(current):
        raise ConfigError(f"{key} expects {type(current).__name__}, got {text!r}")
    return value
