"""Group directories: several training workdirs plus a `members.json` naming them, written for ensembles.

`members.json` is `{"kind": "seeds" | "sweep" | "boost", "members": [{"workdir": <relative to the group>,
...}, ...], ...}`, best first where the writer ranks its members (`cnnjax.ensemble.members` reads it;
`group@topK` takes the first K). It is rewritten as a whole, through a temporary file and a rename under an
exclusive `flock`, so a reader never sees half a file and two writers never interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
from typing import Any, Iterator, Sequence

from cnnjax.errors import CnnjaxError

MEMBERS_FILE = "members.json"
LOCK_FILE = MEMBERS_FILE + ".lock"  # the lock file train.py --seeds (cnnjax.train.seeds) uses too
KINDS = ("seeds", "sweep", "boost")


class GroupError(CnnjaxError, ValueError):
    """A group description that cannot be written as given."""


def check_group_dir(path: str | pathlib.Path) -> None:
    """A group's members live in subdirectories of their own: a training workdir cannot also be a group."""
    if (pathlib.Path(path) / "run.json").is_file():
        raise GroupError(f"{path} is a training workdir; give the sweep/boost a directory of its own (a new "
                         "--workdir)")


def write_json_atomic(path: str | pathlib.Path, record: Any) -> pathlib.Path:
    """Writes `record` as JSON through a temporary file and a rename: readers see the old or the new file."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def read_json(path: str | pathlib.Path, remedy: str) -> dict[str, Any]:
    """A JSON object written by `write_json_atomic`; a damaged one is a one-line error saying `remedy`."""
    try:
        record = json.loads(pathlib.Path(path).read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        raise GroupError(f"{path} is corrupt ({err}); {remedy}") from None
    return record


def write_text_atomic(path: str | pathlib.Path, text: str) -> pathlib.Path:
    """Same for a report (Markdown, CSV): a killed run never leaves a truncated table."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


@contextlib.contextmanager
def locked(group_dir: str | pathlib.Path) -> Iterator[pathlib.Path]:
    """Holds the group's exclusive `flock` (released by the kernel however the process ends)."""
    group_dir = pathlib.Path(group_dir)
    group_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(group_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield group_dir
    finally:
        os.close(fd)  # closing releases the lock


def write_members(group_dir: str | pathlib.Path, kind: str, members: Sequence[dict[str, Any]],
                  **extra: Any) -> pathlib.Path:
    """Writes `<group_dir>/members.json` (members best first where ranked); returns its path."""
    if kind not in KINDS:
        raise GroupError(f"group kind {kind!r} is not one of {', '.join(KINDS)}")
    for member in members:
        workdir = pathlib.Path(str(member.get("workdir", "")))
        if not str(member.get("workdir", "")) or workdir.is_absolute() or ".." in workdir.parts:
            raise GroupError(f"member workdir {member.get('workdir')!r} must be a path inside the group directory")
    group_dir = pathlib.Path(group_dir)
    with locked(group_dir):
        return write_json_atomic(group_dir / MEMBERS_FILE, {"kind": kind, **extra, "members": list(members)})
