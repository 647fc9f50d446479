"""Shared behaviour of the entry scripts: user errors become one line on stderr and exit status 2, and
Ctrl-C (SIGINT) one line and exit status 130 instead of a KeyboardInterrupt traceback."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import signal
import sys
from typing import TYPE_CHECKING, Callable, NoReturn, Sequence

import absl.logging  # noqa: F401  (absl's own 'absl' logger must exist before main_guard configures it)

from cnnjax.errors import CnnjaxError

if TYPE_CHECKING:  # imported lazily: the entry scripts import this module before anything heavy
    import ml_collections


INTERRUPTED_STATUS = 128 + signal.SIGINT
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class UsageError(CnnjaxError):
    """Command-line arguments that do not parse (argparse's own errors, made one line like the rest)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (via `main_guard`) instead of the usage text plus the error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def nonempty_path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; name a directory")
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """--distributed and the explicit multi-process launch flags (train.py and eval.py share them)."""
    parser.add_argument("--distributed", action="store_true", help="multi-host: call jax.distributed.initialize()")
    parser.add_argument("--coordinator_address", metavar="HOST:PORT",
                        help="with --distributed: process 0's address (else detected from the cluster environment)")
    parser.add_argument("--num_processes", type=positive_int, metavar="N",
                        help="with --distributed: how many processes the job has")
    parser.add_argument("--process_id", type=int, metavar="I", help="with --distributed: this process's id, 0..N-1")


def resume_hint(argv: Sequence[str]) -> str:
    """How to continue a stopped run: the same command again (every entry script resumes)."""
    return f"resume with the same command: {shlex.join(['python', sys.argv[0], *argv])}"


def stopped_message(stop: signal.Signals, what: str, argv: Sequence[str]) -> str:
    """The line an entry script prints when SIGTERM/Ctrl-C stopped its run after saving (`what`)."""
    name = "Ctrl-C (SIGINT)" if stop == signal.SIGINT else signal.Signals(stop).name
    return f"interrupted by {name}: {what}; {resume_hint(argv)}"


def main_guard(main: Callable[[list[str]], int], argv: Sequence[str],
               on_interrupt: str = "interrupted (SIGINT); stopped") -> int:
    """Runs `main(argv)`; `on_interrupt` is the line printed when Ctrl-C interrupts it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src", "orbax"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Orbax reads run as asyncio tasks; when one read of a damaged checkpoint fails, its siblings' failures
    # are logged as "Task exception was never retrieved" although the first one is already reported.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # ignored by whoever started us: stays so
        # Exit at once rather than raise KeyboardInterrupt, which Python swallows where it lands in a garbage
        # collection callback or a __del__ (JAX has both): the program would go on. The training loop replaces
        # this handler by its own while it runs (Ctrl-C there saves the current step first).
        signal.signal(signal.SIGINT, lambda *_: _exit_with_one_line(on_interrupt, status=INTERRUPTED_STATUS))
    try:
        status = main(list(argv))
        # Done: a Ctrl-C during interpreter shutdown (JAX/Orbax threads ending) must not turn a finished
        # run into a death by SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return status
    except (CnnjaxError, FileNotFoundError) as err:
        _exit_with_one_line(f"error: {err}", status=2)
    except OSError as err:  # a full disk or read-only file system under metrics, plots, ... (not a bug)
        if err.errno not in STORAGE_ERRNOS:
            raise
        _exit_with_one_line(f"error: {err}", status=2)
    except KeyboardInterrupt:  # a second Ctrl-C while the training loop stops
        _exit_with_one_line(on_interrupt, status=INTERRUPTED_STATUS)


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


def config_overrides(parser: argparse.ArgumentParser, rest: Sequence[str]) -> list[str]:
    """The `--config.key=value` flags left over by `parser.parse_known_args`, as `key=value`; anything else
    left over is an unknown flag (`parser.error`: a one-line usage error)."""
    unknown = [item for item in rest if not item.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (overrides look like --config.key=value)")
    return [item.removeprefix("--config.") for item in rest]
