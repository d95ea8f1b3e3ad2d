"""Story (c): moving a weather API with 10,000 customers from Kong to Turnout.

A runbook: each step is what the operator does, in their words, and what they
check. Quotas are counted in real Redis (TURNOUT_TEST_REDIS_URL) through two real
Envoys; the Kong file is generated here.
"""

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from turnout.cli import main
from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, TurnoutProcess

CUSTOMERS = 10_000
SECRET_KEY = "integration-test-secret-key"  # as in conftest.py


@pytest.fixture
def turnout_env(redis_env: dict[str, str]) -> dict[str, str]:
    """Keys encrypted at rest, quotas counted in this test's own Redis keys."""
    return {"TURNOUT_SECRET_KEY": SECRET_KEY, **redis_env}


@pytest.fixture
def turnout_xds_mode() -> str:
    return "delta"


def key_of(i: int) -> str:
    return f"wx-{i:05d}-0123456789abcdef"


def kong_export(weather: EchoUpstream) -> dict[str, Any]:
    """What `deck gateway dump` gives for the weather API on Kong."""
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "weather",
                "url": weather.url,
                "tags": ["weather"],
                "routes": [
                    # New clients send the key in a header.
                    {"name": "forecast-v1", "paths": ["/v1/forecast"]},
                    # Older clients put it in the URL: /forecast/<key>/<place>.
                    {
                        "name": "forecast-legacy",
                        "paths": ["~/forecast/(?<apikey>[^/]+)/(?<place>[a-z]+)$"],
                        "strip_path": False,
                        "plugins": [
                            {
                                "name": "request-transformer",
                                "config": {"add": {"headers": ["apikey:$(uri_captures.apikey)"]}},
                            }
                        ],
                    },
                ],
                "plugins": [
                    {
                        "name": "key-auth",
                        "config": {"key_names": ["apikey"], "hide_credentials": True},
                    },
                    # The free plan: 3 calls a day, counted across every Kong node.
                    {"name": "rate-limiting", "config": {"day": 3, "policy": "redis"}},
                ],
            }
        ],
        "consumers": [
            {"username": f"customer-{i:05d}", "keyauth_credentials": [{"key": key_of(i)}]}
            for i in range(CUSTOMERS)
        ],
    }


def test_story_kong_import(
    tmp_path: Path,
    turnout: TurnoutProcess,
    admin: AdminClient,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1. We exported Kong with decK: 10,000 customers, one key each.
    kong_file = tmp_path / "kong.yaml"
    kong_file.write_text(yaml.safe_dump(kong_export(upstreams["green"])))
    monkeypatch.setenv("TURNOUT_SECRET_KEY", SECRET_KEY)
    db = ["--database-url", turnout.database_url]

    # 2. Import it, and read what Turnout says will behave differently.
    assert main(["import", "kong", str(kong_file), *db]) == 0
    report = capsys.readouterr().out
    assert f"keys: {CUSTOMERS} new key(s) stored" in report
    assert "key apikey read from the URL path /forecast/{key}" in report
    assert key_of(0) not in report and key_of(CUSTOMERS - 1) not in report
    revision = admin.revision()

    # 3. Two Envoys take the traffic; wait until both run what we imported.
    envoys = [start_envoy("edge-1"), start_envoy("edge-2")]
    for envoy in envoys:
        admin.wait_synced(envoy.node_id, revision, timeout=60)

    # 4. Spot-check customers: by header on the new route, by URL on the old one.
    sample = random.Random(7).sample(range(1, CUSTOMERS), 40)
    for n, i in enumerate(sample[:20]):
        response = http.get(f"{envoys[n % 2].url}/v1/forecast", headers={"apikey": key_of(i)})
        assert response.status_code == 200, (i, response.text)
        assert response.json()["headers"]["x-consumer-username"] == f"customer-{i:05d}"
        assert "apikey" not in response.json()["headers"]
    for n, i in enumerate(sample[20:]):
        response = http.get(f"{envoys[n % 2].url}/forecast/{key_of(i)}/paris")
        assert response.status_code == 200, (i, response.text)
        assert response.json()["path"] == "/forecast/paris"  # the key stays out of logs
    assert http.get(f"{envoys[0].url}/forecast/not-a-customer-key-000/paris").status_code == 401
    assert http.get(f"{envoys[1].url}/v1/forecast").status_code == 401

    # 5. The free plan holds across the fleet: 3 a day, whichever Envoy is asked.
    codes = [
        http.get(f"{envoys[n % 2].url}/v1/forecast", headers={"apikey": key_of(0)}).status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 200]
    refused = http.get(f"{envoys[1].url}/forecast/{key_of(0)}/oslo")
    assert refused.status_code == 429, refused.text
    assert (
        http.get(f"{envoys[0].url}/v1/forecast", headers={"apikey": key_of(0)}).status_code == 429
    )
    # Another customer still has their own 3 calls.
    assert http.get(f"{envoys[0].url}/forecast/{key_of(sample[0])}/rome").status_code == 200

    # 6. Importing the same file again changes nothing.
    assert main(["import", "kong", str(kong_file), *db]) == 0
    again = capsys.readouterr().out
    assert "0 change(s)" in again and "keys: 0 new key(s) stored" in again
    assert admin.revision() == revision
