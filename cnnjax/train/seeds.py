"""`train.py --seeds N`: N ensemble members, one ordinary workdir each, under a group directory.

Member k trains in `<group>/seed<k>` with `seed = base seed + k` (and, when bagging, `bootstrap_seed =
base + k`), so a deep ensemble or a bagged one is one command; `--seed_index K` trains only member K (one
task of a cluster array job). Each member resumes like any workdir, so re-running the command continues
an interrupted member and passes quickly over finished ones.

The group's `members.json` lists the finished members for the ensemble evaluator:
`{"kind": "seeds", "members": [{"workdir": "seed0", "seed": 0, "bootstrap_seed": -1}, ...]}`. It is
rewritten atomically (temporary file + rename) under an flock on `members.json.lock`, so array tasks
finishing at the same time do not lose each other's entries.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any, Callable

import ml_collections

from cnnjax import groups
from cnnjax.errors import CnnjaxError

log = logging.getLogger("cnnjax")
KIND = "seeds"


class SeedsError(CnnjaxError, ValueError):
    """--seeds / --seed_index that cannot be used as given, or a group directory that is not one."""


@dataclasses.dataclass(frozen=True)
class Member:
    index: int
    workdir: pathlib.Path
    config: ml_collections.ConfigDict

    def entry(self) -> dict[str, Any]:
        """Its line in members.json (the workdir relative to the group, so the group can be moved)."""
        return {"workdir": self.workdir.name, "seed": self.config.seed, "bootstrap_seed": self.config.bootstrap_seed}


@dataclasses.dataclass(frozen=True)
class MemberRun:
    member: Member
    result: Any  # loop.RunResult; `result.preempted` means the launcher stopped there


def member_indices(num: int, index: int | None) -> list[int]:
    """The members this invocation trains: all N, or only `index`."""
    if num < 1:
        raise SeedsError(f"--seeds must be positive, got {num}")
    if index is None:
        return list(range(num))
    if not 0 <= index < num:
        raise SeedsError(f"--seed_index {index} is out of range: --seeds {num} has members 0..{num - 1}")
    return [index]


def member(config: ml_collections.ConfigDict, group: pathlib.Path, index: int) -> Member:
    """Member `index`: the config with its seed (and bootstrap seed, when bagging) offset by `index`."""
    own = config.copy_and_resolve_references()
    own.seed = config.seed + index
    if config.bootstrap_seed >= 0:
        own.bootstrap_seed = config.bootstrap_seed + index
    return Member(index, group / f"seed{index}", own)


def train_members(config: ml_collections.ConfigDict, group: str | pathlib.Path, num: int, index: int | None = None,
                  train: Callable[[ml_collections.ConfigDict, pathlib.Path], Any] | None = None) -> list[MemberRun]:
    """Trains the members in turn (each resumed if it has checkpoints), recording each finished one in
    members.json; stops after a member that was interrupted (SIGTERM/Ctrl-C: its step saved)."""
    import jax  # here, not at the top: train.py checks --seed_index with this module before importing JAX

    if train is None:
        from cnnjax.train.loop import train_and_evaluate as train
    group = pathlib.Path(group)
    indices = member_indices(num, index)
    groups.check_group_dir(group)
    runs = []
    for k in indices:
        one = member(config, group, k)
        log.info("ensemble member %d of %d: %s (seed %d, bootstrap_seed %d)", k, num, one.workdir,
                 one.config.seed, one.config.bootstrap_seed)
        result = train(one.config, one.workdir)
        runs.append(MemberRun(one, result))
        if result.preempted:
            break
        if jax.process_index() == 0:
            record(group, one)
    return runs


def record(group: pathlib.Path, one: Member) -> None:
    """Adds (or refreshes) `one` in the group's members.json, atomically and under the group's lock."""
    with groups.locked(group):
        listing = read_members(group)
        others = [m for m in listing["members"] if m.get("workdir") != one.workdir.name]
        listing["members"] = sorted([*others, one.entry()], key=lambda m: _index_of(m["workdir"]))
        groups.write_json_atomic(group / groups.MEMBERS_FILE, listing)


def read_members(group: str | pathlib.Path) -> dict[str, Any]:
    """The group's members.json (an empty listing if there is none yet)."""
    path = pathlib.Path(group) / groups.MEMBERS_FILE
    if not path.is_file():
        return {"kind": KIND, "members": []}
    remedy = "delete it and re-run the command: it is rebuilt from the finished members (their workdirs are intact)"
    listing = groups.read_json(path, remedy)
    if listing.get("kind") != KIND or not isinstance(listing.get("members"), list):
        raise SeedsError(f"{path} is not a {KIND!r} listing (kind {listing.get('kind')!r}): {group} holds another "
                         "kind of group; use a new --workdir")
    return listing


def _index_of(workdir: str) -> int:
    digits = workdir.removeprefix("seed")
    return int(digits) if digits.isdigit() else -1
