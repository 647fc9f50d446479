"""Process-level set-up: multi-host initialisation before any JAX computation."""

from __future__ import annotations

import jax

from cnnjax.errors import CnnjaxError


class LaunchError(CnnjaxError, ValueError):
    """Explicit multi-process launch flags that are incomplete or inconsistent."""


def initialize(distributed: bool = False, coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> None:
    """Joins the multi-host job.

    Without explicit launch settings the coordinator and the process count/id come from the cluster
    environment (SLURM, Open MPI, ...). With them (all three, e.g. 2 local processes on loopback) they are
    passed to `jax.distributed.initialize` as given. CPU collectives across processes use gloo.
    """
    explicit = check_launch(distributed, coordinator_address, num_processes, process_id)
    if not distributed:
        return
    if _cpu_backend_possible():
        # Cross-process collectives of the CPU client (the only client on a CPU-only host); without an
        # implementation XLA:CPU cannot run a computation that spans devices of several processes.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if explicit:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id)
    else:
        jax.distributed.initialize()


def check_launch(distributed: bool, coordinator_address: str | None, num_processes: int | None,
                 process_id: int | None) -> bool:
    """True if the launch is explicit (all three given), False if auto-detected (none); else a `LaunchError`."""
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    if not distributed:
        if any(v is not None for v in given.values()):
            raise LaunchError(f"--{next(k for k, v in given.items() if v is not None)} is only for multi-process "
                              "runs: add --distributed")
        return False
    missing = [k for k, v in given.items() if v is None]
    if len(missing) == len(given):
        return False
    if missing:
        present = [k for k in given if k not in missing]
        raise LaunchError(f"{', '.join('--' + k for k in present)} given without "
                          f"{', '.join('--' + k for k in missing)}: pass all three of --coordinator_address, "
                          "--num_processes and --process_id, or none (cluster auto-detection)")
    host, sep, port = coordinator_address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise LaunchError(f"--coordinator_address={coordinator_address!r} is not HOST:PORT "
                          "(e.g. 127.0.0.1:12345)")
    if num_processes < 1:
        raise LaunchError(f"--num_processes must be positive, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise LaunchError(f"--process_id={process_id} must be in 0..{num_processes - 1} "
                          f"(--num_processes={num_processes})")
    return True


def _cpu_backend_possible() -> bool:
    platforms = jax.config.jax_platforms
    return not platforms or "cpu" in platforms.split(",")
