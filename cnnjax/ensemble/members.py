"""Which checkpoints an ensemble combines: member specs as a user writes them, resolved to (workdir, step).

A spec is
- `runs/a`: a training workdir, at its best checkpoint (validation top-1);
- `runs/a@1200`: that step; `runs/a@all`: every checkpoint the run kept; `runs/a@snapshots`: the cycle
  ends a `cyclic_cosine` run kept (a snapshot ensemble);
- `runs/ens` / `runs/sweep@top3`: a group directory written by `train.py --seeds`, `sweep.py` or
  `boost.py` (its `members.json` lists workdirs, best first where ranked): all of them, or the first K;
- any of these with glob patterns in the path (`'runs/seed*'`), expanded in sorted order.

Everything is resolved before any data is read or any inference runs, so a bad spec costs nothing and
is one line naming it. Steps are fixed here (the best one as it is now), so the predictions cache can be
keyed by the exact checkpoint.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import re

from cnnjax.errors import CnnjaxError
from cnnjax.groups import MEMBERS_FILE as GROUP_FILE, read_json
from cnnjax.train.checkpoint import CheckpointError, open_read_only

_SUFFIX = re.compile(r"^(?P<path>.+?)@(?P<what>all|snapshots|top\d+|\d+)$")


class MemberError(CnnjaxError, ValueError):
    """A member spec that names no usable checkpoint, or a member list that cannot form an ensemble."""


@dataclasses.dataclass(frozen=True)
class Member:
    name: str  # how reports call it: the workdir as given, with `@step` unless it is the best
    workdir: pathlib.Path
    step: int


def resolve(specs: list[str]) -> list[Member]:
    """The members of `specs`, in order; one-line `MemberError`/`CheckpointError` on the first bad one."""
    members: list[Member] = []
    for spec in specs:
        members += _resolve_one(spec)
    seen: dict[tuple[pathlib.Path, int], str] = {}
    for member in members:
        key = (member.workdir.resolve(), member.step)
        if key in seen:
            raise MemberError(f"{member.name} is listed twice (also as {seen[key]}); give each checkpoint once "
                              "(the greedy combiner can pick a member several times by itself)")
        seen[key] = member.name
    if len(members) < 2:
        only = members[0].name if members else "nothing"
        raise MemberError(f"an ensemble needs at least 2 members, the specs give {only}; add members, or score "
                          f"one checkpoint with eval.py --workdir")
    return members


def _resolve_one(spec: str) -> list[Member]:
    match = _SUFFIX.match(spec)
    path_text, what = (match["path"], match["what"]) if match else (spec, None)
    if glob.has_magic(path_text):
        paths = sorted(glob.glob(path_text))
        paths = [p for p in paths if _is_workdir(pathlib.Path(p)) or _is_group(pathlib.Path(p))]
        if not paths:
            raise MemberError(f"member pattern {spec!r} matches no training workdir; check the path (quote the "
                              "pattern so the shell does not expand it)")
    else:
        paths = [path_text]
    members: list[Member] = []
    for text in paths:
        members += _members_of(pathlib.Path(text), text, what, spec)
    return members


def _members_of(path: pathlib.Path, text: str, what: str | None, spec: str) -> list[Member]:
    if _is_group(path) and not _is_workdir(path):
        workdirs = _group_workdirs(path)
        if what is not None and what.startswith("top"):
            k = int(what[3:])
            if not 1 <= k <= len(workdirs):
                raise MemberError(f"member {spec!r}: {path} lists {len(workdirs)} members, so top1..top"
                                  f"{len(workdirs)}")
            workdirs = workdirs[:k]
        elif what is not None:
            raise MemberError(f"member {spec!r}: {path} is a group of runs; use {text} or {text}@topK "
                              "(@step, @all and @snapshots are for one training workdir)")
        return [m for w in workdirs for m in _members_of(w, os.path.join(text, w.relative_to(path)), None, spec)]
    if not path.exists():
        raise MemberError(f"member {spec!r}: {path} does not exist; give a training workdir (train.py --workdir)")
    if not _is_workdir(path):
        raise MemberError(f"member {spec!r}: {path} is not a training workdir (no run.json) nor a group of "
                          f"runs (no {GROUP_FILE})")
    if what is not None and what.startswith("top"):
        raise MemberError(f"member {spec!r}: @topK is for a group of runs ({GROUP_FILE}); {path} is one run — "
                          "use @all for its checkpoints")
    with open_read_only(path) as ckpt:
        if what is None:
            step = ckpt.best_step(skip_damaged=True)
            if step is None:
                raise CheckpointError(f"member {spec!r}: no checkpoint in {ckpt.directory} yet; train it first")
            return [Member(text, path, step)]
        if what in ("all", "snapshots"):
            steps = ckpt.steps_on_disk() if what == "all" else ckpt.snapshot_steps()
            if not steps:
                kind = "checkpoint" if what == "all" else "snapshot (schedule=cyclic_cosine keeps one per cycle)"
                raise CheckpointError(f"member {spec!r}: no {kind} in {ckpt.directory}")
            return [Member(f"{text}@{s}", path, s) for s in steps]
        ckpt.require(int(what))  # its message names the checkpoint directory and the steps available
        return [Member(f"{text}@{what}", path, int(what))]


def _is_workdir(path: pathlib.Path) -> bool:
    return (path / "run.json").is_file()


def _is_group(path: pathlib.Path) -> bool:
    return (path / GROUP_FILE).is_file()


def _group_workdirs(path: pathlib.Path) -> list[pathlib.Path]:
    """The workdirs a `members.json` lists, in its order (best first where the writer ranked them)."""
    file = path / GROUP_FILE
    record = read_json(file, "re-run the command that wrote it (it resumes) or list the member workdirs directly")
    try:
        workdirs = [path / entry["workdir"] for entry in record["members"]]
    except (KeyError, TypeError) as err:
        raise MemberError(f"{file} is corrupt ({type(err).__name__}: {err}); re-run the command that wrote it "
                          "(it resumes) or list the member workdirs directly") from None
    if not workdirs:
        raise MemberError(f"{file} lists no members yet; train them first")
    return workdirs
