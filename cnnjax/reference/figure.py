"""The "comparing complexity" figure (after Canziani et al. 2016): ImageNet top-1 against GMACs, marker area
proportional to the parameter count, published figures and ours on the same axes."""

from __future__ import annotations

import pathlib
from typing import Sequence

from cnnjax.plots import pyplot
from cnnjax.reference.report import Row

MARKER_AREA_PER_MILLION = 6.0  # points^2 per million parameters (VGG-19's 144M -> ~860)


def published_top1(row: Row) -> tuple[float, str] | None:
    """torchvision's single-crop top-1 where it exists (one protocol for all), else the paper's."""
    p = row.published
    if p is None:
        return None
    for acc, kind in ((p.torchvision, "torchvision"), (p.paper, "paper")):
        if acc is not None and acc.top1 is not None:
            return acc.top1, kind
    return None


def complexity_figure(rows: Sequence[Row], path: pathlib.Path) -> None:
    """Writes the PNG; only ImageNet models (the accuracies of other datasets are not comparable)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 6.5))
    imagenet = [r for r in rows if r.dataset == "imagenet2012"]
    styles = {"torchvision": dict(color="tab:blue", label="published, torchvision (single 224 crop)"),
              "paper": dict(color="tab:orange", label="published, paper (its own protocol)")}
    labelled: set[str] = set()
    for r in imagenet:
        point = published_top1(r)
        if point is None:
            continue
        top1, kind = point
        style = dict(styles[kind]) if kind not in labelled else {"color": styles[kind]["color"]}
        labelled.add(kind)
        ax.scatter(r.macs / 1e9, top1, s=MARKER_AREA_PER_MILLION * r.params / 1e6, alpha=0.45, **style)
        ax.annotate(r.model, (r.macs / 1e9, top1), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ours = [r for r in imagenet if r.ours is not None]
    for i, r in enumerate(ours):
        ax.scatter(r.macs / 1e9, r.ours.top1, s=MARKER_AREA_PER_MILLION * r.params / 1e6, facecolors="none",
                   edgecolors="tab:red", linewidths=2, label="ours (eval.py)" if i == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per image (log scale)")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title("Top-1 vs operations; marker area ∝ parameters (after Canziani et al. 2016)")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", markerscale=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
