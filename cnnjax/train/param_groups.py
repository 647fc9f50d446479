"""Parameters selected by name, for fine-tuning: `init_from_skip`, `freeze` and `lr_multipliers`.

A pattern is `|`-separated shell globs on a variable's path without its collection, e.g. "conv1/kernel"
or "layer1/block0/bn/scale" (`*` also crosses "/", so "layer1/*" is all of layer1); the word `head` stands
for the classifier head's module, whichever name the model gives it (`cnnjax.models.head`). A pattern
that matches nothing is an error naming the model's top-level modules: a typo must not silently train
every layer.

Freezing and learning-rate multipliers wrap the config's optimizer (optax.multi_transform): frozen
parameters get `set_to_zero` (and no optimizer state), each multiplier group's final update is scaled by
its factor, which equals scaling its learning rate for every optimizer here (all end with `-lr * u`).
A frozen pattern also keeps the BatchNorm running statistics it matches (see `train.step`).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Sequence

import jax
import optax

from cnnjax.errors import CnnjaxError
from cnnjax.models.head import head_path

Globs = tuple[str, ...]


class PatternError(CnnjaxError, ValueError):
    """A parameter pattern or multiplier list that cannot be used as given."""


def path_name(path: tuple[Any, ...]) -> str:
    """'fc/kernel' for a key path of a params (or batch_stats) tree."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def names(tree: Any) -> list[str]:
    return [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def globs(spec: str, head: str | None = None) -> Globs:
    """The globs of a `|`-separated pattern, `head` replaced by the head module's globs."""
    out = []
    for part in (p.strip() for p in spec.split("|")):
        if not part:
            continue
        if part == "head":
            if head is None:
                raise PatternError("'head' needs the model's head module; pass it to param_groups.globs")
            out.append(f"{head}/*")
        else:
            out.append(part)
    return tuple(out)


def matches(name: str, patterns: Globs) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def parse_multipliers(spec: str) -> list[tuple[str, float]]:
    """"layer4/*=1.0,fc/*=10" -> [("layer4/*", 1.0), ("fc/*", 10.0)]; the first matching group wins."""
    groups = []
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        pattern, sep, value = item.rpartition("=")
        try:
            factor = float(value)
        except ValueError:
            factor = None
        if not sep or not pattern.strip() or factor is None or factor < 0:
            raise PatternError(f"lr_multipliers item {item!r} must look like PATTERN=FACTOR with FACTOR >= 0, "
                               "e.g. 'layer4/*=1.0,fc/*=10'")
        groups.append((pattern.strip(), factor))
    return groups


def check(key: str, spec: str, params: Any, head: str | None) -> None:
    """Every alternative of `spec` matches at least one parameter, else a one-line `PatternError`."""
    available = names(params)
    for pattern in globs(spec, head):
        if not any(fnmatch.fnmatchcase(n, pattern) for n in available):
            top = sorted({n.split("/")[0] for n in available})
            raise PatternError(f"{key}: {pattern!r} matches no parameter; paths look like {available[0]!r}, "
                               f"top-level names: {', '.join(top)}")


def check_config(config: Any, model: Any, image_shape: tuple[int, ...], params: Any) -> None:
    """The fine-tuning keys of a config against the model's parameter tree (configs older than them pass)."""
    for key in ("init_from_skip", "freeze", "lr_multipliers"):
        if not isinstance(config.get(key, ""), str):
            raise PatternError(f"{key} must be a string pattern, got {config.get(key)!r}")
    head = head_path(model, image_shape) if needs_head(config) else None
    skip = config.get("init_from_skip", "shape")
    if skip not in ("shape", ""):
        if not config.get("init_from"):
            raise PatternError(f"init_from_skip={skip!r} re-initialises part of an init_from checkpoint: set "
                               "init_from too, or init_from_skip='shape'")
        check("init_from_skip", skip, params, head)
    check("freeze", config.get("freeze", ""), params, head)
    for pattern, _ in parse_multipliers(config.get("lr_multipliers", "")):
        check("lr_multipliers", pattern, params, head)


def needs_head(config: Any) -> bool:
    """Whether a pattern of the config names `head` (so the head module must be traced)."""
    specs = (config.get("init_from_skip", "shape"), config.get("freeze", ""),
             *(p for p, _ in parse_multipliers(config.get("lr_multipliers", ""))))
    return any("head" in (part.strip() for part in s.split("|")) for s in specs)


def labels(params: Any, frozen: Globs, multipliers: Sequence[tuple[Globs, float]]) -> Any:
    """A label per parameter: "frozen", "lr<i>" (the first multiplier group it matches) or "rest"."""
    def label(path: tuple[Any, ...], _: Any) -> str:
        name = path_name(path)
        if matches(name, frozen):
            return "frozen"
        for i, (patterns, _factor) in enumerate(multipliers):
            if matches(name, patterns):
                return f"lr{i}"
        return "rest"
    return jax.tree_util.tree_map_with_path(label, params)


def wrap_optimizer(tx: optax.GradientTransformation, frozen: Globs,
                   multipliers: Sequence[tuple[Globs, float]]) -> optax.GradientTransformation:
    """`tx` with frozen parameters' updates zeroed and each multiplier group's update scaled.

    Without either, `tx` itself is returned: the optimizer state (and so the checkpoint layout) is unchanged.
    """
    if not frozen and not multipliers:
        return tx
    label_fn = lambda params: labels(params, frozen, multipliers)
    train_labels = lambda params: jax.tree.map(lambda l: "frozen" if l == "frozen" else "train", label_fn(params))
    parts = [optax.multi_transform({"frozen": optax.set_to_zero(), "train": tx}, train_labels)]
    if multipliers:
        scales = {f"lr{i}": optax.scale(factor) for i, (_, factor) in enumerate(multipliers)}
        parts.append(optax.multi_transform({**scales, "rest": optax.identity(), "frozen": optax.identity()},
                                           label_fn))
    return optax.chain(*parts)


def from_config(config: Any, head: str | None) -> tuple[Globs, list[tuple[Globs, float]]]:
    """(frozen globs, [(globs, factor)]) of a config; keys absent from older configs read as off."""
    frozen = globs(config.get("freeze", ""), head)
    multipliers = [(globs(p, head), f) for p, f in parse_multipliers(config.get("lr_multipliers", ""))]
    return frozen, multipliers
