"""Orbax checkpoints under `<workdir>/checkpoints`: the last N steps, the best by validation top-1, snapshots.

Each checkpoint holds the whole `TrainState` and a small JSON `meta` (epoch, validation metrics), so
the best step can be found without loading any arrays. Orbax writes to a temporary directory and renames
it when complete, so a run killed mid-save leaves the previous checkpoints intact. Once a save has
finished, a `checksums.json` of every file is added to its directory and checked before each restore,
so damaged files are reported by name before Orbax reads any of them (and bit rot cannot pass silently).

Retention is decided here, not by Orbax's in-memory metrics (which a restarted run does not have): after
each save is sealed, the steps that are neither among the last N nor the best (`best_step`, read from the
steps' `meta` on disk) nor snapshots (`"snapshot": true` in their meta: cyclic_cosine's cycle ends) are
deleted, so restarts never change what is kept. A write that fails (read-only or full disk) raises one
`CheckpointError` naming the directory and the cause; its partial temporary directory is removed and the
earlier checkpoints are untouched.

Readers (evaluation) may run while the training run saves and rotates checkpoints away. Orbax's retention
deletes a step's files, then its directory; so a read that fails is blamed on damage only if the step's
directory is still there, and stops losing files, `DELETION_GRACE_S` later. Otherwise the step was
rotated away (`StepNotFoundError`), which a reader that picked the step itself answers by choosing again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import sys
import time
from typing import Any, Iterable

import absl.logging
import jax
import orbax.checkpoint as ocp

from cnnjax.errors import CnnjaxError, first_line

log = logging.getLogger("cnnjax")
BEST_METRIC = "val_top1"
SNAPSHOT = "snapshot"  # meta key: true for a checkpoint kept as an ensemble member (a cycle end)
CHECKSUMS = "checksums.json"
ITEMS = ("state", "meta")
# How long a step whose files went missing may keep its directory without losing more files and still be
# taken for one being deleted by retention (which takes milliseconds) rather than for a damaged one.
DELETION_GRACE_S = 1.0


class CheckpointError(CnnjaxError, RuntimeError):
    """A checkpoint that cannot be read or does not fit this run; nothing was modified."""


class StepNotFoundError(CheckpointError):
    """No checkpoint for the step: never saved, or removed by the run's retention (not damage)."""

    def __init__(self, message: str, available: list[int]):
        super().__init__(message)
        self.available = available


