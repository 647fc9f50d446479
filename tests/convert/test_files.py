"""Weight files -> Orbax checkpoint: safetensors and weights-only .pth, and refusal of arbitrary pickles."""

import pickle
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cnnjax.cli import main
from cnnjax.convert import ConversionError, from_torchvision
from cnnjax.convert.files import convert_file, load_state_dict
from tests import fs_faults

try:  # the .safetensors tests below run without torch; the others skip through `squeezenet_state`
    import torch
except ImportError:
    torch = None


@pytest.fixture(scope="module")
def squeezenet_state():
    torchvision = pytest.importorskip("torchvision")
    from tests.convert.parity import randomize

    torch.manual_seed(0)
    return randomize(torchvision.models.squeezenet1_1()).state_dict()


@pytest.fixture
def without_torch(monkeypatch):
    """`import torch` fails, as on an install without the [torch] extra."""
    monkeypatch.setitem(sys.modules, "torch", None)


def test_safetensors_files_are_read_without_torch(without_torch, tmp_path):
    from safetensors.numpy import save_file

    tensors = {"features.0.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
               "features.0.bias": np.array([0.5, -1.0], np.float32)}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    got = load_state_dict(tmp_path / "w.safetensors")
    assert sorted(got) == sorted(tensors)
    for k, v in tensors.items():
        np.testing.assert_array_equal(np.asarray(got[k]), v)
    (tmp_path / "w.pth").write_bytes(b"anything")
    with pytest.raises(ConversionError, match="reading .pth files needs torch.*.safetensors files do not"):
        load_state_dict(tmp_path / "w.pth")


def test_damaged_or_unknown_files_are_named_without_torch(without_torch, tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones((64, 64), np.float32)}, str(tmp_path / "cut.safetensors"))
    data = (tmp_path / "cut.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"not a header at all")
    for name in ("cut.safetensors", "junk.safetensors"):
        with pytest.raises(ConversionError, match=f"{name} is not a valid .safetensors file"):
            load_state_dict(tmp_path / name)
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ConversionError, match="expected a .safetensors, .pth or .pt file"):
        load_state_dict(tmp_path / "w.npz")


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
    pytest.importorskip("torch")
    bad = tmp_path / "evil.pth"
    with bad.open("wb") as f:
        pickle.dump({"conv.weight": Payload()}, f)
    with pytest.raises(ConversionError, match="refused .*could run code; it was not loaded") as info:
        load_state_dict(bad)
    assert "weights_only" not in str(info.value)  # no advice to switch the protection off
    assert "arbitrary code ran" not in capsys.readouterr().out


@pytest.mark.torch
def test_damaged_weight_files_are_named(squeezenet_state, tmp_path):
    from safetensors.numpy import save_file

    torch.save(squeezenet_state, tmp_path / "w.pth")
    save_file({k: v.numpy() for k, v in squeezenet_state.items()}, str(tmp_path / "w.safetensors"))
    for name, pattern in (("w.pth", "is damaged or not a torch weights file"),
                          ("w.safetensors", "is not a valid .safetensors file")):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(ConversionError, match=pattern):
            load_state_dict(tmp_path / name)
    (tmp_path / "junk.safetensors").write_bytes(b"not a header at all")
    with pytest.raises(ConversionError, match="is not a valid .safetensors file"):
        load_state_dict(tmp_path / "junk.safetensors")


@pytest.mark.torch
def test_existing_output_and_wrong_model_are_errors(squeezenet_state, tmp_path, capsys):
    torch.save(squeezenet_state, tmp_path / "w.pth")
    (tmp_path / "taken").mkdir()
    assert main(["convert", "squeezenet1_1", str(tmp_path / "w.pth"), "--out", str(tmp_path / "taken")]) == 2
    assert "exists" in capsys.readouterr().err
    with pytest.raises(ConversionError):
        convert_file("squeezenet1_0", tmp_path / "w.pth", tmp_path / "other")
    assert not (tmp_path / "other").exists()


# The cause, not only the start-up probe: with it bypassed, the save itself must fail at once.
_WITHOUT_PROBE = ("import cnnjax.train.checkpoint as c; c.ensure_writable = lambda *a: None; "
                  "from cnnjax.cli import main; raise SystemExit(main())")


@pytest.mark.torch
def test_convert_onto_a_read_only_directory_is_one_line_at_once(squeezenet_state, tmp_path):
    """It used to hang 300 s: Orbax's writer threads waited for a directory that could not be created."""
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in squeezenet_state.items()}, str(weights))
    out = tmp_path / "ro" / "out"
    args = ["convert", "squeezenet1_1", str(weights), "--out", str(out)]
    with fs_faults.read_only(out.parent) as cause:
        for python, expected in [(["-m", "cnnjax"], f"cannot write the converted checkpoint in {out.parent}: "),
                                 (["-c", _WITHOUT_PROBE], f"writing {out} failed: ")]:
            start = time.monotonic()
            result = subprocess.run([sys.executable, *python, *args], capture_output=True, text=True, timeout=120)
            seconds = time.monotonic() - start
            assert result.returncode == 2, result.stderr[-3000:]
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"cnnjax: error: {expected}{cause}"), lines
            assert seconds < 60, f"took {seconds:.0f} s"
    assert list(out.parent.iterdir()) == []
