"""Shared behaviour of the entry scripts: user errors become one line on stderr and exit status 2."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, Sequence

import ml_collections

from cnnjax.errors import CnnjaxError


def main_guard(main: Callable[[list[str]], int], argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src", "orbax"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Orbax reads run as asyncio tasks; when one read of a damaged checkpoint fails, its siblings' failures
    # are logged as "Task exception was never retrieved" although the first one is already reported.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return main(list(argv))
    except (CnnjaxError, FileNotFoundError) as err:
        _exit_with_one_line(f"error: {err}", status=2)


def _exit_with_one_line(message: str, status: int) -> None:
    """Print `message` as the last line of stderr and exit at once.

    After a failed Orbax/TensorStore read, sibling reads still running on Orbax's background event loop
    fail too, and TensorStore prints "Event loop is closed" tracebacks from its own C++ threads (not through
    any Python hook), racing the message. So stderr is pointed at /dev/null before the message is written
    to a private copy of it in one system call. Nothing is lost: the checkpoint manager is closed by then
    and metrics are flushed line by line.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    private_stderr = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    os.write(private_stderr, (message.replace("\n", " ") + "\n").encode())
    os._exit(status)


def show_config(config: ml_collections.ConfigDict) -> int:
    print(config)
    return 0