class Checkpointer:
    def __init__(self, workdir: str | pathlib.Path, keep_last: int = 2, read_only: bool = False):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"no checkpoints in {self.directory}: train first, or check --workdir")
        self.keep_last, self._read_only = keep_last, read_only
        if not read_only:  # a read-only or unwritable directory fails here, before any training
            ensure_writable(self.directory, "checkpoints", "or use another --workdir")
            quiet_background_write_failures()
        # Orbax keeps every step; `_retain` deletes. Directories are created inside `save` (synchronously): an
        # asynchronous creation that fails leaves Orbax's writer threads waiting 300 s for its signal.
        options = ocp.CheckpointManagerOptions(
            read_only=read_only, create=not read_only, cleanup_tmp_directories=not read_only,
            async_options=ocp.AsyncOptions(create_directories_asynchronously=False))
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
        self._unsealed: list[int] = []

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Starts writing `step` in the background (after sealing the previous save and applying retention)."""
        self.wait()
        self._unsealed.append(step)
        try:
            self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                             meta=ocp.args.JsonSave(meta)), force=True)
        except Exception as err:  # creating the step's directories failed (any other error is re-raised as is)
            self._unsealed.remove(step)
            raise self._save_failed(step, err) from None

    def steps_on_disk(self) -> list[int]:
        """The committed steps on disk now (`all_steps` is the manager's view, which may be older)."""
        return sorted(m.step for m in ocp.step.standard_name_format().find_all(self.directory))

    def meta(self, step: int) -> dict[str, Any]:
        path = self.directory / str(step) / "meta" / "metadata"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise self._unreadable(step, f"is corrupt: its meta/metadata is unreadable ({err})") from None

    def best_step(self, skip_damaged: bool = False) -> int | None:
        """Step with the highest validation top-1 (the latest step if none has validation metrics).

        Steps that the training run rotates away while they are looked at are skipped; so are steps whose
        meta is damaged when `skip_damaged` (readers: a partly deleted old checkpoint must not block
        evaluating the intact best; it is named in a warning). Retention never skips: it stops instead.
        """
        scored, present = [], []
        for step in self.steps_on_disk():
            try:
                meta = self.meta(step)
            except StepNotFoundError:
                continue
            except CheckpointError as err:
                if not skip_damaged:
                    raise
                log.warning("skipped a damaged checkpoint: %s", err)
                continue
            present.append(step)
            if meta.get(BEST_METRIC) is not None:
                scored.append((meta[BEST_METRIC], step))
        return max(scored)[1] if scored else max(present, default=None)

    def snapshot_steps(self) -> list[int]:
        """Steps whose meta marks them as snapshots (kept by retention; the members of a snapshot ensemble)."""
        return [step for step in self.steps_on_disk() if self._meta_if_present(step).get(SNAPSHOT)]

    def _meta_if_present(self, step: int) -> dict[str, Any]:
        """The meta of `step`, or {} if it was rotated away meanwhile (readers list while a run deletes)."""
        try:
            return self.meta(step)
        except StepNotFoundError:
            return {}

    def restore(self, step: int, target: Any, partial: bool = False) -> tuple[Any, dict[str, Any]]:
        """Restores `step` into the structure/sharding of `target` (a state of the same config).

        With `partial`, `target` holds only some subtrees of the saved state (e.g. `params` and
        `batch_stats` as sharded ShapeDtypeStructs, for inference) and only those are read.
        Raises `StepNotFoundError` if the step is not on disk or is rotated away while being read, and a
        `CheckpointError` naming the damage if it is still there but unreadable.
        """
        self.require(step)
        self._verify_checksums(step)
        if partial:
            state_args = ocp.args.PyTreeRestore(
                target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True)
        else:
            state_args = ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(state=state_args,
                                                                           meta=ocp.args.JsonRestore()))
        except Exception as err:  # orbax/tensorstore raise many types for damaged or mismatched files
            raise self._unreadable(step, f"is corrupt or does not match this model/config ({first_line(err)})") \
                from None
        return restored.state, restored.meta

    def require(self, step: int) -> None:
        """Raises `StepNotFoundError` (saying what is available) unless `step` is on disk now."""
        if step not in (available := self.steps_on_disk()):
            raise self._not_found(step, available)

    def _not_found(self, step: int, available: list[int], while_reading: bool = False) -> StepNotFoundError:
        kept = "it keeps only the last checkpoints and the best"
        if while_reading:
            why = f" any more: the training run's checkpoint retention removed it while it was being read ({kept})"
        elif available and step < available[-1]:
            why = f": the run's checkpoint retention has removed it ({kept}), or it was never saved"
        else:
            why = ""
        return StepNotFoundError(f"no checkpoint for step {step} in {self.directory}{why}; available: "
                                 f"{available or 'none'}", available)

    def _unreadable(self, step: int, problem: str) -> CheckpointError:
        """`problem` as damage if the step's directory stays; a `StepNotFoundError` if retention is deleting it."""
        step_dir = self.directory / str(step)
        deadline, files = time.monotonic() + DELETION_GRACE_S, _file_count(step_dir)
        while step_dir.exists():
            if time.monotonic() > deadline:
                return _unusable(step_dir, problem)
            time.sleep(0.02)
            if (now := _file_count(step_dir)) < files:  # still losing files: a deletion is under way
                deadline, files = time.monotonic() + DELETION_GRACE_S, now
        return self._not_found(step, self.steps_on_disk(), while_reading=True)

    def wait(self) -> None:
        """Blocks until pending saves are on disk, records their checksums, then applies retention.

        Raises a `CheckpointError` naming the cause if the background write failed (its partial temporary
        directory removed, the earlier checkpoints untouched).
        """
        unsealed, self._unsealed = self._unsealed, []
        try:
            self._manager.wait_until_finished()
        except Exception as err:
            raise self._save_failed(unsealed[-1] if unsealed else None, err) from None
        for step in unsealed:
            step_dir = self.directory / str(step)
            if step_dir.is_dir() and jax.process_index() == 0:
                tmp = step_dir / (CHECKSUMS + ".tmp")
                try:
                    tmp.write_text(json.dumps(file_checksums(step_dir), indent=1, sort_keys=True))
                    tmp.rename(step_dir / CHECKSUMS)
                except OSError as err:
                    with contextlib.suppress(OSError):
                        tmp.unlink(missing_ok=True)
                    raise CheckpointError(
                        f"recording the checksums of checkpoint {step_dir} failed: {_cause(err)}; the checkpoint "
                        "itself is complete (it restores, unchecked) and the earlier ones are intact") from None
        self._retain()

    def check(self) -> None:
        """Raises now if the background save has failed, and seals it if it has finished; never blocks.

        Single-process runs only (several processes would have to agree on when to look); elsewhere a failed
        save is reported by the next `save` or `wait`.
        """
        if self._unsealed and jax.process_count() == 1 and not self._manager.is_saving_in_progress():
            self.wait()

    def _retain(self) -> None:
        """Deletes the steps that are neither among the last `keep_last` nor the best (`best_step`).

        A pure function of the steps on disk and their meta, so a resumed run keeps what an uninterrupted
        one would. Deletion goes through Orbax's manager (process 0 deletes; every process calls it).
        """
        steps = self.all_steps()
        if self._read_only or len(steps) <= self.keep_last:
            return
        keep = retained_steps(steps, self.best_step(), self.keep_last, self.snapshot_steps())
        for step in sorted(set(steps) - keep):
            try:
                self._manager.delete(step)
            except OSError as err:
                raise CheckpointError(f"removing the old checkpoint {self.directory / str(step)} failed: "
                                      f"{_cause(err)}; nothing newer was lost") from None

    def _save_failed(self, step: int | None, err: Exception) -> Exception:
        """The one-line error for a failed write of `step` (or `err` itself if it is not a storage failure)."""
        cause = write_failure_cause(err)
        if step is not None and jax.process_index() == 0:  # Orbax writes into `<step>.orbax-checkpoint-tmp`
            partial = self.directory / f"{step}.orbax-checkpoint-tmp"
            shutil.rmtree(partial, ignore_errors=True)
        if cause is None:
            return err
        what = "a checkpoint" if step is None else f"checkpoint step {step}"
        kept = ", ".join(map(str, self.all_steps()))
        earlier = f"the earlier checkpoints are intact (steps {kept})" if kept else "no earlier checkpoint exists"
        remedy = "free some space" if cause in (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT)) \
            else "make it writable"
        return CheckpointError(f"saving {what} in {self.directory} failed: {cause}; {earlier} — {remedy} and run "
                               "again to resume, or use another --workdir")

    def _verify_checksums(self, step: int) -> None:
        """Names the first damaged or missing file; checkpoints killed before sealing are not checked."""
        step_dir = self.directory / str(step)
        try:
            expected = json.loads((step_dir / CHECKSUMS).read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            raise self._unreadable(step, f"has an unreadable {CHECKSUMS} ({err})") from None
        for name, digest in sorted(expected.items()):
            try:
                matches = _checksum(step_dir / name) == digest
            except FileNotFoundError:
                raise self._unreadable(step, f"is corrupt: {name} is missing") from None
            except OSError as err:
                raise self._unreadable(step, f"is corrupt: {name} is unreadable ({err.strerror})") from None
            if not matches:
                raise self._unreadable(step, f"is corrupt: {name} does not match its checksum") from None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: object) -> None:
        """Closes the manager on every exit, errors included (its background threads must not outlive it)."""
        self.close()


