"""torchvision weight files -> an Orbax checkpoint of Flax variables, without unpickling arbitrary objects.

`.safetensors` files hold only tensors; `.pth`/`.pt` files are read with `torch.load(weights_only=True)`,
which refuses any pickled object that is not a tensor or a plain container.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
import shutil
from typing import Any

from cnnjax.convert.torchvision import from_torchvision
from cnnjax.convert.torch_weights import ConversionError
from cnnjax.errors import first_line


def load_state_dict(path: str | pathlib.Path) -> dict[str, Any]:
    """Tensors of a .safetensors or .pth/.pt file (a state_dict, or a checkpoint dict holding one)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConversionError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as err:  # SafetensorError (truncated, garbage header), OSError
            raise ConversionError(f"{path} is not a valid .safetensors file ({first_line(err, 200)})") from None
    if path.suffix not in (".pth", ".pt"):
        raise ConversionError(f"{path}: expected a .safetensors, .pth or .pt file")
    try:
        import torch
    except ImportError:
        raise ConversionError("reading .pth files needs torch (pip install -e '.[torch]'); "
                              ".safetensors files do not") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's weights_only loader met a global that is not a tensor type
        raise ConversionError(
            f"refused {path}: it holds pickled Python objects besides tensors, and unpickling them could run "
            "code; it was not loaded. Re-save the weights as .safetensors (or a state_dict of tensors) from a "
            "trusted source") from None
    except Exception as err:  # RuntimeError/EOFError for a damaged or foreign file
        raise ConversionError(f"{path} is damaged or not a torch weights file ({first_line(err, 200)})") from None
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ConversionError(f"{path} holds a {type(loaded).__name__}, not a state_dict")
    return loaded


def convert_file(name: str, weights: str | pathlib.Path, out: str | pathlib.Path,
                 num_classes: int | None = None) -> dict[str, Any]:
    """Converts a torchvision weights file for cnnjax model `name`; writes {'params', 'batch_stats'} to `out`."""
    import orbax.checkpoint as ocp

    from cnnjax.train.checkpoint import ensure_writable, quiet_background_write_failures, write_failure_cause

    out = pathlib.Path(out).absolute()
    if out.exists():
        raise ConversionError(f"{out} exists; choose another --out (nothing was overwritten)")
    ensure_writable(out.parent, "the converted checkpoint", "or choose another --out")  # before reading weights
    variables = from_torchvision(name, load_state_dict(weights), num_classes)
    quiet_background_write_failures()
    # Directories are created synchronously: if that fails, Orbax's asynchronous creation would leave its
    # writer threads waiting 300 s for a "directory created" signal.
    options = ocp.AsyncOptions(create_directories_asynchronously=False)
    try:
        with ocp.StandardCheckpointer(async_options=options) as checkpointer:
            checkpointer.save(out, variables)
    except Exception as err:
        if (cause := write_failure_cause(err)) is None:
            raise
        shutil.rmtree(out.parent / f"{out.name}.orbax-checkpoint-tmp", ignore_errors=True)
        raise ConversionError(f"writing {out} failed: {cause}; nothing was written there") from None
    return variables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="cnnjax model name of the torchvision twin, e.g. resnet50")
    parser.add_argument("weights", help=".safetensors or .pth/.pt file of the torchvision state_dict")
    parser.add_argument("--out", required=True, help="directory of the Orbax checkpoint to write")
    parser.add_argument("--num-classes", type=int, default=None)


def run(args: argparse.Namespace) -> None:
    import jax

    variables = convert_file(args.model, args.weights, args.out, args.num_classes)
    count = sum(x.size for x in jax.tree.leaves(variables.get("params", {})))
    print(f"wrote {args.out}: {args.model}, {count:,} parameters")
