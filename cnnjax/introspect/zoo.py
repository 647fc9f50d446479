"""The zoo table: params and MACs of every registered model, from one abstract trace each.

Shared by `cnnjax models` and `scripts/model_table.py`, so the README's table is the console's table.
"""

from __future__ import annotations

from typing import Callable

from cnnjax.introspect.macs import forward_macs
from cnnjax.introspect.table import format_zoo, gmacs_text, shape_text
from cnnjax.introspect.trace import input_array, trace_forward
from cnnjax.models import create_model, list_models, model_info

Progress = Callable[[int, int, str], None]  # (index, total, model name) before each trace


def zoo_rows(pattern: str = "*", progress: Progress | None = None) -> list[tuple]:
    """(name, family, params, GMACs, input, classes, torchvision) per registered model matching `pattern`.

    A pattern without wildcards matches as a substring. Params and MACs come from one abstract trace
    per model at its registered input size (no compilation).
    """
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    rows = []
    names = list_models(pattern)
    for i, name in enumerate(names):
        if progress:
            progress(i, len(names), name)
        info = model_info(name)
        trace = trace_forward(create_model(name), input_array(info.input_shape))
        rows.append((name, info.family, trace.params, gmacs_text(forward_macs(trace)),
                     shape_text(info.input_shape), info.num_classes, info.torchvision or "-"))
    return rows


def model_table(pattern: str = "*", markdown: bool = False, progress: Progress | None = None) -> str | None:
    """The zoo as a table (None if nothing matches); `scripts/model_table.py` writes it for the README."""
    rows = zoo_rows(pattern, progress)
    return format_zoo(rows, markdown) if rows else None
