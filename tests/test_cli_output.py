"""`-o table|json|yaml`: tables for people, the API's answer as it is for scripts."""

import json

import pytest
import yaml

from turnout.cli.client import EXIT_FROZEN, EXIT_UNAUTHORIZED, ApiError, describe_error
from turnout.cli.output import MAX_CELL, dumps, emit, field, table
from turnout.cli.resources import merge, parse_sets

ROWS = [
    {"name": "orders", "url": "http://orders:8080", "tags": ["a", "b"], "plan": None},
    {"name": "users-long-name", "url": None, "tags": [], "plan": {"target": "v2"}},
]
COLUMNS = [
    ("name", field("name")),
    ("url", field("url")),
    ("tags", field("tags")),
    ("target", field("plan.target")),
]


def test_table_aligns_columns_under_an_upper_case_header() -> None:
    lines = table(ROWS, COLUMNS).splitlines()
    assert lines[0].split() == ["NAME", "URL", "TAGS", "TARGET"]
    assert lines[1].split() == ["orders", "http://orders:8080", "a,b", "-"]
    assert lines[2].split() == ["users-long-name", "-", "-", "v2"]
    assert lines[1].index("http") == lines[0].index("URL")


def test_table_cuts_long_cells_and_says_none() -> None:
    row = {"name": "x" * 500}
    assert len(table([row], [("name", field("name"))]).splitlines()[1]) == MAX_CELL
    assert table([], COLUMNS) == "(none)\n"


def test_json_and_yaml_are_the_answer_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    body = {"items": ROWS, "revision": 3}
    emit(body, "json", COLUMNS, ROWS)
    assert json.loads(capsys.readouterr().out) == body
    emit(body, "yaml", COLUMNS, ROWS)
    assert yaml.safe_load(capsys.readouterr().out) == body
    assert list(yaml.safe_load(dumps({"z": 1, "a": 2}, "yaml"))) == ["z", "a"]


def test_set_values_are_yaml_and_dotted_keys_nest() -> None:
    sets = parse_sets(["priority=10", "tags=[a, b]", "plan.hold_seconds=60", "url=http://x:1"])
    assert sets == {
        "priority": 10,
        "tags": ["a", "b"],
        "plan": {"hold_seconds": 60},
        "url": "http://x:1",
    }
    assert merge({"plan": {"target": "v2", "hold_seconds": 300}}, sets)["plan"] == {
        "target": "v2",
        "hold_seconds": 60,
    }


def test_errors_show_status_detail_field_and_freeze() -> None:
    frozen = ApiError(423, {"detail": "frozen by freeze 3", "freeze": {"id": 3, "reason": "bf"}})
    assert frozen.exit_code == EXIT_FROZEN
    assert frozen.format_message().startswith("423 Locked: frozen by freeze 3")
    assert "freeze 3: bf" in frozen.format_message()
    assert ApiError(403, {"detail": "role"}).exit_code == EXIT_UNAUTHORIZED
    invalid = describe_error(
        422, {"detail": [{"loc": ["body", "targets", 0, "weight"], "msg": "too big"}]}
    )
    assert invalid.splitlines() == [
        "422 Unprocessable Entity: invalid request",
        "  targets.0.weight: too big",
    ]
    assert "field: name" in describe_error(409, {"detail": "exists", "field": "name"})
