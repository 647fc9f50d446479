"""A write that fails outside the checkpoints (metrics, plots, the lock, ...) on a full disk or a read-only
file system is one line on stderr and exit status 2, like a user error; other OS errors keep their traceback."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from cnnjax.metrics_log import MetricsWriter
from tests import fs_faults

_RAISE = """
import errno, sys
from cnnjax.cli_support import main_guard

def main(argv):
    raise OSError(getattr(errno, argv[0]), "as the file system said", "/some/file")

sys.exit(main_guard(main, sys.argv[1:]))
"""


def _raise_in_main_guard(name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _RAISE, name], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["ENOSPC", "EROFS", "EACCES"])
def test_a_storage_error_is_one_line(name):
    result = _raise_in_main_guard(name)
    assert result.returncode == 2
    code = getattr(errno, name)
    assert result.stderr.splitlines() == [f"error: [Errno {code}] as the file system said: '/some/file'"]


def test_another_os_error_keeps_its_traceback():
    result = _raise_in_main_guard("EBADF")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_a_failed_metrics_write_names_the_file(tmp_path):
    writer = MetricsWriter(tmp_path)
    try:
        with fs_faults.read_only(tmp_path) as cause:
            with pytest.raises(OSError) as failed:
                writer.write(1, 0.1, "train", {"loss": 1.0})
        assert str(failed.value).endswith(f"{cause}: writing {tmp_path / 'metrics.jsonl'}")
    finally:
        writer.close()
