"""The workdir lock in-process (flock conflicts between two opens of the file, even in one process);
train.py end to end is in test_train_script.py."""

import json
import os
import socket

import pytest

from cnnjax.errors import CnnjaxError
from cnnjax.train.workdir_lock import LOCK_FILE, WorkdirLockedError, hold


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    workdir = tmp_path / "run"
    with hold(workdir) as path:
        assert path == workdir / LOCK_FILE
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["command"]
        with pytest.raises(WorkdirLockedError) as refused:
            with hold(workdir):
                pytest.fail("two holders")
        message = str(refused.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in message and "another --workdir" in message
        assert "\n" not in message
    assert path.read_text() == ""  # released: no holder recorded
    with hold(workdir):
        pass


def test_a_workdir_that_cannot_hold_a_lock_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CnnjaxError, match="it is a file"):
        with hold(tmp_path / "file"):
            pass
    with pytest.raises(CnnjaxError, match=r"cannot create its lock file .*Not a directory"):
        with hold(tmp_path / "file" / "run"):
            pass


def test_non_chief_processes_take_no_lock(tmp_path):
    with hold(tmp_path / "run") as chief, hold(tmp_path / "run", enabled=False) as other:
        assert chief is not None and other is None
