"""One training run per workdir: an exclusive `flock` on `<workdir>/.lock`, held for the run's whole life.

Two trainers on one workdir would interleave their checkpoints, metrics and retention deletes, and each
would then mistake the other's half-written or rotated-away checkpoints for damage. The lock is an
advisory `fcntl.flock`, so the kernel releases it when the holder's process ends, however it ends
(SIGKILL included): a lock is never stale and nothing needs cleaning up. The file itself only says who
holds it (pid, host, start time, command), so that a refused trainer can name the holder; its content
may outlive the holder, the lock is what counts.

Multi-host runs (`train.py --distributed`, several processes sharing one workdir) take it in process 0
only: the other processes of the same job are expected to share the workdir with it. A second job on the
same workdir is refused in its process 0 (its other processes then fail when it leaves the job). Across
hosts the lock is only as good as the shared filesystem's support for it (Linux NFS maps `flock` to
byte-range locks), and deleting `.lock` under a running trainer defeats it.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
import sys
import time
from typing import Any, Iterator

from cnnjax.errors import CnnjaxError

LOCK_FILE = ".lock"


class WorkdirLockedError(CnnjaxError):
    """Another process holds the workdir's lock; nothing in the workdir was touched."""


def _refusal(workdir: pathlib.Path, path: pathlib.Path) -> WorkdirLockedError:
    """Names the holder from the lock file (read again briefly: the holder may be writing it right now)."""
    holder: dict[str, Any] = {}
    for _ in range(20):
        try:
            holder = json.loads(path.read_text())
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    if not holder:
        return WorkdirLockedError(f"{workdir} is in use by another training run (its details are not recorded "
                                  f"in {path}); wait for it to finish, or train in another --workdir")
    pid, host = holder.get("pid"), holder.get("host")
    return WorkdirLockedError(
        f"{workdir} is in use by another training run: pid {pid} on host {host}, started {holder.get('started')} "
        f"({' '.join(holder.get('command') or [])}); wait for it to finish, or stop it (`kill {pid}` on {host} "
        "saves its current step) and re-run to resume, or train in another --workdir")


@contextlib.contextmanager
def hold(workdir: str | pathlib.Path, enabled: bool = True) -> Iterator[pathlib.Path | None]:
    """Holds the exclusive lock of `workdir` (created if missing) inside the block; yields the lock file.

    Raises `WorkdirLockedError` at once, naming the holder, if another process holds it. With
    `enabled=False` (the non-chief processes of a multi-host run) it does nothing and yields None.
    """
    if not enabled:
        yield None
        return
    workdir = pathlib.Path(workdir)
    path = workdir / LOCK_FILE
    if workdir.exists() and not workdir.is_dir():
        raise CnnjaxError(f"cannot use {workdir} as a workdir: it is a file; choose another --workdir")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise CnnjaxError(f"cannot use {workdir} as a workdir: cannot create its lock file {path} "
                          f"({err.strerror or err}: {err.filename}); choose a writable --workdir") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CnnjaxError(f"cannot lock {path} ({err.strerror or err}); choose a --workdir on a "
                                  "filesystem that supports file locks") from None
            raise _refusal(workdir, path) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "command": [sys.executable, *sys.argv]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # free again; a later reader finds no holder (the lock decides anyway)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
