"""The packages depend one way: `admin → storage → models ← xds`, and only the entry
point wires `storage` and `xds` together (README, "Architecture")."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "turnout"


def _imports(package: str) -> set[str]:
    """The turnout modules `package`'s files import (second-level names: xds, settings...)."""
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "turnout" and len(parts) > 1 and parts[1] != package:
                    found.add(parts[1])
    return found


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("models", set()),
        ("xds", {"models"}),
        ("storage", {"models", "settings"}),
        ("admin", {"models", "storage", "ratelimit"}),
    ],
)
def test_package_imports_only_what_lies_below_it(package: str, allowed: set[str]) -> None:
    assert _imports(package) <= allowed, _imports(package) - allowed
