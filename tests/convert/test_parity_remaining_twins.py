"""Numeric parity for the torchvision twins the family tests only check structurally, and a guard that
every registered model with a torchvision twin has a numeric parity test."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

from cnnjax.models import list_models, model_info
from tests.convert.parity import assert_parity, torch

torchvision = pytest.importorskip("torchvision")
pytestmark = pytest.mark.torch

# Small inputs keep the 100M-parameter VGG classifiers cheap: the adaptive pool makes 32x32 valid.
REMAINING = {name: (32, 32) for name in list_models("vgg1[369]*")}
REMAINING.update({"resnet34": (32, 32), "resnet101": (32, 32), "resnet152": (32, 32),
                  "densenet169": (32, 32), "densenet201": (32, 32)})


@pytest.mark.parametrize("name", sorted(REMAINING))
def test_parity(name):
    torch.manual_seed(0)
    with torch.no_grad():
        twin = getattr(torchvision.models, model_info(name).torchvision)()
    assert_parity(name, twin, REMAINING[name], batch=1)


def parity_table() -> dict[str, set[str]]:
    """Model name -> the parity test functions that call `assert_parity` for it, read from the test
    functions themselves: the values of their `name` parametrisation, or, for an unparametrised test, the
    registered model its function name is about (e.g. `test_inception_v3_parity`)."""
    registered = sorted(list_models(), key=len, reverse=True)
    table: dict[str, set[str]] = {}
    for path in sorted(pathlib.Path(__file__).parent.glob("test_parity_*.py")):
        module = importlib.import_module(f"tests.convert.{path.stem}")
        for fname, fn in vars(module).items():
            if not (fname.startswith("test_") and callable(fn) and "assert_parity" in fn.__code__.co_names):
                continue
            names = set()
            for mark in getattr(fn, "pytestmark", []):
                if mark.name != "parametrize":
                    continue
                argnames = [a.strip() for a in mark.args[0].split(",")] if isinstance(mark.args[0], str) \
                    else list(mark.args[0])
                if "name" in argnames:
                    values = [getattr(v, "values", v) for v in mark.args[1]]
                    names |= {v if len(argnames) == 1 else v[argnames.index("name")] for v in values}
            if not names:
                names = {n for n in registered if re.search(rf"(^|_){n}(_|$)", fname.removeprefix("test_"))}
            for n in names:
                table.setdefault(n, set()).add(f"{path.stem}::{fname}")
    return table


def test_every_twin_has_a_numeric_parity_test():
    twins = {n for n in list_models() if model_info(n).torchvision}
    table = parity_table()
    assert set(REMAINING) <= set(table)  # the table sees this module's own parametrisation
    assert twins <= set(table), f"twins without a parity test: {sorted(twins - set(table))}"
    assert set(table) <= twins, f"parity tests for models without a twin: {sorted(set(table) - twins)}"
