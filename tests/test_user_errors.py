"""Every bad input to train.py is one line on stderr ("error: ..."), exit status 2, before any training:
config files that do not load, options the model or the augmentation does not have, values the config or
the data cannot give. Each case runs the real entry script in a subprocess (4 forced CPU devices)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/fashion_mnist/mlp.py")

CONFIG_FILES = {
    "syntax.py": ("def get_config(:\n    pass\n", "line 1: syntax error"),
    "imports.py": ("import no_such_module\n\ndef get_config():\n    pass\n", "line 1: ModuleNotFoundError"),
    "raises.py": ("def get_config():\n    x = 1\n    return 1 / 0\n", "line 3: ZeroDivisionError"),
    "dict.py": ("def get_config():\n    return {'model': 'mlp'}\n", "returned dict, not an ml_collections.ConfigDict"),
    "none.py": ("def get_config():\n    return None\n", "returned NoneType"),
}

OVERRIDES = {
    "act": (["--config.model_overrides.act=foo"], "unknown activation 'foo'"),
    "init": (["--config.model_overrides.init=foo"], "unknown init 'foo'"),
    "option": (["--config.model=resnet20", "--config.model_overrides.norm_type=foo"], "has no option 'norm_type'"),
    "option_type": (["--config.model_overrides.hidden=128"], "mlp with"),
    "cpu_kernels": (["--config.model_overrides.cpu_kernels=maybe"], "cpu_kernels is true or false, got 'maybe'"),
    "augment_op": (["--config.augment=twirl(10)"], "unknown augmentation 'twirl'"),
    "augment_paren": (["--config.augment=random_crop(padding=4"], "cannot parse augmentation"),
    "augment_keyword": (["--config.augment=random_crop(paddin=4)"], "has no argument 'paddin'"),
    "augment_positional": (["--config.augment=random_crop(8)"], "give arguments by name"),
    "augment_prob": (["--config.augment=flip_lr(probability=0.2)"], "has no argument 'probability'"),
    "augment_value": (["--config.augment=random_crop(padding=-4)"], "integer >= 0, got -4"),
    "batch_split": (["--config.batch_size=126"], "must be divisible by the 4 devices"),
    "devices_many": (["--config.num_devices=16"], "num_devices=16 but only 4 devices"),
    "devices_negative": (["--config.num_devices=-1"], "num_devices must be >= 0"),
    "validation_size": (["--config.validation_size=70000"], "leaves nothing of the 60000"),
    "train_examples_many": (["--config.num_train_examples=100000"], "exceeds the 55000 training examples"),
    "train_examples_negative": (["--config.num_train_examples=-1"], "num_train_examples must be >= 0"),
    "dataset_empty": (["--config.dataset="], "dataset is empty"),
    "log_every": (["--config.log_every_steps=0"], "log_every_steps must be positive"),
    "keep_negative": (["--config.keep_checkpoints=-1"], "keep_checkpoints must be positive"),
    "keep_zero": (["--config.keep_checkpoints=0"], "keep_checkpoints must be positive"),
    "learning_rate": (["--config.learning_rate=-0.1"], "learning_rate must be positive"),
    "checkpoint_every": (["--config.checkpoint_every_steps=-5"], "checkpoint_every_steps must be >= 0"),
    "data_dir_file": (["--config.data_dir=/etc/hostname"], "is a file, not a directory"),
    "offline_download": (["--config.dataset=cifar10"], "cannot reach"),
    "cv_fold": (["--config.cv_folds=5", "--config.cv_fold=5"], "cv_fold must be in 0..4 for cv_folds=5"),
    "sample_weights": (["--config.train_sample_weights=/no/such/w.npy"], "train_sample_weights='/no/such/w.npy' is"),
}

SEEDS_ARGS = {
    "seed_index_alone": (["--seed_index", "1"], "--seed_index needs --seeds N"),
    "seed_index_range": (["--seeds", "2", "--seed_index", "2"], "--seed_index 2 is out of range"),
    "seeds_zero": (["--seeds", "0"], "argument --seeds: must be positive, got 0"),
}


EVAL_ARGS = {
    "workdir_empty": (["--workdir", ""], "argument --workdir: is empty"),
    "batch_zero": (["--workdir", "w", "--batch_size", "0"], "--batch_size: must be positive, got 0"),
    "batch_negative": (["--workdir", "w", "--batch_size=-3"], "--batch_size: must be positive, got -3"),
    "batch_type": (["--workdir", "w", "--batch_size", "many"], "expects a whole number"),
    "split": (["--workdir", "w", "--split", "dev"], "invalid choice: 'dev'"),
    "tta": (["--workdir", "w", "--tta", "bogus"], "unknown test-time augmentation 'bogus'; choose one of none"),
    "missing": ([], "one of the arguments --workdir --members is required"),
    "members_and_workdir": (["--workdir", "w", "--members", "a", "b"], "not allowed with argument"),
    "members_no_out": (["--members", "a", "b"], "--members needs --out DIR"),
    "members_split": (["--members", "a", "b", "--split", "test", "--out", "o"], "use --fit_split and --report_split"),
    "members_step": (["--members", "a", "b", "--step", "3", "--out", "o"], "--step is for --workdir"),
    "members_missing": (["--members", "/no/such/a", "/no/such/b", "--out", "/no/such/o"],
                        "member '/no/such/a': /no/such/a does not exist"),
    "members_combiner": (["--members", "a", "b", "--combiners", "mean,median", "--out", "/no/such/o"],
                         "unknown combiner 'median'"),
    "members_splits": (["--members", "a", "b", "--fit_split", "test", "--out", "/no/such/o"], "are both 'test'"),
    "members_folds": (["--members", "a", "b", "--folds", "0", "--out", "/no/such/o"], "must be positive, got 0"),
}


def one_line_error(args: list[str], tmp_path: pathlib.Path, timeout: float = 120, script: str = "train.py",
                   workdir: bool = True) -> str:
    """Runs `script`; asserts exit status 2 and a single stderr line; returns it."""
    cmd = [sys.executable, str(ROOT / script), *(["--workdir", str(tmp_path / "run")] if workdir else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
    return lines[0]


@pytest.mark.parametrize("name", sorted(CONFIG_FILES))
def test_a_config_file_that_does_not_load_is_named(name, tmp_path):
    text, expected = CONFIG_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    line = one_line_error(["--config", str(path)], tmp_path)
    assert expected in line and str(path) in line


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_a_bad_value_is_one_line(name, tmp_path):
    args, expected = OVERRIDES[name]
    line = one_line_error(["--config", CONFIG, "--config.num_epochs=1", *args], tmp_path)
    assert expected in line


@pytest.mark.parametrize("name", sorted(SEEDS_ARGS))
def test_bad_seeds_arguments_are_one_line(name, tmp_path):
    args, expected = SEEDS_ARGS[name]
    assert expected in one_line_error(["--config", CONFIG, *args], tmp_path)


def test_an_empty_workdir_is_refused(tmp_path):
    line = one_line_error(["--config", CONFIG, "--workdir", ""], tmp_path, workdir=False)
    assert "argument --workdir: is empty" in line


@pytest.mark.parametrize("name", sorted(EVAL_ARGS))
def test_bad_eval_arguments_are_one_line(name, tmp_path):
    args, expected = EVAL_ARGS[name]
    assert expected in one_line_error(args, tmp_path, script="eval.py", workdir=False)


def test_an_unwritable_data_dir_is_one_line(tmp_path):
    from tests.fs_faults import read_only

    with read_only(tmp_path / "tfds") as cause:
        line = one_line_error(["--config", CONFIG, f"--config.data_dir={tmp_path / 'tfds'}"], tmp_path)
    assert "cannot prepare fashion_mnist" in line and cause in line


def test_scoring_a_validation_split_the_run_does_not_have_is_one_line(tmp_path):
    train = [sys.executable, str(ROOT / "train.py"), "--config", CONFIG, "--workdir", str(tmp_path / "run"),
             "--config.num_epochs=1", "--config.num_train_examples=960", "--config.batch_size=48",
             "--config.validation_size=0", "--config.progress_bar=false"]
    assert subprocess.run(train, capture_output=True, text=True, timeout=300, cwd=ROOT).returncode == 0
    line = one_line_error(["--workdir", str(tmp_path / "run"), "--split", "validation"], tmp_path / "eval",
                          script="eval.py", workdir=False)
    assert "validation_size=0" in line
    line = one_line_error(["--workdir", str(tmp_path / "run"), "--model", "mlp", "--dataset", "fashion_mnist"],
                          tmp_path / "eval", script="eval.py", workdir=False)
    assert "is a training workdir" in line and "drop them" in line
