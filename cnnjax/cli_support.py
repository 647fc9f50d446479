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
    try:
        return main(list(argv))
    except (CnnjaxError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Exit at once: after a failed Orbax/TensorStore read, background callbacks hit a closed asyncio
        # loop during interpreter teardown and print tracebacks under the one-line error. Everything the
        # run wrote is already closed (checkpoint manager) or flushed line by line (metrics).
        os._exit(2)


def show_config(config: ml_collections.ConfigDict) -> int:
    print(config)
    return 0
