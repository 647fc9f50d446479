"""Real file-system faults for tests: a read-only directory and a tiny tmpfs that fills up.

As root (CI), `read_only` bind-mounts a directory onto itself and remounts it read-only (EROFS), and
`tmpfs` mounts a size-limited tmpfs (ENOSPC); the mounts are always removed in a `finally`. Without root,
`read_only` falls back to `chmod 555` (EACCES, "Permission denied"), and the tests needing a tmpfs are
skipped; so is everything if mounting is not permitted (a container without CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import subprocess
from typing import Iterator

import pytest

IS_ROOT = os.geteuid() == 0


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {result.stderr.strip()}")


def _umount(directory: pathlib.Path) -> None:
    if subprocess.run(["umount", str(directory)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=30)  # busy: detach it


@contextlib.contextmanager
def read_only(directory: pathlib.Path) -> Iterator[str]:
    """Makes `directory` (created if missing) unwritable; yields the cause a write there fails with."""
    directory.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT:
        directory.chmod(0o555)
        try:
            yield os.strerror(errno.EACCES)  # "Permission denied"
        finally:
            directory.chmod(0o755)
        return
    try:
        _mount("--bind", str(directory), str(directory))
    except OSError as err:
        pytest.skip(f"cannot bind-mount here ({err}); as root, chmod does not stop writes")
    try:
        _mount("-o", "remount,bind,ro", str(directory))
        yield os.strerror(errno.EROFS)  # "Read-only file system"
    finally:
        _umount(directory)


@contextlib.contextmanager
def tmpfs(directory: pathlib.Path, size: str) -> Iterator[pathlib.Path]:
    """A tmpfs of `size` (e.g. "3m") mounted on `directory` (created if missing), unmounted afterwards."""
    if not IS_ROOT:
        pytest.skip("mounting a small tmpfs (a real full disk) needs root")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    except OSError as err:
        pytest.skip(f"cannot mount a tmpfs here ({err})")
    try:
        yield directory
    finally:
        _umount(directory)
