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
    assert re.search(r"Expected:.*\d+\.\d+ ?%", doc), "docstring must state the measured result"


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