def open_read_only(workdir: str | pathlib.Path, attempts: int = 10) -> Checkpointer:
    """A read-only `Checkpointer` of `workdir`, opened again if a step vanishes while Orbax lists them."""
    for attempt in range(attempts):
        try:
            return Checkpointer(workdir, read_only=True)
        except FileNotFoundError as err:  # Orbax stats every step directory; a rotating run deletes some
            directory = pathlib.Path(workdir).absolute() / "checkpoints"
            if attempt == attempts - 1 or pathlib.Path(err.filename or "/").parent != directory:
                raise
    raise AssertionError("unreachable")


def retained_steps(steps: Iterable[int], best: int | None, keep_last: int,
                   snapshots: Iterable[int] = ()) -> set[int]:
    """The steps retention keeps: the last `keep_last`, the `best` (as `Checkpointer.best_step` picks it) and
    the `snapshots`."""
    latest = sorted(steps)[-keep_last:] if keep_last > 0 else []
    return set(latest) | ({best} if best is not None else set()) | set(snapshots)


def ensure_writable(directory: pathlib.Path, what: str, remedy: str) -> None:
    """Creates `directory` and a file in it (removed again), so that an unwritable place fails at once.

    Raises a `CheckpointError` naming the directory and the cause (read-only file system, permission
    denied, no space left), ending with `remedy` (e.g. "or use another --workdir").
    """
    probe = directory / f".write-probe-{jax.process_index()}-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as f:
            f.write(b"\0")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        message = f"cannot write {what} in {directory}: {_cause(err)} — make it writable {remedy}"
        raise CheckpointError(message) from None


