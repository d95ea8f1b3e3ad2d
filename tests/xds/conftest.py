"""Shared fixtures for tests/xds: the `--update-golden` flag and the golden cases.

Golden cases (Envoy Gateway style): `testdata/in/<case>.yaml` holds a declaration
(`services`, `routes`, `splits`, `consumers` lists in the specs' JSON shape,
`api_keys` as `{id, consumer, key}`, an optional
`revision` and an optional `listener: {address, port, group}`); the expected
resources live in `testdata/out/<case>.<kind>.yaml`, one file per resource kind
(clusters, endpoints, extension_configs, listeners, routes).
Any test that takes a `golden_case` argument runs once per input file.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from turnout.admin.declarative import FORMAT_KEY, FORMAT_VERSION, parse_document
from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.key import ApiKey
from turnout.xds.translate import NodeGroup

TESTDATA = Path(__file__).parent / "testdata"
IN_DIR = TESTDATA / "in"
OUT_DIR = TESTDATA / "out"

EXPECTED_ERRORS: dict[str, str] = {
    "route-to-missing-service": "sends traffic to cluster 'ghost', which does not exist",
}
"""Golden cases whose `check_consistent` must fail, with part of the message."""

_NOT_ENTITIES = ("api_keys", "revision", "listener")
"""Input keys that are not the declarative document's (keys never travel in it)."""


@dataclass(frozen=True)
class GoldenCase:
    """One `testdata/in/<name>.yaml` file."""

    name: str
    """The file name without `.yaml`; also the prefix of its output files."""
    path: Path
    """The input file."""

    def load(self) -> tuple[Declaration, NodeGroup]:
        """The entities through the declarative-config loader (what `turnout apply`
        and `POST /config` read); keys, revision and listener are the test's own."""
        raw = yaml.safe_load(self.path.read_text()) or {}
        extras = {k: raw.pop(k) for k in _NOT_ENTITIES if k in raw}
        target = parse_document({FORMAT_KEY: FORMAT_VERSION, **raw})
        keys = sorted((ApiKey(**k) for k in extras.get("api_keys") or []), key=lambda k: k.id)
        decl = Declaration(
            revision=extras.get("revision", 1),
            api_keys=tuple(keys),
            **{ent.plural: target.get(kind, {}) for kind, ent in ENTITIES.items()},  # type: ignore[arg-type]
        )
        return decl, NodeGroup(**(extras.get("listener") or {}))

    @property
    def expected_error(self) -> str | None:
        return EXPECTED_ERRORS.get(self.name)

    def out_path(self, kind: str) -> Path:
        """`testdata/out/<case>.<kind>.yaml` (kinds: `test_translate_golden.OUTPUTS`)."""
        return OUT_DIR / f"{self.name}.{kind}.yaml"


def golden_cases() -> list[GoldenCase]:
    return [GoldenCase(p.stem, p) for p in sorted(IN_DIR.glob("*.yaml"))]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/xds/testdata/out from the translator and delete stale files.",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "golden_case" in metafunc.fixturenames:
        cases = golden_cases()
        metafunc.parametrize("golden_case", cases, ids=[c.name for c in cases])


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def stale_golden_files() -> list[Path]:
    """Output files whose case has no input file any more."""
    names = {c.name for c in golden_cases()}
    return [p for p in sorted(OUT_DIR.glob("*.yaml")) if p.name.split(".", 1)[0] not in names]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With `--update-golden`, delete outputs whose input case no longer exists."""
    if not session.config.getoption("--update-golden"):
        return
    names = {c.name for c in golden_cases()}
    for out in sorted(OUT_DIR.glob("*.yaml")):
        if out.name.split(".", 1)[0] not in names:
            out.unlink()
            print(f"deleted stale golden file {out}", file=sys.stderr)
