"""A run's preprocessing statistics, stored with its checkpoints so evaluation uses exactly the training ones.

Training derives them once (through the on-disk cache of `cnnjax.data.preprocess.cached`, kept in the TFDS
data dir beside the decoded splits: they are a function of the data, so every run, sweep point and ensemble
member that carves the same training examples shares one computation) and writes them to
`<workdir>/preprocess.npz`, atomically (temp file + rename). Evaluation (`eval.py --workdir`, the ensemble's
member inference, boosting's member scores) reads that file, so moving the data dir, or data files that
change, cannot change what a checkpoint is fed. A workdir from before the file existed (or whose file is
damaged: it carries a checksum) falls back to deriving them from the training split, as evaluation always did.
"""

from __future__ import annotations

import logging
import pathlib

import jax
import ml_collections

from cnnjax.data import preprocess
from cnnjax.data.sources import resolve_data_dir
from cnnjax.data.types import Split

log = logging.getLogger("cnnjax")
FILE = "preprocess.npz"
CACHE_DIR = "cnnjax-preprocess"


def kind_of(config: ml_collections.ConfigDict) -> str:
    return config.get("preprocess", "standardize")  # runs older than the key standardised


def cache_dir(config: ml_collections.ConfigDict) -> pathlib.Path:
    """Where statistics are cached: `<data_dir>/cnnjax-preprocess/<dataset>`."""
    return pathlib.Path(resolve_data_dir(config.data_dir)) / CACHE_DIR / config.dataset


def derive(config: ml_collections.ConfigDict, train: Split) -> preprocess.Statistics:
    """The statistics of the run's (carved, unresampled) training examples, from the cache when possible."""
    return preprocess.cached(kind_of(config), train.images, cache_dir(config))


def stored(workdir: str | pathlib.Path) -> preprocess.Statistics | None:
    """The statistics saved with a workdir's checkpoints; None for an older (or damaged, warned) one."""
    return preprocess.load(pathlib.Path(workdir) / FILE)


def for_training(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                 train: Split) -> preprocess.Statistics:
    """What a (resumed) run normalises with: its stored statistics, else derived now and stored."""
    found = stored(workdir)
    if found is not None and found.kind == kind_of(config):
        return found
    stats = derive(config, train)
    if jax.process_index() == 0:  # the processes share the workdir
        preprocess.save(pathlib.Path(workdir) / FILE, stats, preprocess.digest(stats.kind, train.images))
    return stats


def for_evaluation(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                   train: Split) -> preprocess.Statistics:
    """What a workdir's checkpoints are scored with: the stored statistics, else (older runs) derived again."""
    found = stored(workdir)
    if found is not None:
        return found
    log.info("%s has no stored %s; deriving the %s statistics from its training examples", workdir, FILE,
             kind_of(config))
    return derive(config, train)
