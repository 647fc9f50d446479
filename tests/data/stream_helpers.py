"""A small in-memory RecordSource of PNG-encoded images of varied sizes (picklable: sent to grain workers)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


class MemorySource:
    """`num` examples: example i is a random RGB image of 20-40 px sides whose label is i % 7."""

    def __init__(self, num: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = [png(rng.integers(0, 256, (*rng.integers(20, 41, 2), 3), dtype=np.uint8)) for _ in range(num)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": index % 7}
