"""Inference-only restores: the `params` and `batch_stats` of a checkpoint, nothing else.

Evaluation used to build the whole experiment (every split, the optimizer) and restore a complete
`TrainState`, optimizer moments included, only to throw most of it away. Here the model's variable shapes
come from an abstract `init` (no arrays are made) and Orbax reads only the two subtrees inference needs
(`Checkpointer.restore(..., partial=True)`), straight into their replicated sharding, with the same
checks as a full restore: the step must be on disk, its checksums are verified before Orbax reads
anything, and a failure is one line (or `StepNotFoundError` when retention removed the step meanwhile).

Converted torchvision weights (`cnnjax convert ... --out DIR`) are a bare Orbax checkpoint of the same
two collections, read by `restore_converted`.
"""

from __future__ import annotations

import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.errors import first_line
from cnnjax.train.checkpoint import CheckpointError, Checkpointer

COLLECTIONS = ("params", "batch_stats")


def abstract_variables(model: nn.Module, image_shape: tuple[int, ...], mesh: Mesh) -> dict[str, Any]:
    """Shapes/dtypes of the model's `params` and `batch_stats`, replicated on `mesh`, without computing them."""
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                               jnp.zeros((1, *image_shape)), train=False))
    replicated = NamedSharding(mesh, P())
    return {name: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                               dict(shapes.get(name, {})))
            for name in COLLECTIONS}


def restore_variables(ckpt: Checkpointer, step: int, target: dict[str, Any],
                      ema: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(variables, meta) of `step`: only the `params`/`batch_stats` subtrees of its `state` item, or with `ema`
    those of its moving average (`state.ema`, saved by runs with ema_decay > 0).

    `target` is `abstract_variables(...)`. Raises `StepNotFoundError` if the step is (or goes) missing,
    and a one-line `CheckpointError` for damage or a model that does not match.
    """
    state, meta = ckpt.restore(step, {"ema": target} if ema else target, partial=True)
    state = state["ema"] if ema else state
    return {name: state.get(name, {}) for name in COLLECTIONS}, meta


def is_converted(path: pathlib.Path) -> bool:
    """A `cnnjax convert` output: a bare Orbax checkpoint directory (no run.json, no checkpoints/)."""
    return (path / "_CHECKPOINT_METADATA").is_file() and not (path / "run.json").exists()


def converted_tree(path: str | pathlib.Path) -> dict[str, Any]:
    """The metadata tree (shapes/dtypes, no arrays) of a converted checkpoint; one-line error if it is not one."""
    path = pathlib.Path(path).absolute()
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist: give the --out directory of `cnnjax convert` or a "
                              "training workdir")
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            meta = checkpointer.metadata(path)
    except Exception as err:
        raise CheckpointError(f"{path} is neither a training workdir (run.json + checkpoints/) nor a "
                              f"`cnnjax convert` output ({first_line(err)})") from None
    tree = getattr(getattr(meta, "item_metadata", meta), "tree", getattr(meta, "item_metadata", meta))
    if not isinstance(tree, dict) or "params" not in tree:
        raise CheckpointError(f"{path} is neither a training workdir (run.json + checkpoints/) nor a "
                              "`cnnjax convert` output (no Orbax checkpoint of 'params' there)")
    return tree


def restore_converted(path: str | pathlib.Path, target: dict[str, Any]) -> dict[str, Any]:
    """The `params`/`batch_stats` of a converted checkpoint, shaped like `target`; one-line error on mismatch."""
    path = pathlib.Path(path).absolute()
    saved = converted_tree(path)
    target = {k: v for k, v in target.items() if k in saved and (v or saved[k])}
    try:
        with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as checkpointer:  # Standard* refuses partial
            restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
                target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True))
    except Exception as err:
        raise CheckpointError(f"{path} does not match this model (was it converted for another one, or with "
                              f"another --num-classes?): {first_line(err)}") from None
    return {name: dict(restored.get(name, {})) for name in COLLECTIONS}
