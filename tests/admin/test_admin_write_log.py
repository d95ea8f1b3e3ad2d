"""Every admin write leaves one structured log line: actor, action, entity, revision, outcome."""

import json
import logging

import pytest
from fastapi.testclient import TestClient

from tests.admin.conftest import Bodies
from turnout.logjson import JsonFormatter


def write_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "turnout.admin.writes"]


def test_each_write_logs_one_line_with_its_outcome(
    client: TestClient, body: type[Bodies], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="turnout.admin.writes")
    created = client.post("/services", json=body.service())
    assert created.status_code == 201
    refused = client.post("/services", json=body.service())  # the name is taken
    client.get("/services")  # a read: not logged
    lines = write_lines(caplog)
    assert [r.fields["outcome"] for r in lines] == [201, refused.status_code]  # type: ignore[attr-defined]
    first = lines[0].fields  # type: ignore[attr-defined]
    assert first["actor"] and first["action"] == "POST" and first["entity"] == "services"
    assert first["revision"] == int(created.headers["X-Turnout-Revision"])
    assert lines[1].fields["revision"] is None  # type: ignore[attr-defined]
    # The JSON log format carries the same fields as keys of their own.
    out = json.loads(JsonFormatter().format(lines[0]))
    assert (out["actor"], out["outcome"], out["revision"]) == (
        first["actor"],
        201,
        first["revision"],
    )


def test_a_write_without_a_token_is_not_logged_as_anyone(
    anon: TestClient, body: type[Bodies], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="turnout.admin.writes")
    assert anon.post("/services", json=body.service()).status_code == 401
    # Refused by the guard before the write log: nothing was attempted.
    assert write_lines(caplog) == []


def test_a_hostile_path_cannot_forge_or_flood_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="turnout.admin.writes")
    client.delete("/services/x%0Aadmin write actor=root" + "a" * 10_000)
    (line,) = write_lines(caplog)
    assert "\n" not in line.getMessage()
    assert len(line.fields["entity"]) <= 2 * 200  # type: ignore[attr-defined]
