"""What produced a run, saved beside its checkpoints: the resolved config, package versions, git commit.

On resume the saved config is compared with the new one; keys that change what a checkpoint means
(model, data, optimizer, ...) must match, so a workdir is never silently continued with another recipe.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import platform
import subprocess
from typing import Any

import jax
import ml_collections

from cnnjax.config import ConfigError, base_config

# Keys that may differ when resuming: they do not change what the saved state means. Not the ensemble-member
# keys (cv_folds, cv_fold, bootstrap_seed, train_sample_weights, num_cycles): they change what a run trains on.
RESUMABLE_KEYS = frozenset({"num_epochs", "log_every_steps", "progress_bar", "keep_checkpoints",
                            "checkpoint_every_steps", "eval_batch_size", "data_dir", "num_devices",
                            "init_from",  # init_from only shapes step 0; a resumed run ignores it
                            "profile_steps",  # observes steps; not the EMA keys: they change the saved state
                            # the streaming pipeline's worker processes: the batches do not depend on them
                            "stream.worker_count", "stream.prefetch", "stream.record_ids_to"})
PACKAGES = ("cnnjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=pathlib.Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return {"config": config.to_dict(), "packages": package_versions(), "git_commit": git_commit(),
            "python": platform.python_version(), "devices": [str(d) for d in jax.devices()],
            "platform": jax.default_backend()}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def check_compatible(saved: dict[str, Any], config: ml_collections.ConfigDict, path: pathlib.Path) -> None:
    new = _flat(_jsonable(config.to_dict()))
    old = _flat(with_defaults(saved["config"]))
    differing = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_KEYS and old.get(k) != new.get(k))
    if differing:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differing[:4])
        raise ConfigError(f"{path.parent} holds a run with another config ({details}); resume with the "
                          f"same config or use a new --workdir")


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested groups as dotted keys (`stream.worker_count`, `model_overrides.act`), compared one by one."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with the keys added since it was written, at their defaults (which keep the behaviour
    of the code that wrote it: a new key's default is always 'off')."""
    return {**_jsonable(base_config().to_dict()), **saved}


def read_record(path: pathlib.Path) -> dict[str, Any]:
    """run.json as a dict with its `config`; a damaged one is a one-line error (the checkpoints are unaffected)."""
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise ValueError("no 'config' object in it")
    except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise ConfigError(f"{path} is corrupt ({err}); it records the run's config: restore it from a copy, or "
                          "train in a new --workdir (the checkpoints were not touched)") from None
    return record


def save_or_check(workdir: pathlib.Path, config: ml_collections.ConfigDict, resuming: bool) -> None:
    """Writes run.json for a new run (process 0 of a multi-process job); when resuming checks the config
    against it (and keeps it)."""
    path = workdir / "run.json"
    if resuming and path.is_file():
        check_compatible(read_record(path), config, path)
        return
    record = _jsonable(collect(config))  # every process collects (it lists the devices of all of them) ...
    if jax.process_index() != 0:  # ... but only process 0 writes: the others share its workdir
        return
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


def load_config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
    """The config a workdir was trained with (for evaluation)."""
    path = pathlib.Path(workdir) / "run.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {workdir} a training workdir?")
    config = ml_collections.ConfigDict(with_defaults(read_record(path)["config"]))
    for key, value in config.items():  # JSON turns tuples into lists
        if isinstance(value, list):
            config[key] = tuple(value)
    return config
