"""`turnout import kong`: a realistic decK file imported, then served by a real Envoy."""

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from turnout.cli import main
from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, TurnoutProcess

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
    services[5]["plugins"] = [
        {"name": "key-auth", "config": {"key_names": ["apikey"], "hide_credentials": True}},
        {"name": "rate-limiting", "config": {"second": 3, "policy": "local"}},
    ]
    services[6]["routes"][0]["plugins"] = [
        {
            "name": "request-transformer",
            "config": {
                "add": {"headers": ["x-from:kong"], "querystring": ["q:1"]},
                "replace": {"headers": ["x-tier:gold"]},
                "remove": {"headers": ["x-drop-me"]},
            },
        }
    ]
    services[7]["plugins"] = [{"name": "key-auth"}]  # Kong's defaults: header and query
    services[9]["plugins"] = [{"name": "cors"}]
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
            {"username": "alice", "tags": ["vip"], "keyauth_credentials": [{"key": SECRET}]},
            {
                "username": "bob",
                "keyauth_credentials": [{"key": SECRET + "-2"}, {"key": "short"}],
                "plugins": [{"name": "rate-limiting", "config": {"minute": 50, "day": 1000}}],
            },
            {"custom_id": "carol-id"},
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
    monkeypatch: pytest.MonkeyPatch,
    turnout_env: dict[str, str],
) -> None:
    monkeypatch.setenv("TURNOUT_SECRET_KEY", turnout_env["TURNOUT_SECRET_KEY"])
    url = ["--database-url", turnout.database_url]
    assert main(["import", "kong", str(kong_path), "--dry-run", *url]) == 0
    report = capsys.readouterr().out
    assert admin.revision() == 0
    assert SECRET not in report and "short" not in report
    assert "dry run: " in report and "2 key(s), nothing written" in report
    for expected in [
        "route svc-05-route: auth, limits from Kong plugins (key-auth, rate-limiting)",
        "route svc-06-route: policies from Kong plugins (rate-limiting, request-transformer)",
        "route svc-06-route (route request-transformer): request-transformer add.querystring"
        " not mapped",
        "route svc-07-route: auth, limits from Kong plugins (key-auth, rate-limiting)",
        "route svc-00-route (global rate-limiting): rate-limiting not mapped: no key-auth",
        "route svc-09-route: policies from Kong plugins (cors, rate-limiting)",
        "consumer alice: 1 key(s), kept out of this report",
        "consumer bob: keyauth_credentials[1] not imported",
        "consumer bob: limits from its rate-limiting plugin",
        "consumer carol-id (from consumer carol-id)",
        "service legacy-tcp: protocol 'tcp'",
        "route with-path-route-0 (from service with-path route 0)",
        "read_timeout → route timeout",
        "route two-values: skipped, header x-a has 2 values",
    ]:
        assert expected in report, expected

    assert main(["import", "kong", str(kong_path), *url]) == 0
    report = capsys.readouterr().out
    assert "revision 1:" in report and "keys: 2 new key(s) stored" in report
    assert SECRET not in report
    revision = admin.revision()  # the apply, then every consumer's keys in one write
    assert revision == 2
    admin.wait_synced(envoy.node_id, revision)
    consumers = {c["name"]: c for c in admin.http.get("/consumers").json()["items"]}
    assert set(consumers) == {"alice", "bob", "carol-id"}
    assert "vip" in consumers["alice"]["tags"]
    assert consumers["bob"]["limits"] == {
        "burst": [{"requests": 50, "per": "minute"}],
        "quota": [{"requests": 1000, "per": "day"}],
        "shared": None,
    }
    services = admin.http.get("/services").json()["items"]
    assert len(services) == 22  # 20 + svc with path + the one behind the upstream
    assert admin.http.get("/splits").json()["items"] == []  # targets are endpoints

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
    assert get("/loose/z").status_code == 401  # svc-07's key-auth covers its routes
    assert get("/loose/z", headers={"apikey": SECRET}).json()["service"] == "green"
    assert get("/wp/x").json()["path"] == "/base/x"  # Kong joins service path + path
    pay = Counter(get("/pay").json()["service"] for _ in range(400))
    assert 15 <= pay["green"] <= 75 and pay["blue"] + pay["green"] == 400, pay

    # key-auth: no key → 401, a wrong key → 401, an imported key → 200 (and hidden).
    assert get("/svc-05").status_code == 401
    assert get("/svc-05", headers={"apikey": "wrong-key-0123456789"}).status_code == 401
    ok = get("/svc-05", headers={"apikey": SECRET})
    assert ok.status_code == 200 and "apikey" not in ok.json()["headers"]
    assert ok.json()["headers"]["x-consumer-name"] == "alice"
    # Kong's default key-auth also reads the query string (svc-07).
    assert get("/svc-07").status_code == 401
    assert get(f"/svc-07?apikey={SECRET}-2").status_code == 200
    assert get("/svc-07", headers={"apikey": SECRET}).status_code == 200
    # rate-limiting second=3 on svc-05, per consumer: alice's quick requests meet 429
    # (one of her 3 tokens went on the request above).
    codes = [get("/svc-05", headers={"apikey": SECRET}).status_code for _ in range(8)]
    assert codes.count(429) >= 1 and codes[0] == 200, codes
    # bob's own plan (minute=50) replaces the route's, as Kong's consumer plugin does.
    codes = [get("/svc-05", headers={"apikey": SECRET + "-2"}).status_code for _ in range(8)]
    assert codes == [200] * 8, codes
    # request-transformer: headers added, replaced and removed on the way upstream.
    seen = get("/svc-06", headers={"x-tier": "silver", "x-drop-me": "1"}).json()["headers"]
    assert seen["x-from"] == "kong" and seen["x-tier"] == "gold" and "x-drop-me" not in seen

    # Importing again changes nothing; entities outside the import are left alone.
    admin.create("services", {"name": "not-from-kong", "url": "http://127.0.0.1:9"})
    assert main(["import", "kong", str(kong_path), *url]) == 0
    again = capsys.readouterr().out
    assert "0 change(s)" in again and "keys: 0 new key(s) stored" in again
    assert admin.http.get("/services/not-from-kong").status_code == 200
