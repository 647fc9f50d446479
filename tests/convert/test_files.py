"""Weight files -> Orbax checkpoint: safetensors and weights-only .pth, and refusal of arbitrary pickles."""

import pickle

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cnnjax.cli import main
from cnnjax.convert import ConversionError, from_torchvision
from cnnjax.convert.files import convert_file, load_state_dict
from tests.convert.parity import randomize, torch

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def squeezenet_state():
    torch.manual_seed(0)
    return randomize(torchvision.models.squeezenet1_1()).state_dict()


def _restore(path):
    with ocp.StandardCheckpointer() as c:
        return c.restore(path)


@pytest.mark.torch
def test_pth_and_safetensors_give_the_converted_variables(squeezenet_state, tmp_path):
    from safetensors.torch import save_file

    torch.save(squeezenet_state, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in squeezenet_state.items()}, str(tmp_path / "w.safetensors"))
    want = from_torchvision("squeezenet1_1", squeezenet_state)
    for source in ("w.pth", "w.safetensors"):
        assert main(["convert", "squeezenet1_1", str(tmp_path / source), "--out", str(tmp_path / f"{source}.ckpt")]) == 0
        got = _restore(tmp_path / f"{source}.ckpt")
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


class Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


@pytest.mark.torch
def test_arbitrary_pickles_are_refused(tmp_path, capsys):
    bad = tmp_path / "evil.pth"
    with bad.open("wb") as f:
        pickle.dump({"conv.weight": Payload()}, f)
    with pytest.raises(ConversionError, match="not a plain tensor file"):
        load_state_dict(bad)
    assert "arbitrary code ran" not in capsys.readouterr().out


@pytest.mark.torch
def test_existing_output_and_wrong_model_are_errors(squeezenet_state, tmp_path, capsys):
    torch.save(squeezenet_state, tmp_path / "w.pth")
    (tmp_path / "taken").mkdir()
    assert main(["convert", "squeezenet1_1", str(tmp_path / "w.pth"), "--out", str(tmp_path / "taken")]) == 2
    assert "exists" in capsys.readouterr().err
    with pytest.raises(ConversionError):
        convert_file("squeezenet1_0", tmp_path / "w.pth", tmp_path / "other")
    assert not (tmp_path / "other").exists()
