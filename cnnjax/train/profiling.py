"""`config.profile_steps="START:STOP"`: a `jax.profiler` trace of the training steps [START, STOP).

The trace starts just before step START is dispatched and stops once step STOP-1 has finished on the devices
(the only synchronisation it adds: without it the trace would end before the steps it should show had run).
It is written to `<workdir>/profile/plugins/profile/<timestamp>/`, which TensorBoard's profile tab reads
(`tensorboard --logdir <workdir>/profile`, needs the `tensorboard-plugin-profile` package) and Perfetto opens
(the `*.trace.json.gz` file). A resumed run traces the part of the window still ahead of it.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax

from cnnjax.config import parse_profile_steps

log = logging.getLogger("cnnjax")
PROFILE_DIR = "profile"


class StepProfiler:
    """Starts and stops the trace around a window of steps; a no-op without one. Use as a context manager,
    so that a run stopped inside the window (signal, error) still closes and writes its trace."""

    def __init__(self, spec: str, workdir: pathlib.Path):
        self.window = parse_profile_steps(spec)
        self.directory = pathlib.Path(workdir) / PROFILE_DIR
        self.active = False

    def before_step(self, step: int) -> None:
        """Call with the index of the step about to be dispatched (0-based: the state's step count)."""
        if self.window and not self.active and self.window[0] <= step < self.window[1]:
            self.directory.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.directory))
            self.active = True
            log.info("profiling steps %d-%d into %s", step, self.window[1] - 1, self.directory)

    def after_step(self, step: int, outputs: Any) -> None:
        """Call after dispatching step `step` with its outputs; stops the trace after the window's last step."""
        if self.active and step + 1 >= self.window[1]:
            self.stop(outputs)

    def stop(self, outputs: Any = None) -> None:
        if not self.active:
            return
        self.active = False
        try:
            jax.block_until_ready(outputs)
        finally:
            jax.profiler.stop_trace()
            log.info("profile trace written to %s", self.directory)

    def __enter__(self) -> "StepProfiler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
