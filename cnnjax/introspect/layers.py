"""Per-layer rows of a registered model: output shapes, activation memory, parameters and MACs.

The rows are read off one abstract trace of the eval forward at batch 1 (`trace.trace_forward` with
Flax's named scopes), so they cost no compilation and no memory even for VGG-16, and they see the
functional code between modules (pooling, flatten, concatenation, residual additions) as well as the
modules. Each leaf module call is a row; functional code in a parent module forms rows of chained
equations (e.g. `max_pool` followed by the `reshape` of a flatten is one row).

Activation memory follows the convention of the CS231n VGG-16 table (lecture seeds 002/003): the input
plus the output of every layer that writes a new tensor (convolution, pooling, fully connected, concat,
pad, ...); elementwise layers (activation, BatchNorm in eval, residual addition, dropout) are counted as
in place, as Caffe and torchvision's `ReLU(inplace=True)` run them, and reshapes are views. For VGG-16
that gives every row of the lecture's table (3.2M, 800K, ..., 4096, 1000), summing to 15,237,608 values =
58.1 MB per image; the lecture's "TOTAL 24M x 4 bytes ~ 93MB" does not follow from its own rows (a known
slip, cs231n/cs231n.github.io#88). MB here are 2**20 bytes at the traced dtype (float32: 4 bytes).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Sequence

import flax.linen as nn
from jax.extend import core as jcore

from cnnjax.introspect.macs import eqns_macs, forward_macs
from cnnjax.introspect.trace import input_array, registered_model, trace_forward, tree_size

# Primitives that compute each output element from the same position of their inputs: a layer made of
# only these (plus broadcasts of parameters) can overwrite its input.
ELEMENTWISE = frozenset("""
    abs add and atan2 ceil clamp convert_element_type copy cos div eq erf erf_inv erfc exp exp2 expm1 floor
    ge gt integer_pow is_finite le log log1p logistic lt max min mul ne neg not or pow rem round rsqrt
    select_n sign sin sqrt square stop_gradient sub tan tanh xor broadcast_in_dim reshape squeeze
    expand_dims
""".split())
VIEWS = frozenset({"reshape", "squeeze", "expand_dims"})
CALLS = frozenset({"jit", "pjit", "custom_jvp_call", "custom_vjp_call", "closed_call", "remat", "checkpoint"})


@dataclasses.dataclass(eq=False)  # rows are compared and hashed by identity
class Row:
    """One layer: a leaf module call, or a chain of functional equations in a parent module."""

    path: str
    op: str
    output: jcore.Var
    functional: bool = False
    eqns: list[jcore.JaxprEqn] = dataclasses.field(default_factory=list)
    params: int = 0
    kind: str = "write"  # "input" | "write" | "in-place" | "view"

    def append(self, eqn: jcore.JaxprEqn) -> None:
        self.eqns.append(eqn)
        self.output = eqn.outvars[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.output.aval.shape[1:])

    @property
    def activations(self) -> int:
        return math.prod(self.shape)

    @property
    def bytes(self) -> int:
        return self.activations * self.output.aval.dtype.itemsize

    @property
    def counted(self) -> bool:
        """Whether the row's output adds to activation memory (see the module docstring)."""
        return self.kind in ("input", "write")

    @property
    def macs(self) -> int:
        return eqns_macs(self.eqns)


@dataclasses.dataclass
class Summary:
    """The rows of one model with the totals of its whole forward pass."""

    name: str
    input_shape: tuple[int, int, int]
    rows: list[Row]
    params: int
    macs: int

    @property
    def activations(self) -> int:
        """Values per image under the in-place convention of the module docstring."""
        return sum(r.activations for r in self.rows if r.counted)

    @property
    def activation_mb(self) -> float:
        return sum(r.bytes for r in self.rows if r.counted) / 2**20


def _primitives(eqn: jcore.JaxprEqn) -> Iterable[str]:
    """Primitive names of an equation, looking inside call-like wrappers (jit, custom_jvp)."""
    if eqn.primitive.name in CALLS:
        for sub in jcore.jaxprs_in_params(eqn.params):
            for inner in sub.eqns:
                yield from _primitives(inner)
    else:
        yield eqn.primitive.name


