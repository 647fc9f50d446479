"""SIGTERM (preemption) and SIGINT (Ctrl-C) as a flag the training loop checks between steps, so the current
step is saved before the run stops instead of being lost to an exception in the middle of a step."""

from __future__ import annotations

import contextlib
import signal
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Set by the first stop signal; `signal` says which one."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    @property
    def stop(self) -> bool:
        return self.signal is not None


@contextlib.contextmanager
def stop_flag() -> Iterator[StopFlag]:
    """Installs the handlers for the duration (main thread only; elsewhere the flag is never set).

    A second SIGINT while stopping raises KeyboardInterrupt as usual (stop at once, without waiting for the
    save). A signal ignored by whoever started us (e.g. SIGINT for `train.py &` in a script) stays ignored.
    """
    flag = StopFlag()

    def handler(signum: int, frame: Any) -> None:
        if flag.stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signal = flag.signal or signal.Signals(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS if signal.getsignal(s) != signal.SIG_IGN}
    except ValueError:  # not the main thread: no handler
        yield flag
        return
    try:
        yield flag
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
