"""Orbax checkpoints under `<workdir>/checkpoints`: the last N steps plus the best by validation top-1.

Each checkpoint holds the whole `TrainState` and a small JSON `meta` (epoch, validation metrics), so
the best step can be found without loading any arrays. Orbax writes to a temporary directory and renames
it when complete, so a run killed mid-save leaves the previous checkpoints intact. Once a save has
finished, a `checksums.json` of every file is added to its directory and checked before each restore,
so damaged files are reported by name before Orbax reads any of them (and bit rot cannot pass silently).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from cnnjax.errors import CnnjaxError

BEST_METRIC = "val_top1"
CHECKSUMS = "checksums.json"
ITEMS = ("state", "meta")


class CheckpointError(CnnjaxError, RuntimeError):
    """A checkpoint that cannot be read or does not fit this run; nothing was modified."""


class Checkpointer:
    def __init__(self, workdir: str | pathlib.Path, keep_last: int = 2, read_only: bool = False):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"no checkpoints in {self.directory}: train first, or check --workdir")
        preservation = policies.AnyPreservationPolicy([
            policies.LatestN(n=keep_last),
            policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1, keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(preservation_policy=preservation, read_only=read_only,
                                               create=not read_only)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
        self._unsealed: list[int] = []

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        metrics = {BEST_METRIC: meta[BEST_METRIC]} if meta.get(BEST_METRIC) is not None else None
        self.wait()
        self._unsealed.append(step)
        self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         meta=ocp.args.JsonSave(meta)),
                           metrics=metrics, force=True)

    def meta(self, step: int) -> dict[str, Any]:
        path = self.directory / str(step) / "meta" / "metadata"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"checkpoint meta {path} is unreadable ({err}); the checkpoint is corrupt") from None

    def best_step(self) -> int | None:
        """Step with the highest validation top-1 (the latest step if none has validation metrics)."""
        scored = [(m[BEST_METRIC], s) for s in self.all_steps() if (m := self.meta(s)).get(BEST_METRIC) is not None]
        return max(scored)[1] if scored else self.latest_step()

    def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
        """Restores `step` into the structure/sharding of `target` (a state of the same config)."""
        if step not in self.all_steps():
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; "
                                  f"available: {self.all_steps() or 'none'}")
        self._verify_checksums(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        except Exception as err:  # orbax/tensorstore raise many types for damaged or mismatched files
            first = str(err).strip().splitlines()[0].split(". See full")[0][:300] if str(err).strip() \
                else type(err).__name__
            raise _unusable(self.directory / str(step),
                            f"is corrupt or does not match this model/config ({first})") from None
        return restored.state, restored.meta

    def wait(self) -> None:
        """Blocks until pending saves are on disk, then records their checksums."""
        self._manager.wait_until_finished()
        for step in self._unsealed:
            step_dir = self.directory / str(step)
            if step_dir.is_dir() and jax.process_index() == 0:  # the preservation policy may have deleted it
                sums = _file_checksums(step_dir)
                tmp = step_dir / (CHECKSUMS + ".tmp")
                tmp.write_text(json.dumps(sums, indent=1, sort_keys=True))
                tmp.rename(step_dir / CHECKSUMS)
        self._unsealed.clear()

    def _verify_checksums(self, step: int) -> None:
        """Names the first damaged or missing file; checkpoints killed before sealing are not checked."""
        step_dir = self.directory / str(step)
        try:
            expected = json.loads((step_dir / CHECKSUMS).read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            raise _unusable(step_dir, f"has an unreadable {CHECKSUMS} ({err})") from None
        for name, digest in sorted(expected.items()):
            path = step_dir / name
            if not path.is_file():
                raise _unusable(step_dir, f"is corrupt: {name} is missing")
            if _checksum(path) != digest:
                raise _unusable(step_dir, f"is corrupt: {name} does not match its checksum")

    def close(self) -> None:
        self.wait()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: object) -> None:
        """Closes the manager on every exit, errors included (its background threads must not outlive it)."""
        self.close()


def _unusable(step_dir: pathlib.Path, problem: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {step_dir} {problem}; it was left untouched — move it away or use "
                           "another --workdir")


def _checksum(path: pathlib.Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()


def _file_checksums(step_dir: pathlib.Path) -> dict[str, str]:
    """Every file of the saved items (Orbax may rewrite its own step-level metadata later)."""
    files = sorted(p for item in ITEMS for p in (step_dir / item).rglob("*") if p.is_file())
    return {str(p.relative_to(step_dir)): _checksum(p) for p in files}
