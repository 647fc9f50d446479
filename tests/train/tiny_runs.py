"""A training run of the library's loop in this process, from base_config() and a dict of settings: what the
tests that need a real workdir (checkpoints, stored statistics, metrics) start from."""

from __future__ import annotations

import pathlib
from typing import Any

from cnnjax.config import base_config
from cnnjax.train import loop


def train_run(workdir: pathlib.Path, settings: dict[str, Any]) -> pathlib.Path:
    config = base_config()
    for key, value in settings.items():
        config[key] = value
    loop.train_and_evaluate(config, workdir)
    return workdir
