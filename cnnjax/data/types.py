"""The data layer's value types and its error, below every module that reads or prepares datasets (sources,
image folders, records), so those can import each other's functions without an import cycle."""

from __future__ import annotations

import dataclasses

import numpy as np

from cnnjax.errors import CnnjaxError


class DatasetUnavailableError(CnnjaxError, RuntimeError):
    """The dataset is neither prepared locally nor obtainable here; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> "Split":
        return Split(self.images[index], self.labels[index])


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
    name: str
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int | None, int | None, int]  # (None, None, C): images of varying sizes (ImageNet)
    splits: dict[str, int]


SYNTHETIC = "synthetic"  # --config.dataset=synthetic: batches generated on the devices (cnnjax.data.stream.synthetic)


def uses_stream(config) -> bool:
    """Whether a run's batches come from the streaming pipeline or the synthetic dataset, not the in-memory one
    (a ConfigDict; keys older configs lack read as the in-memory default). Here, beside the data types, so the
    config checks and the data modules ask it without importing the streaming pipeline."""
    return config.get("input_pipeline", "memory") == "stream" or config.dataset == SYNTHETIC
