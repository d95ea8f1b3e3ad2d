"""`turnout import kong`: a realistic decK file imported, then served by a real Envoy."""

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from turnout.cli import main
from turnout.local import AdminClient, EchoUpstream, EnvoyProcess, TurnoutProcess

SECRET = "kong-secret-key-do-not-print"


def kong_file(blue: EchoUpstream, green: EchoUpstream) -> dict[str, Any]:
    services: list[dict[str, Any]] = []
    for i in range(20):
        upstream = blue if i % 2 == 0 else green
        service: dict[str, Any] = {
            "name": f"svc-{i:02d}",
            "tags": ["team-a" if i < 10 else "team-b"],
            "routes": [{"name": f"svc-{i:02d}-route", "paths": [f"/svc-{i:02d}"]}],
        }
        if i % 3 == 0:
            service.update(protocol="http", host="127.0.0.1", port=upstream.port)
        else:
            service["url"] = upstream.url
        services.append(service)
    services[1]["routes"][0]["strip_path"] = False
    services[2]["routes"][0].update(hosts=["shop.example.com"], methods=["POST"])
    services[3]["routes"].append({"name": "users-v", "paths": ["~/v\\d+/users"]})
    services[4]["routes"][0]["headers"] = {"x-env": ["prod"]}
    services[5]["plugins"] = [{"name": "key-auth", "config": {"key_names": ["apikey"]}}]
    services[6]["routes"][0]["plugins"] = [
        {"name": "request-transformer", "config": {"add": {"headers": ["x-from:kong"]}}}
    ]
    services += [
        {
            "name": "payments",
            "host": "payments-upstream",
            "routes": [{"name": "payments", "paths": ["/pay"], "preserve_host": True}],
        },
        {"name": "legacy-tcp", "protocol": "tcp", "host": "10.1.1.1", "port": 9000},
        {"name": "with-path", "url": f"{blue.url}/base", "routes": [{"paths": ["/wp"]}]},
    ]
    return {
        "_format_version": "3.0",
        "services": services,
        "routes": [
            {"name": "loose", "service": {"name": "svc-07"}, "paths": ["/loose"]},
            {"name": "two-values", "service": "svc-08", "headers": {"x-a": ["1", "2"]}},
        ],
        "upstreams": [
            {
                "name": "payments-upstream",
                "targets": [
                    {"target": f"127.0.0.1:{blue.port}", "weight": 90},
                    {"target": f"127.0.0.1:{green.port}", "weight": 10},
                ],
            }
        ],
        "consumers": [
            {"username": "alice", "keyauth_credentials": [{"key": SECRET}]},
            {
                "username": "bob",
                "keyauth_credentials": [{"key": SECRET + "-2"}],
                "plugins": [{"name": "rate-limiting", "config": {"minute": 5}}],
            },
        ],
        "plugins": [{"name": "rate-limiting", "config": {"second": 100, "policy": "local"}}],
    }


@pytest.fixture
def kong_path(tmp_path: Path, upstreams: dict[str, EchoUpstream]) -> Path:
    path = tmp_path / "kong.yml"
    path.write_text(yaml.safe_dump(kong_file(upstreams["blue"], upstreams["green"])))
    return path


def test_kong_import_then_envoy_serves_it(
    turnout: TurnoutProcess,
    admin: AdminClient,
    envoy: EnvoyProcess,
    kong_path: Path,
    http: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = ["--database-url", turnout.database_url]
    assert main(["import", "kong", str(kong_path), "--dry-run", *url]) == 0
    report = capsys.readouterr().out
    assert admin.revision() == 0
    assert SECRET not in report
    for expected in [
        "plugin key-auth on service svc-05: needs consumers and keys (issue 4)",
        "plugin rate-limiting on everything (global)",
        "plugin request-transformer on route svc-06-route",
        "consumer alice (1 key(s)",
        "service legacy-tcp: protocol 'tcp'",
        "service with-path: path '/base' not mapped",
        "route two-values: skipped, header x-a has 2 values",
        "route payments: preserve_host=True not mapped",
    ]:
        assert expected in report, expected

    assert main(["import", "kong", str(kong_path), *url]) == 0
    report = capsys.readouterr().out
    assert "revision 1:" in report
    admin.wait_synced(envoy.node_id, 1)
    services = admin.http.get("/services").json()["items"]
    assert len(services) == 23  # 20 + svc with path + 2 upstream targets

    def get(path: str, **kwargs: Any) -> httpx.Response:
        return http.get(f"{envoy.url}{path}", **kwargs)

    response = get("/svc-00/a/b")  # Kong strips the path by default
    assert response.json()["service"] == "blue" and response.json()["path"] == "/a/b"
    assert get("/svc-01/x").json()["path"] == "/svc-01/x"  # strip_path: false
    assert get("/svc-02/x").status_code == 404  # needs host and POST
    shop = http.post(f"{envoy.url}/svc-02/x", headers={"host": "shop.example.com"})
    assert shop.status_code == 200
    assert get("/v2/users/7").json()["service"] == "green"  # svc-03's regex route
    assert get("/svc-04").status_code == 404
    assert get("/svc-04", headers={"x-env": "prod"}).status_code == 200
    assert get("/loose/z").json()["service"] == "green"
    pay = Counter(get("/pay").json()["service"] for _ in range(400))
    assert 15 <= pay["green"] <= 75 and pay["blue"] + pay["green"] == 400, pay

    # Importing again changes nothing; entities outside the import are left alone.
    admin.create("services", {"name": "not-from-kong", "url": "http://127.0.0.1:9"})
    assert main(["import", "kong", str(kong_path), *url]) == 0
    assert "0 change(s)" in capsys.readouterr().out
    assert admin.http.get("/services/not-from-kong").status_code == 200
