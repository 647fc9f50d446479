"""Training-curve and confusion-matrix PNGs (matplotlib, headless)."""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(records: Sequence[dict[str, Any]], out_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """loss.png, accuracy.png (train vs validation against epoch) and learning_rate.png."""
    plt = pyplot()
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, title, filename in (("loss", "loss", "loss.png"), ("top1", "top-1 accuracy", "accuracy.png"),
                                 ("lr", "learning rate", "learning_rate.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for split in ("train", "validation"):
            rows = [r for r in records if r["split"] == split and key in r]
            if rows:
                ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], label=split,
                        marker="o" if split == "validation" else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=100)
        plt.close(fig)
        written.append(out_dir / filename)
    return written


def confusion_matrix_png(matrix: np.ndarray, class_names: Sequence[str], path: str | pathlib.Path,
                         title: str = "") -> pathlib.Path:
    plt = pyplot()
    n = len(matrix)
    side = min(1 + 0.6 * n, 16)  # 1000 ImageNet classes must not make a 600-inch (24 GB) canvas
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    if n <= 30:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return pathlib.Path(path)