def _label(eqns: Sequence[jcore.JaxprEqn]) -> str:
    """`max_pool+reshape`: the distinct operations of a functional row, jit names included."""
    names: list[str] = []
    for eqn in eqns:
        name = str(eqn.params.get("name", eqn.primitive.name)).strip("_")
        if name not in names and name not in ("convert_element_type", "broadcast_in_dim"):
            names.append(name)
    return "+".join(names)


def _classify(row: Row, producers: dict) -> str:
    """in-place: elementwise with an input of the output's shape; view: pure reshape; else write."""
    inputs = {v for e in row.eqns for v in e.invars
              if isinstance(v, jcore.Var) and producers.get(v, row) is not row}
    prims = {p for e in row.eqns for p in _primitives(e)}
    if prims <= VIEWS and any(math.prod(v.aval.shape) == math.prod(row.output.aval.shape) for v in inputs):
        return "view"
    if prims <= ELEMENTWISE and any(v.aval.shape == row.output.aval.shape for v in inputs):
        return "in-place"
    return "write"


def _scope(eqn: jcore.JaxprEqn) -> tuple[str, ...]:
    """Module path of an equation from its name stack: root class dropped, `.method` suffixes kept."""
    return tuple(str(eqn.source_info.name_stack).split("/")[1:]) if str(eqn.source_info.name_stack) else ()


def build_rows(eqns: Sequence[jcore.JaxprEqn], input_var: jcore.Var, module_types: dict) -> list[Row]:
    """Splits the forward equations into layer rows (see module docstring)."""
    scopes = {_scope(e) for e in eqns}
    parents = {s[:i] for s in scopes for i in range(len(s))}
    rows = [Row("input", "input", input_var, kind="input")]
    producers: dict = {input_var: rows[0]}
    for eqn in eqns:
        scope, row = _scope(eqn), rows[-1]
        functional = scope in parents  # code of a module that also calls submodules
        same = row.path == "/".join(scope) and row.functional == functional and row.kind != "input"
        if same and functional:  # chain onto the current row only if the equation extends its result
            same = {producers[v] for v in eqn.invars if isinstance(v, jcore.Var) and v in producers} == {row}
        if not same:
            op = "" if functional else _module_op(module_types.get(tuple(s.split(".")[0] for s in scope)))
            row = Row("/".join(scope), op, eqn.outvars[0], functional)
            rows.append(row)
        row.append(eqn)
        producers.update({v: row for v in eqn.outvars})
    for row in rows[1:]:
        if row.functional:
            row.op = f"({_label(row.eqns)})"
        row.kind = _classify(row, producers)
    return rows


def _module_op(module: nn.Module | None) -> str:
    """`Conv`, or `Activation(relu)` for modules whose `kind` field says what they compute."""
    if module is None:
        return "?"
    kind = getattr(module, "kind", None)
    return f"{type(module).__name__}({kind})" if isinstance(kind, str) else type(module).__name__


def _subtree_size(tree: Any, path: Sequence[str]) -> int:
    """Entries under `path` of a nested dict (0 if the path is absent: a module without params)."""
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return 0
        tree = tree[key]
    return tree_size(tree)


def summarize(name: str, input_size: int | None = None, num_classes: int | None = None,
              **overrides: Any) -> Summary:
    """Per-layer summary of registered model `name` at batch 1 (its registered input size by default)."""
    module, input_shape = registered_model(name, input_size, num_classes, **overrides)
    return summarize_module(module, input_shape, name=name)


def summarize_module(module: nn.Module, input_shape: tuple[int, int, int], name: str = "") -> Summary:
    """Per-layer summary of any module taking (batch, H, W, C) images and a `train` flag."""
    module_types: dict[tuple[str, ...], nn.Module] = {}

    def record(next_fun: Callable[..., Any], args: tuple, kwargs: dict, context: Any) -> Any:
        """Notes which module class runs at each path: the jaxpr only knows the path."""
        if context.method_name == "__call__":
            module_types.setdefault(tuple(context.module.path), context.module)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        trace = trace_forward(module, input_array(input_shape), named=True)
    rows = build_rows(trace.forward_eqns(), trace.input_var, module_types)
    params = trace.variables.get("params", {})
    assigned: set[str] = set()
    for row in rows:  # a module called twice owns its params once
        if not row.functional and row.kind != "input" and row.path not in assigned:
            assigned.add(row.path)
            row.params = _subtree_size(params, [s.split(".")[0] for s in row.path.split("/")])
    return Summary(name or type(module).__name__, input_shape, rows, trace.params, forward_macs(trace))
