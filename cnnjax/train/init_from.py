"""`--config.init_from=DIR`: start a new run from converted torchvision weights or another run's best checkpoint.

Fine-tuning needs the pretrained trunk but usually not its head (another `num_classes`) and sometimes not
its stem (grayscale data for an RGB model). Variables are matched by path and shape; `init_from_skip` says
which keep their fresh initialisation ("reinitialised"): "shape" (the default, as before the key existed)
those whose shape differs; a pattern (`head`, "conv1/*|head", see `param_groups`) exactly the variables it
matches, whatever their shape, any other shape difference being an error; "" none. Variables the source
lacks are "missing" (freshly initialised), source variables the model does not have are "unused". The
report is logged and written into the run's `run.json`, so a run says what it started from.

It only applies to step 0: a workdir with checkpoints resumes from them (resume wins), since the state it
saved already contains whatever `init_from` gave it. A DIR that is neither a convert output nor a
training workdir with a checkpoint is a one-line `CheckpointError` before the first step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from cnnjax import sharding
from cnnjax.data.splits import meta_for_config
from cnnjax.errors import first_line
from cnnjax.models.head import head_path
from cnnjax.evaluate.restore import COLLECTIONS, abstract_variables, converted_tree, is_converted, restore_variables
from cnnjax.train import experiment, param_groups, run_info
from cnnjax.train.checkpoint import CheckpointError, open_read_only
from cnnjax.train.state import EmaTrainState, TrainState, with_ema

log = logging.getLogger("cnnjax")


@dataclasses.dataclass(frozen=True)
class InitReport:
    """Which variables (`collection/module/.../name` paths) came from the source, and which did not."""

    source: str
    kind: str  # "converted" or "workdir"
    step: int | None  # the source checkpoint's step (workdirs only)
    loaded: list[str]
    reinitialised: list[str]  # present in the source with another shape (e.g. the head for new num_classes)
    missing: list[str]  # not in the source: freshly initialised
    unused: list[str]  # in the source, not in this model

    def summary(self) -> str:
        return (f"init_from {self.source}: loaded {len(self.loaded)} variables, reinitialised "
                f"{len(self.reinitialised)} ({', '.join(self.reinitialised[:6]) or 'none'}), missing "
                f"{len(self.missing)}, unused {len(self.unused)}")


def source_kind(path: str | pathlib.Path) -> str:
    """'converted' or 'workdir'; a one-line `CheckpointError` for anything else (checked before training)."""
    path = pathlib.Path(path).expanduser()
    if not path.is_dir():
        raise CheckpointError(f"init_from={str(path)!r} is not a directory: give the --out directory of "
                              "`cnnjax convert` or a training workdir")
    if is_converted(path):
        converted_tree(path)  # raises if it is not a readable convert output
        return "converted"
    if (path / "run.json").is_file() and (path / "checkpoints").is_dir():
        return "workdir"
    raise CheckpointError(f"init_from={str(path)!r} is neither a `cnnjax convert` output nor a training "
                          "workdir (run.json + checkpoints/)")


def load_source(path: str | pathlib.Path) -> tuple[dict[str, Any], str, int | None]:
    """(host variables {'params', 'batch_stats'}, kind, step) of a convert output or a workdir's best step."""
    path = pathlib.Path(path).expanduser().absolute()
    kind = source_kind(path)
    if kind == "converted":
        try:
            with ocp.StandardCheckpointer() as checkpointer:
                restored = checkpointer.restore(path)
        except Exception as err:
            raise CheckpointError(f"init_from={path}: the converted weights are unreadable "
                                  f"({first_line(err)})") from None
        return {name: restored.get(name, {}) for name in COLLECTIONS}, kind, None
    config = run_info.load_config(path)
    meta = meta_for_config(config)  # shapes only: no example is loaded
    model = experiment.build_model(config, meta.num_classes, meta.image_shape)
    target = abstract_variables(model, meta.image_shape, sharding.make_mesh(1))
    with open_read_only(path) as ckpt:
        step = ckpt.best_step()
        if step is None:
            raise CheckpointError(f"init_from={path}: the workdir has no checkpoint yet")
        variables, _ = restore_variables(ckpt, step, target)
    return jax.device_get(variables), kind, step


def merge(fresh: dict[str, Any], source: dict[str, Any],
          skip: param_groups.Globs | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """`fresh` with every leaf whose path and shape the source also has replaced by the source's value.

    `skip` None reinitialises (keeps fresh) every leaf whose shape differs; globs (on the path without its
    collection) reinitialise exactly the leaves they match, and another shape difference is an error.
    """
    source_leaves = {_name(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(source)}
    groups: dict[str, list[str]] = {"loaded": [], "reinitialised": [], "missing": []}
    mismatched: list[str] = []

    def pick(path: Any, leaf: Any) -> Any:
        name = _name(path)
        found = source_leaves.get(name)
        if found is None:
            groups["missing"].append(name)
            return leaf
        if (skip is None and found.shape != leaf.shape) or (skip and param_groups.matches(_name(path[1:]), skip)):
            groups["reinitialised"].append(name)
            return leaf
        if found.shape != leaf.shape:
            mismatched.append(f"{name} {found.shape}->{leaf.shape}")
            return leaf
        groups["loaded"].append(name)
        return found.astype(leaf.dtype)

    merged = jax.tree_util.tree_map_with_path(pick, fresh)
    if mismatched:
        raise CheckpointError(f"init_from: {len(mismatched)} variables differ in shape from the source "
                              f"({', '.join(mismatched[:4])}); re-initialise them with --config.init_from_skip=head "
                              "(or a pattern naming them, or 'shape' for every mismatch)")
    used = set(groups["loaded"]) | set(groups["reinitialised"])
    groups["unused"] = sorted(set(source_leaves) - used)
    return merged, groups


def apply(state: TrainState, exp: experiment.Experiment, path: str) -> tuple[TrainState, InitReport]:
    """The step-0 `state` with the matching variables of `path` loaded and the optimizer state re-made."""
    source, kind, step = load_source(path)
    fresh = {"params": state.params, "batch_stats": state.batch_stats}
    merged, groups = merge(jax.device_get(fresh), source, skip_globs(exp))
    report = InitReport(str(pathlib.Path(path).expanduser().absolute()), kind, step, **groups)
    if not report.loaded:
        raise CheckpointError(f"init_from={path}: no variable of {exp.config.model} matches it by path and shape "
                              f"(was it made for another model?); {len(report.unused)} source variables unused")
    params = merged["params"]
    state = state.replace(params=params, batch_stats=merged["batch_stats"], opt_state=exp.tx.init(params))
    if isinstance(state, EmaTrainState):  # the average starts at the loaded weights, not the discarded fresh ones
        state = with_ema(state)
    return sharding.replicate_tree(state, exp.mesh), report


def skip_globs(exp: experiment.Experiment) -> param_groups.Globs | None:
    """config.init_from_skip as `merge` takes it (None = by shape); `head` resolved on the model."""
    spec = exp.config.get("init_from_skip", "shape")
    if spec == "shape":
        return None
    head = head_path(exp.model, exp.data.meta.image_shape) if param_groups.needs_head(exp.config) else None
    return param_groups.globs(spec, head)


def record(workdir: pathlib.Path, report: InitReport) -> None:
    """Logs the report and adds it to the run's run.json (under "init_from"), written atomically."""
    log.info("%s", report.summary())
    path = workdir / "run.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    info["init_from"] = dataclasses.asdict(report)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)


_name = param_groups.path_name
