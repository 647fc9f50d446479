"""SIGTERM (preemption) and SIGINT (Ctrl-C) as a flag the training loop checks between steps, so the current
step is saved before the run stops instead of being lost to an exception in the middle of a step.

In a multi-process job every process must stop after the same step: a process that saves and leaves while
another runs one more step would leave that one waiting forever in the step's collectives. There SIGTERM
is left to JAX's preemption service (`jax.distributed` installs its notifier): a notice to any process is
propagated to all, which agree on the step to stop after (`multihost_utils.reached_preemption_sync_point`,
asked at every step). Ctrl-C in a multi-process job is not agreed on, so it is left to the entry script,
which exits at once without saving (preempt with SIGTERM to save).
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Set by the first stop signal; `signal` says which one."""

    def __init__(self, agreed: bool = False) -> None:
        self.signal: signal.Signals | None = None
        self.agreed = agreed  # a multi-process job: stop at the step the processes agree on

    @property
    def stop(self) -> bool:
        return self.signal is not None

    def check(self, step: int) -> bool:
        """Whether to stop after `step`; every process of a job must ask at every step (the same answer)."""
        if self.agreed and self.signal is None:
            from jax.experimental import multihost_utils

            if multihost_utils.reached_preemption_sync_point(step):
                self.signal = signal.SIGTERM
        return self.stop


@contextlib.contextmanager
def stop_flag() -> Iterator[StopFlag]:
    """Installs the handlers for the duration (main thread only; elsewhere the flag is never set).

    A second SIGINT while stopping raises KeyboardInterrupt as usual (stop at once, without waiting for the
    save). A signal ignored by whoever started us (e.g. SIGINT for `train.py &` in a script) stays ignored.
    """
    import jax

    flag = StopFlag(agreed=jax.process_count() > 1)
    if flag.agreed:  # SIGTERM belongs to JAX's preemption notifier; Ctrl-C to the entry script
        yield flag
        return

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
