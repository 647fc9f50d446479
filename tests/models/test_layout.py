"""The zoo's layout rules, read from the sources.

`cnnjax/models/families/` is the list of families (its modules are imported by scanning the folder), so a
module registering models anywhere else would silently never run: only family modules may register.
Families share code through the modules of `cnnjax/models/` (blocks, layers, registry, ...), never by
importing each other, and the shared modules import no family.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import cnnjax.models
from cnnjax.models import register_model

ROOT = pathlib.Path(cnnjax.models.__file__).parent
FAMILIES = "cnnjax.models.families"
FAMILY_FILES = sorted(p for p in (ROOT / "families").glob("*.py") if p.name != "__init__.py")
SHARED_FILES = sorted(p for p in ROOT.glob("*.py") if p.name != "__init__.py")


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _registers(path: pathlib.Path) -> bool:
    return any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_model"
               for node in ast.walk(_tree(path)))


def _imports(path: pathlib.Path) -> set[str]:
    """Every module and `module.name` an absolute import statement of the file names."""
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def test_only_family_modules_register_models() -> None:
    registering = sorted(p for p in ROOT.rglob("*.py") if _registers(p))
    assert registering == FAMILY_FILES


@pytest.mark.parametrize("path", FAMILY_FILES + SHARED_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_imports_a_family(path: pathlib.Path) -> None:
    """A family's own module is the only place that knows it; shared code lives outside `families/`."""
    assert not {name for name in _imports(path) if name.startswith(FAMILIES)}


def test_a_name_registers_once() -> None:
    with pytest.raises(ValueError, match="'resnet18' is registered twice"):
        register_model("resnet18", cnnjax.models.create_model, family="resnet", input_shape=(224, 224, 3))
