"""`--config.init_from`: a run starts from converted torchvision weights (random twin, made offline)."""

import json

import jax
import numpy as np
import pytest

from cnnjax.config import ConfigError, base_config, validate
from cnnjax.convert.files import convert_file
from cnnjax.errors import CnnjaxError
from cnnjax.train import experiment, init_from
from cnnjax.train.loop import train_and_evaluate
from tests.convert.parity import randomize, torch

torchvision = pytest.importorskip("torchvision")
MODEL = "squeezenet1_1"  # smallest torchvision twin that takes 28x28 inputs


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A random-weight torchvision squeezenet1_1 (1000 classes, RGB), converted by `cnnjax convert`."""
    tmp = tmp_path_factory.mktemp("init_from")
    torch.manual_seed(0)
    torch.save(randomize(torchvision.models.squeezenet1_1()).state_dict(), tmp / "w.pth")
    variables = convert_file(MODEL, tmp / "w.pth", tmp / "converted")
    return tmp / "converted", jax.device_get(variables)


def _config(source, **changes):
    c = base_config()
    c.model, c.dataset, c.init_from = MODEL, "fashion_mnist", str(source)
    c.num_train_examples, c.validation_size, c.batch_size, c.num_epochs = 8, 0, 8, 1
    c.progress_bar, c.log_every_steps = False, 1
    c.update(changes)
    return c


def _leaves(tree):
    return {init_from._name(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.torch
def test_matching_variables_are_loaded_the_head_and_stem_reinitialised(converted):
    source, variables = converted
    exp = experiment.build(_config(source))  # 10 classes, 1 channel: head and stem differ from the source
    fresh = exp.init_state()
    state, report = init_from.apply(fresh, exp, str(source))
    got, want, init = _leaves({"params": state.params}), _leaves({"params": variables["params"]}), \
        _leaves({"params": fresh.params})
    assert report.kind == "converted" and not report.missing and not report.unused
    # The RGB stem (3 -> 1 channel) and the 1000-class head (-> 10) differ in shape; nothing else does.
    assert sorted(report.reinitialised) == ["params/conv1/kernel", "params/conv10/bias", "params/conv10/kernel"]
    for name in report.loaded:
        if name.startswith("params/"):
            np.testing.assert_array_equal(got[name], want[name])
    for name in report.reinitialised:
        assert got[name].shape != want[name].shape
        np.testing.assert_array_equal(got[name], init[name])  # the fresh initialisation, untouched
    assert len(report.loaded) + len(report.reinitialised) == len(_leaves(variables))


@pytest.mark.torch
def test_training_starts_from_them_records_the_report_and_resume_wins(converted, tmp_path, monkeypatch):
    source, _ = converted
    result = train_and_evaluate(_config(source), tmp_path / "run")
    assert result.last_step == 1
    report = json.loads((tmp_path / "run" / "run.json").read_text())["init_from"]
    assert report["kind"] == "converted" and report["loaded"] and report["reinitialised"]

    def must_not_run(*args):
        raise AssertionError("init_from applied to a resumed run")

    monkeypatch.setattr(init_from, "apply", must_not_run)
    assert train_and_evaluate(_config(source, num_epochs=2), tmp_path / "run").last_step == 2


@pytest.mark.torch
def test_a_training_workdir_is_a_source_too(converted, tmp_path):
    source, _ = converted
    train_and_evaluate(_config(source), tmp_path / "first")
    exp = experiment.build(_config(tmp_path / "first"))
    state, report = init_from.apply(exp.init_state(), exp, str(tmp_path / "first"))
    assert report.kind == "workdir" and report.step == 1 and not report.reinitialised and not report.missing


def test_a_bad_directory_is_one_line_before_training(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        validate(_config(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnjaxError, match="neither") as err:
        init_from.source_kind(tmp_path / "empty")
    assert "\n" not in str(err.value)
