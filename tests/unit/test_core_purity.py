"""davsync/core stays pure: it imports only itself, the project's leaf modules, the standard
library's non-I/O modules and the vCard/iCalendar libraries, and never opens a file."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).parent.parent.parent / "davsync" / "core"
LEAVES = {"davsync.errors", "davsync.secret", "davsync.fsutil"}
THIRD_PARTY = {"vobject", "icalendar"}
IO_MODULES = {"os", "pathlib", "shutil", "socket", "subprocess", "sqlite3", "tempfile", "time",
              "urllib", "http", "httpx", "logging", "glob"}
IO_CALLS = {"open", "print", "input"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_that_does_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for name in _imports(tree):
        top = name.split(".")[0]
        if top == "davsync":
            assert name.startswith("davsync.core") or name in LEAVES, f"{path.name}: {name}"
        else:
            assert top not in IO_MODULES, f"{path.name} imports {name}"
            assert top in THIRD_PARTY or top in sys.stdlib_module_names, f"{path.name}: {name}"
    calls = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & IO_CALLS, f"{path.name} calls {calls & IO_CALLS}"

