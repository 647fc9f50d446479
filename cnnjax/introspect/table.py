"""The one table formatter of the package, and the two tables built with it.

`format_table` aligns any rows as plain text or Markdown; `format_summary` (`cnnjax summary MODEL`) and
`format_zoo` (`cnnjax models`, `scripts/model_table.py`) choose the columns, so the console and the
README tables cannot diverge in number formatting.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from cnnjax.introspect.layers import Summary

ZOO_HEADER = ("model", "family", "params", "GMACs", "input (HxWxC)", "classes", "torchvision")
SUMMARY_HEADER = ("layer", "op", "output", "activations", "MB", "params", "MACs")


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Iterable[int] = (),
                 markdown: bool = False) -> str:
    """Aligned plain-text or Markdown table; columns in `right` are right-aligned (numbers)."""
    cells = [list(map(str, header))] + [[f"{c:,}" if isinstance(c, int) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = set(right)

    def line(r: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    if markdown:
        rule = "|" + "|".join("-" * (w + 1) + (":" if i in right else "-") for i, w in enumerate(widths)) + "|"
    else:
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def shape_text(shape: Sequence[int]) -> str:
    """`224x224x3`: how every table writes a shape."""
    return "x".join(map(str, shape))


def gmacs_text(macs: int) -> str:
    """MACs in billions to 3 decimals, the precision of torchvision's GFLOPS metadata."""
    return f"{macs / 1e9:.3f}"


def _macs_text(macs: int) -> str:
    return f"{gmacs_text(macs)} G" if macs >= 1e8 else f"{macs / 1e6:.3f} M"


def format_summary(summary: Summary) -> str:
    """The per-layer table with a title line and the totals (what `cnnjax summary MODEL` prints)."""
    table = format_table(
        SUMMARY_HEADER,
        [(r.path, r.op, shape_text(r.shape), r.activations,
          f"{r.bytes / 2**20:.2f}" if r.counted else r.kind, r.params, r.macs) for r in summary.rows],
        right=(3, 4, 5, 6))
    return "\n".join([
        f"{summary.name} on a {shape_text(summary.input_shape)} input, batch 1, eval mode",
        table,
        f"Total params: {summary.params:,}",
        f"Activations per image: {summary.activations:,} values = {summary.activation_mb:.2f} MB "
        "(input + outputs of layers that write a new tensor; elementwise layers in place)",
        f"MACs per image: {summary.macs:,} ({_macs_text(summary.macs)}; conv + dense only)",
    ])


def format_zoo(rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    """The model table of `cnnjax models` and the README from `zoo.zoo_rows`."""
    return format_table(ZOO_HEADER, rows, right=(2, 3, 5), markdown=markdown)
