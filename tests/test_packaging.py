"""The wheel ships every Python package of the source tree.

setuptools builds from the explicit `packages` list in pyproject.toml; a package
missing there is silently left out of the wheel (and so of the container image),
while the editable install used in development still finds it.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _source_packages() -> set[str]:
    found = set()
    for module in (ROOT / "turnout").rglob("*.py"):
        if "__pycache__" in module.parts:
            continue
        found.add(".".join(module.parent.relative_to(ROOT).parts))
    return found


def test_every_source_package_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert _source_packages() - listed == set()