_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_quiet_installed = False


def write_failure_cause(err: BaseException | None) -> str | None:
    """'No space left on device', 'Read-only file system', ... for a failed write; None if `err` is not one.

    Python raises an `OSError`; TensorStore (the array writes) a `ValueError` whose text ends with
    `[os_error_code='28']`. Exceptions chained to `err` are looked at too.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno:
            return os.strerror(err.errno)
        if match := _OS_ERROR_CODE.search(str(err)):
            return os.strerror(int(match.group(1)))
        err = err.__cause__ or err.__context__
    return None


def _cause(err: OSError) -> str:
    return os.strerror(err.errno) if err.errno else str(err)


def quiet_background_write_failures() -> None:
    """Keeps a failed background write to one report: the error that `wait()` raises.

    Orbax logs each failure of its writer threads, with its traceback, before handing it to the caller; and
    when one TensorStore write fails, the writes still running beside it later find the event loop that
    awaited them closed, and TensorStore reports each "Event loop is closed" via `sys.unraisablehook`.
    Both are dropped (every other log record and unraisable exception passes). Installed once per process.
    """
    global _quiet_installed
    if _quiet_installed:
        return
    _quiet_installed = True
    absl.logging.get_absl_logger().addFilter(  # absl's own logger (a plain "absl" Logger may shadow it)
        lambda record: not (record.exc_info and f"{os.sep}orbax{os.sep}" in record.pathname))
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook


def _unusable(step_dir: pathlib.Path, problem: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {step_dir} {problem}; it was left untouched — move it away or use "
                           "another --workdir")


def _file_count(directory: pathlib.Path) -> int:
    return sum(len(files) for _, _, files in os.walk(directory))  # os.walk skips what vanishes meanwhile


def _checksum(path: pathlib.Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()


def file_checksums(step_dir: pathlib.Path) -> dict[str, str]:
    """Every file of the saved items (Orbax may rewrite its own step-level metadata later)."""
    files = sorted(p for item in ITEMS for p in (step_dir / item).rglob("*") if p.is_file())
    return {str(p.relative_to(step_dir)): _checksum(p) for p in files}
