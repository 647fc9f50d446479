"""Every member's logits on the fit and report splits, computed once and cached in the member's workdir.

A cache file `<workdir>/predictions/step<S>_<split>_<key>.npz` is keyed by a digest of what determines
the logits: the checkpoint's content (the digest of its file checksums, so a changed or re-trained step
never reuses stale logits), the split's examples and labels, the preprocessing statistics (those stored with
the member's checkpoints, `train.run_statistics`), the dtype, the model and the test-time view. It is
written to a temporary name and renamed, so an interrupted run never leaves a half-written file, and one
that does not match its key is recomputed. An unwritable workdir only costs the cache (a warning), not the
evaluation.

Before any inference, the members must agree on the data: the same label space and the very same fit
and report examples (digests of the images and labels, not config text), so a member trained with
another validation carve-out or on another dataset is named in a one-line error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from cnnjax import sharding
from cnnjax.config import has_validation
from cnnjax.data import preprocess
from cnnjax.data.pipeline import replicate
from cnnjax.data.stream import inputs as stream_inputs
from cnnjax.data.types import uses_stream
from cnnjax.data.sources import DatasetMeta, Split
from cnnjax.ensemble import inference
from cnnjax.ensemble.members import Member, MemberError
from cnnjax.evaluate.exact import predict_logits
from cnnjax.evaluate.restore import abstract_variables, restore_variables
from cnnjax.data.splits import load_for_config
from cnnjax.train import experiment, run_info, run_statistics
from cnnjax.train.checkpoint import CHECKSUMS, file_checksums, open_read_only

log = logging.getLogger("cnnjax")
CACHE_DIR = "predictions"
CACHE_VERSION = 2  # 2: keyed by the preprocessing statistics (not a per-channel mean/std)
VIEW = "full"  # the test-time view: the whole image as trained (multi-crop views get their own names)


@dataclasses.dataclass(frozen=True)
class MemberData:
    """A member with what its inference needs: its run config, dataset meta, splits and statistics."""

    member: Member
    config: ml_collections.ConfigDict
    meta: DatasetMeta
    splits: dict[str, Split]
    stats: preprocess.Statistics  # its preprocessing, as stored with its checkpoints
    digests: dict[str, str]  # split -> digest of its images and labels
    stream: Any = None  # the run's `StreamInputs` when it streamed its data (read from disk batch by batch)


@dataclasses.dataclass(frozen=True)
class Predictions:
    logits: dict[str, np.ndarray]  # split -> (members, N, classes) float32
    labels: dict[str, np.ndarray]  # split -> (N,)
    meta: DatasetMeta
    cached: int  # member-splits read from the cache
    computed: int  # member-splits computed now
    seconds: float


def load_member_data(members: list[Member], split_names: tuple[str, ...]) -> list[MemberData]:
    """Configs and splits of every member (each distinct data setup read once), checked to agree."""
    loaded: dict[str, tuple] = {}
    result = []
    for member in members:
        config = run_info.load_config(member.workdir)
        if "validation" in split_names and not has_validation(config):
            raise MemberError(f"member {member.name} was trained with validation_size=0, so it has no validation "
                              "split to fit combiners on; use --fit_split train, or drop it")
        key = json.dumps({k: config.get(k) for k in (*_DATA_KEYS, "input_pipeline", "stream")}, sort_keys=True,
                         default=str)
        if key not in loaded:
            loaded[key] = _streamed_data(config, split_names) if uses_stream(config) else \
                _in_memory_data(config, split_names)
        meta, splits, digests, inputs, train = loaded[key]
        stats = preprocess.standardized(inputs.mean, inputs.std) if inputs is not None else \
            run_statistics.for_evaluation(config, member.workdir, train)
        result.append(MemberData(member, config, meta, splits, stats, digests, inputs))
    _check_agree(result)
    return result


def _in_memory_data(config: ml_collections.ConfigDict, split_names: tuple[str, ...]) -> tuple:
    """(meta, splits, digests, None, the carved training examples: what an older member's statistics are
    derived from) of an in-memory run, loaded once."""
    data = load_for_config(config, with_test="test" in split_names, resample=False)
    splits = {name: data.split(name) for name in split_names}
    return data.meta, splits, {name: _digest(s) for name, s in splits.items()}, None, data.train


def _streamed_data(config: ml_collections.ConfigDict, split_names: tuple[str, ...]) -> tuple:
    """A streamed run's splits, read as its validation read them; digested (and labelled) in one pass over
    the stored examples (encoded bytes: for ImageNet's validation split, 6.4 GB read once)."""
    inputs = stream_inputs.build(config)
    splits = {name: inputs.eval_split(name) for name in split_names}
    return inputs.meta, splits, {n: _stream_digest(s) for n, s in splits.items()}, inputs, None


def _stream_digest(split: Any) -> str:
    """Digest of a streamed split's stored examples and labels; fills `split.labels` on the way."""
    h = hashlib.sha256()
    for i in range(len(split)):
        example = split.source[i]
        image = example["image"]
        h.update(image if isinstance(image, bytes) else np.ascontiguousarray(image).tobytes())
        split.labels[i] = example["label"]
    h.update(split.labels.astype(np.int64).tobytes())
    return h.hexdigest()


# Config keys that decide which examples a split holds and the statistics that normalise them.
_DATA_KEYS = ("dataset", "data_dir", "validation_size", "validation_seed", "num_train_examples", "cv_folds",
              "cv_fold", "bootstrap_seed", "train_sample_weights", "class_counts", "train_classes", "class_subset",
              "labels_per_class")


def _digest(split: Split) -> str:
    h = hashlib.sha256()
    for array in (split.images, split.labels.astype(np.int64)):
        h.update(str(array.shape).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _check_agree(data: list[MemberData]) -> None:
    first = data[0]
    for other in data[1:]:
        if other.meta.class_names != first.meta.class_names:
            raise MemberError(f"member {other.member.name} has another label space ({other.config.dataset}, "
                              f"{other.meta.num_classes} classes) than {first.member.name} ({first.config.dataset}, "
                              f"{first.meta.num_classes}); ensemble members must classify the same classes")
        for split, digest in first.digests.items():
            if other.digests[split] != digest:
                raise MemberError(f"member {other.member.name} has other {split} examples than {first.member.name} "
                                  f"({_differences(other.config, first.config)}); members must share the dataset, "
                                  "the validation carve-out and the test split")


def _differences(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict) -> str:
    """The data keys in which two members' configs differ (or, if none, that the data on disk differ)."""
    keys = [k for k in _DATA_KEYS if config.get(k) != reference.get(k)]
    if not keys:
        return "same data settings, so the dataset files they read differ"
    return ", ".join(f"{k}={config.get(k)!r} vs {reference.get(k)!r}" for k in keys)


def cache_key(data: MemberData, split: str) -> str:
    """Digest of everything the member's logits on `split` depend on."""
    step_dir = data.member.workdir.absolute() / "checkpoints" / str(data.member.step)
    sums = step_dir / CHECKSUMS
    checksums = sums.read_bytes() if sums.is_file() else json.dumps(file_checksums(step_dir), sort_keys=True).encode()
    config = data.config
    fields = {"version": CACHE_VERSION, "checkpoint": hashlib.sha256(checksums).hexdigest(), "split": split,
              "data": data.digests[split], "preprocess": _stats_digest(data.stats), "dtype": config.dtype,
              "model": config.model, "model_overrides": dict(config.model_overrides), "view": _view(data)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _stats_digest(stats: preprocess.Statistics) -> str:
    h = hashlib.sha256(stats.kind.encode())
    for array in jax.tree.leaves(stats):
        h.update(np.ascontiguousarray(array, np.float64).tobytes())
    return h.hexdigest()


def _view(data: MemberData) -> str:
    """The test-time view: the whole image, or a streamed run's evaluation crops."""
    if data.stream is None:
        return VIEW
    crops = data.stream.crops
    return f"resize{crops.resize_size}-crop{crops.crop_size}{'-10crop' if crops.ten_crop else ''}"


def cache_path(data: MemberData, split: str, key: str) -> pathlib.Path:
    return data.member.workdir / CACHE_DIR / f"step{data.member.step}_{split}_{key[:20]}.npz"


def _read_cache(path: pathlib.Path, key: str, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        with np.load(path) as saved:
            if str(saved["key"]) == key and saved["logits"].shape == shape:
                return saved["logits"]
    except FileNotFoundError:
        return None
    except Exception as err:  # a damaged file is recomputed and replaced
        log.warning("ignoring the damaged predictions cache %s (%s)", path, err)
    return None


def _write_cache(path: pathlib.Path, key: str, logits: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        with tmp.open("wb") as f:
            np.savez(f, logits=logits, key=np.asarray(key))
        tmp.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        log.warning("predictions not cached in %s (%s: %s); they will be computed again next time",
                    path.parent, err.strerror or err, err.filename or path)


def member_predictions(data: list[MemberData], split_names: tuple[str, ...], batch_size: int | None = None,
                       use_cache: bool = True, group_size: int = 8, vectorize: bool = False) -> Predictions:
    """(members, N, classes) logits per split, from the cache where valid, else by grouped inference
    (`vectorize`: members vmapped rather than run one after the other in the group's program)."""
    start = time.perf_counter()
    num_classes = data[0].meta.num_classes
    logits: dict[str, list] = {split: [None] * len(data) for split in split_names}
    keys = {(i, split): cache_key(d, split) for i, d in enumerate(data) for split in split_names}
    cached = 0
    if use_cache:
        for (i, split), key in keys.items():
            shape = (len(data[i].splits[split]), num_classes)
            if (found := _read_cache(cache_path(data[i], split, key), key, shape)) is not None:
                logits[split][i], cached = found, cached + 1
    missing = sorted({i for (i, split) in keys if logits[split][i] is None})
    if missing:
        mesh = sharding.make_mesh()
        batch = batch_size or max(d.config.eval_batch_size for d in data)
        streamed = [i for i in missing if data[i].stream is not None]
        in_memory = [i for i in missing if data[i].stream is None]
        device_splits = {split: replicate(data[in_memory[0]].splits[split], mesh) for split in split_names} \
            if in_memory else {}
        work = [([i], lambda i=i: [_infer_streamed(data[i], split_names, batch, mesh)]) for i in streamed]
        work += [(group, lambda group=group: _infer_group([data[i] for i in group], device_splits, batch, mesh,
                                                          vectorize))
                 for group in _groups([data[i] for i in in_memory], in_memory, group_size)]
        for group, infer in work:
            for i, per_split in zip(group, infer()):
                for split, values in per_split.items():
                    if logits[split][i] is None:
                        logits[split][i] = values
                        if use_cache and jax.process_index() == 0:  # the processes share the workdir
                            _write_cache(cache_path(data[i], split, keys[i, split]), keys[i, split], values)
    first = data[0]
    return Predictions({split: np.stack(logits[split]) for split in split_names},
                       {split: first.splits[split].labels for split in split_names}, first.meta, cached,
                       len(keys) - cached, time.perf_counter() - start)


def architecture(data: MemberData) -> str:
    """Members with equal architecture strings (and preprocessing kind: their statistics stack) run in one
    vmapped program."""
    c = data.config
    return json.dumps([c.model, dict(c.model_overrides), c.dtype, c.bn_sync, data.meta.image_shape,
                       data.meta.num_classes, data.stats.kind], sort_keys=True, default=str)


def _groups(data: list[MemberData], index: list[int], size: int) -> list[list[int]]:
    by_arch: dict[str, list[int]] = {}
    for d, i in zip(data, index):
        by_arch.setdefault(architecture(d), []).append(i)
    return [ids[k:k + size] for ids in by_arch.values() for k in range(0, len(ids), max(1, size))]


def _infer_streamed(data: MemberData, split_names: tuple[str, ...], batch_size: int, mesh) -> dict:
    """A streamed member's logits: its splits read, cropped and scored batch by batch (every host its share)."""
    net = experiment.build_model(data.config, data.meta.num_classes, data.meta.image_shape)
    with open_read_only(data.member.workdir) as ckpt:
        variables = restore_variables(ckpt, data.member.step, abstract_variables(net, data.meta.image_shape, mesh))[0]
    predict_fn = data.stream.predict_fn(net, mesh, experiment.DTYPES[data.config.dtype])
    return {split: predict_logits(predict_fn, variables, data.splits[split], batch_size, mesh)
            for split in split_names}


def _infer_group(group: list[MemberData], device_splits: dict[str, Any], batch_size: int, mesh,
                 vectorize: bool) -> list[dict]:
    """Restores each member's variables and runs the group's stacked forward on every split."""
    first = group[0]
    net = experiment.build_model(first.config, first.meta.num_classes, first.meta.image_shape)
    target = abstract_variables(net, first.meta.image_shape, mesh)
    variables = []
    for d in group:
        with open_read_only(d.member.workdir) as ckpt:
            variables.append(restore_variables(ckpt, d.member.step, target)[0])
    stacked = inference.stack_members(variables, [d.stats for d in group], mesh)
    predict_fn = inference.stacked_predict_fn(net, mesh, experiment.DTYPES[first.config.dtype], vectorize)
    out: list[dict] = [{} for _ in group]
    for split, device_split in device_splits.items():
        values = inference.group_logits(predict_fn, stacked, device_split, batch_size, mesh)
        for member_out, member_values in zip(out, values):
            member_out[split] = member_values
    log.info("inferred %d member(s) of %s on %s", len(group), first.config.model, ", ".join(device_splits))
    return out
