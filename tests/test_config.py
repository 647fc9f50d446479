import pathlib
import re

import pytest

from cnnjax.config import ConfigError, apply_override, base_config, load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.py"))
COMMON_KEYS = ("model", "dataset", "num_epochs", "batch_size", "seed", "optimizer", "learning_rate")


def test_there_are_configs():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_loads_and_documents_command_and_result(path):
    config = load_config(str(path))
    for key in COMMON_KEYS:
        assert key in config
    doc = path.read_text().split('"""')[1]
    assert f"--config {path.relative_to(ROOT)}" in doc, "docstring must state the launch command"
    # the measured result (or, for a paper config, the published one), possibly on the lines that follow
    assert re.search(r"Expected:[\s\S]*?\d+\.\d+ ?%", doc), "docstring must state the expected result"


def test_override_parses_to_the_key_type():
    config = base_config()
    config.lock()
    apply_override(config, "--config.num_epochs=3")
    apply_override(config, "config.learning_rate=1")
    apply_override(config, "bn_sync=false")
    apply_override(config, "lr_boundaries_epochs=(1, 2)")
    apply_override(config, "model_overrides.act=relu")
    assert config.num_epochs == 3 and isinstance(config.learning_rate, float) and config.learning_rate == 1.0
    assert config.bn_sync is False and config.lr_boundaries_epochs == (1, 2)
    assert config.model_overrides.act == "relu"


def test_a_new_model_option_reads_true_and_false_as_flags_are_written():
    config = base_config()
    for text, value in (("false", False), ("True", True), ("FALSE", False)):
        apply_override(config, f"model_overrides.cpu_kernels={text}")
        assert config.model_overrides.cpu_kernels is value


def test_unknown_override_key_is_a_clear_error():
    config = base_config()
    config.lock()
    with pytest.raises(ConfigError, match=r"unknown config key 'num_epoch' \(did you mean 'num_epochs'\?\)"):
        apply_override(config, "num_epoch=3")


def test_wrongly_typed_override_is_an_error():
    config = base_config()
    config.lock()
    with pytest.raises(ConfigError, match="num_epochs expects int"):
        apply_override(config, "num_epochs=three")


def test_unknown_model_and_model_option_are_errors():
    path = str(ROOT / "configs/fashion_mnist/lenet5.py")
    with pytest.raises(ConfigError, match="unknown model 'lenet'.*lenet5"):
        load_config(path, ["model=lenet"])
    with pytest.raises(ConfigError, match="has no option 'shortcut'"):
        load_config(path, ["model_overrides.shortcut=B"])
    with pytest.raises(ConfigError, match="unknown optimizer"):
        load_config(path, ["optimizer=adagrad"])


def test_missing_config_file_is_an_error():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("configs/nope.py")


ENSEMBLE_MEMBER_ERRORS = [
    (["cv_folds=1"], r"cv_folds must be 0 \(off\) or >= 2"),
    (["cv_folds=4", "cv_fold=-1"], r"cv_fold must be in 0\.\.3 for cv_folds=4"),
    (["cv_fold=2"], "cv_fold=2 needs cross-validation"),
    (["bootstrap_seed=-2"], r"bootstrap_seed must be -1 \(off\) or a seed >= 0"),
    (["train_sample_weights=/no/such.npy"], "is not a file"),
    (["num_cycles=0", "schedule=cyclic_cosine"], "num_cycles must be positive"),
    (["num_cycles=2"], "num_cycles=2 needs --config.schedule=cyclic_cosine"),
    (["schedule=cyclic_cosine", "num_cycles=3", "num_epochs=20"], "make num_epochs a multiple of num_cycles"),
    (["schedule=cyclic_cosine", "num_cycles=4", "num_epochs=20", "warmup_epochs=5"], "shorter than a cycle"),
    (["schedule=plateau", "validation_size=0", "warmup_epochs=0"], "watches the validation split"),
]


@pytest.mark.parametrize("overrides, message", ENSEMBLE_MEMBER_ERRORS, ids=lambda v: str(v)[:40])
def test_ensemble_member_keys_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(str(ROOT / "configs/fashion_mnist/mlp.py"), overrides)
    assert "\n" not in str(err.value)


MIXING_ERRORS = [
    (["mixup_alpha=-0.2"], "mixup_alpha must be a number >= 0"),
    (["cutmix_alpha=1.0", "mix_prob=1.5"], r"mix_prob is a probability: give a value in \[0, 1\]"),
    (["mix_prob=0.5"], "mix_prob=0.5 has no effect without mixing"),
    (["cutmix_alpha=1.0", "mix_switch_prob=0.2"], "set both mixup_alpha and cutmix_alpha > 0"),
]


@pytest.mark.parametrize("overrides, message", MIXING_ERRORS, ids=lambda v: str(v)[:40])
def test_mixing_keys_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(str(ROOT / "configs/fashion_mnist/mlp.py"), overrides)
    assert "\n" not in str(err.value)


def test_cross_validation_counts_as_a_validation_split():
    config = load_config(str(ROOT / "configs/fashion_mnist/mlp.py"),
                         ["schedule=plateau", "validation_size=0", "cv_folds=5", "cv_fold=4"])
    assert config.cv_fold == 4
    config = load_config(str(ROOT / "configs/fashion_mnist/mlp.py"), ["schedule=cyclic_cosine", "num_cycles=4"])
    assert config.num_cycles == 4  # 20 epochs, warm-up 0.5: four cycles of 5 epochs
