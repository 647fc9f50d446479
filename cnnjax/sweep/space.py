"""The points of a hyperparameter sweep: `--grid key=v1,v2` axes, their cartesian product or a random sample.

A point is a tuple of `key=value` override strings, applied by `cnnjax.config.apply_override`, so a value
is parsed exactly as `--config.key=value` would be (and an unknown key fails the same way). Values are kept
as written: `learning_rate=1e-3` names its directory `lr-1e-3`, not `lr-0.001`. An axis may instead be a
range, `loguniform(low,high)` or `uniform(low,high)`, sampled with `--random N`; integer bounds give integers.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Sequence

import numpy as np

from cnnjax.errors import CnnjaxError

Point = tuple[str, ...]  # ("learning_rate=1e-3", "model_overrides.act=relu")
_RANGE = re.compile(r"^(?P<kind>loguniform|uniform)\((?P<low>[^,()]+),(?P<high>[^,()]+)\)$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
SLUG_CHARS = 40


class SweepError(CnnjaxError, ValueError):
    """A sweep specification that cannot be run as given."""


@dataclasses.dataclass(frozen=True)
class Range:
    """A continuous axis for `--random`: uniform, or uniform in log space; integer bounds sample integers."""

    kind: str  # "uniform" | "loguniform"
    low: float
    high: float
    integer: bool

    def sample(self, rng: np.random.Generator) -> str:
        if self.kind == "loguniform":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return str(int(round(value))) if self.integer else f"{value:.3g}"


@dataclasses.dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[str, ...] = ()  # a discrete axis
    range: Range | None = None  # or a continuous one

    def override(self, value: str) -> str:
        return f"{self.key}={value}"


def parse_axis(text: str) -> Axis:
    """`key=v1,v2,...` or `key=loguniform(low,high)`; commas inside brackets or quotes belong to a value."""
    key, sep, spec = text.strip().removeprefix("config.").partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key) or not spec.strip():
        raise SweepError(f"--grid {text!r} must look like key=value1,value2 (or key=loguniform(low,high))")
    found = _RANGE.match(spec.replace(" ", ""))
    if found:
        return Axis(key, range=_parse_range(text, found))
    values = tuple(v.strip() for v in split_values(spec))
    if any(not v for v in values):
        raise SweepError(f"--grid {text!r} has an empty value; separate values by single commas")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise SweepError(f"--grid {text!r} lists {repeated[0]!r} more than once; list each value once")
    return Axis(key, values)


def _parse_range(text: str, found: re.Match) -> Range:
    try:
        low, high = float(found["low"]), float(found["high"])
    except ValueError:
        raise SweepError(f"--grid {text!r}: the bounds of {found['kind']}(low,high) must be numbers") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SweepError(f"--grid {text!r}: {found['kind']}(low,high) needs finite low < high")
    if found["kind"] == "loguniform" and low <= 0:
        raise SweepError(f"--grid {text!r}: loguniform needs low > 0 (it samples log(value)); use uniform")
    integer = all(re.fullmatch(r"[+-]?\d+", found[b].strip()) for b in ("low", "high"))
    return Range(found["kind"], low, high, integer)


def split_values(spec: str) -> list[str]:
    """Splits on top-level commas: `(30,60),(10,20)` is two values."""
    values, depth, quote, current = [], 0, "", []
    for char in spec:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append("".join(current))
            current = []
            continue
        current.append(char)
    values.append("".join(current))
    return values


def parse_axes(texts: Sequence[str], fixed_keys: Sequence[str] = (), reserved: Sequence[str] = ()) -> list[Axis]:
    """The `--grid` axes; a key swept twice, swept and fixed, or set by the sweep itself is an error."""
    if not texts:
        raise SweepError("give at least one --grid key=value1,value2 to sweep over")
    axes = [parse_axis(t) for t in texts]
    seen: set[str] = set()
    for axis in axes:
        if axis.key in seen:
            raise SweepError(f"--grid {axis.key} is given twice; list all its values in one --grid")
        if axis.key in fixed_keys:
            raise SweepError(f"{axis.key} is both swept (--grid) and fixed (--config.{axis.key}); drop one")
        if axis.key in reserved:
            raise SweepError(f"{axis.key} is set by the sweep itself (--cv); do not --grid it")
        seen.add(axis.key)
    return axes


def grid_points(axes: Sequence[Axis]) -> list[Point]:
    """The cartesian product, first axis varying slowest (the order the flags were given)."""
    ranged = [a.key for a in axes if a.range is not None]
    if ranged:
        raise SweepError(f"--grid {ranged[0]} is a range: sample it with --random N, or list values instead")
    return [tuple(a.override(v) for a, v in zip(axes, values))
            for values in itertools.product(*(a.values for a in axes))]


def random_points(axes: Sequence[Axis], count: int, seed: int) -> list[Point]:
    """`count` points drawn with `seed`: distinct grid points when every axis is discrete, else each axis
    drawn independently (values from a list uniformly, ranges as declared)."""
    rng = np.random.default_rng(seed)
    if all(a.range is None for a in axes):
        grid = grid_points(axes)
        if count > len(grid):
            raise SweepError(f"--random {count} asks for more points than the grid's {len(grid)}; use at most "
                             f"{len(grid)}, or drop --random to run the whole grid")
        return [grid[i] for i in rng.choice(len(grid), size=count, replace=False)]
    return [tuple(a.override(a.range.sample(rng) if a.range else a.values[rng.integers(len(a.values))])
                  for a in axes) for _ in range(count)]


def slug(point: Point) -> str:
    """A short, shell-safe name: `learning_rate=1e-3, model_overrides.act=relu` -> `lr-1e-3_act-relu`."""
    parts = []
    for item in point:
        key, _, value = item.partition("=")
        leaf = key.rsplit(".", 1)[-1]
        short = "".join(w[0] for w in leaf.split("_") if w) if "_" in leaf else leaf
        parts.append(f"{short}-{re.sub(r'[^A-Za-z0-9.+-]', '', value)}")
    return "_".join(parts)[:SLUG_CHARS].rstrip("_-") or "point"


def point_name(index: int, point: Point) -> str:
    """The point's directory: its index (unique, keeps `ls` in sweep order) and its slug."""
    return f"{index:03d}-{slug(point)}"
