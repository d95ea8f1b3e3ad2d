"""Rows mirror their specs: same names, and a spec survives a trip through a row."""

import pytest
from pydantic import BaseModel

from turnout.models.consumer import ConsumerSpec
from turnout.models.entities import ENTITIES, Entity, entity
from turnout.models.freeze import Freeze, FreezeRow
from turnout.models.key import ConsumerKeyRow, KeyInfo
from turnout.models.route import RouteSpec
from turnout.models.schema import Base
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.models.token import TokenInfo, TokenRow

# Columns a row may have beyond its spec's fields, and why. None so far.
EXTRA_COLUMNS: dict[str, set[str]] = {kind: set() for kind in ENTITIES}

SAMPLES: dict[str, BaseModel] = {
    "consumer": ConsumerSpec.model_validate({"name": "c", "groups": ["free"], "tags": ["t"]}),
    "service": ServiceSpec.model_validate(
        {"name": "s", "endpoints": [{"address": "10.0.0.1", "port": 80}], "tags": ["t"]}
    ),
    "route": RouteSpec.model_validate(
        {
            "name": "r",
            "service": "s",
            "hosts": ["*.example.com"],
            "paths": ["/api", {"regex": "^/v[0-9]+/"}],
            "methods": ["GET"],
            "headers": {"x-env": "prod"},
            "priority": 3,
            "auth": {
                "key_sources": [{"header": "x-key"}, {"path": "/f/{key}"}],
                "allow_groups": ["free"],
            },
        }
    ),
    "split": SplitSpec.model_validate(
        {
            "name": "x",
            "route": "r",
            "targets": [{"service": "s", "weight": 5}, {"service": "t", "weight": 0}],
            "pins": [{"cookie": "beta", "value": "1", "service": "t"}],
            "sticky": {"header": "x-user"},
            "plan": {"target": "t", "baseline": "s", "hold_seconds": 2.5},
            "plan_state": {
                "status": "running",
                "step": 1,
                "step_started_at": "2026-01-01T00:00:00Z",
                "reason": "go",
            },
        }
    ),
}


@pytest.mark.parametrize("ent", ENTITIES.values(), ids=list(ENTITIES))
def test_row_columns_match_spec_fields(ent: Entity) -> None:
    columns = {c.name for c in ent.row.__table__.columns}  # type: ignore[attr-defined]
    assert columns - EXTRA_COLUMNS[ent.kind] == set(ent.spec.model_fields)


@pytest.mark.parametrize("ent", ENTITIES.values(), ids=list(ENTITIES))
def test_round_trip(ent: Entity) -> None:
    spec = SAMPLES[ent.kind]
    assert ent.to_spec(ent.to_row(spec)) == spec


def test_paths_stored_as_kind_value() -> None:
    row = entity("route").to_row(SAMPLES["route"])
    assert row.paths == [  # type: ignore[attr-defined]
        {"kind": "prefix", "value": "/api"},
        {"kind": "regex", "value": "^/v[0-9]+/"},
    ]


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown entity kind 'consumers'"):
        entity("consumers")


# Records beside the declaration: what is shown of one (`info`) is its row's columns
# less the secret ones, which are never shown.
RECORD_ROWS = [
    pytest.param(KeyInfo, ConsumerKeyRow, {"lookup_hash", "ciphertext"}, id="key"),
    pytest.param(TokenInfo, TokenRow, {"token_sha256"}, id="token"),
    pytest.param(Freeze, FreezeRow, set(), id="freeze"),
]


@pytest.mark.parametrize(("info", "row", "secret"), RECORD_ROWS)
def test_record_rows_match_what_is_shown(
    info: type[BaseModel], row: type[Base], secret: set[str]
) -> None:
    columns = {c.name for c in row.__table__.columns}
    assert columns - secret == set(info.model_fields)
