"""The data plane keeps serving whatever happens to Turnout or its database.

- SIGKILL Turnout during a steady request loop: zero failed requests; restart:
  the proxy converges on the current revision.
- The database goes away (a TCP forwarder in front of PostgreSQL is cut): admin
  writes answer 503 quickly, traffic is unaffected, everything recovers alone.
- An Envoy started from `turnout export-static` output serves the same routes
  while Turnout is down; `--export-static-dir` keeps such a file fresh.
"""

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from tcp_proxy import TcpProxy

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    RequestLoop,
    TurnoutProcess,
    free_port,
    turnout_command,
    wait_for,
    wait_status,
)

TOKEN = "integration-test-token"


def _declare(admin: AdminClient, upstreams: dict[str, EchoUpstream]) -> int:
    for name, server in upstreams.items():
        admin.create("services", {"name": name, "url": server.url})
    return admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})


def test_sigkill_under_load_zero_failures_then_convergence(
    turnout: TurnoutProcess,
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    _declare(admin, upstreams)
    wait_status(http, f"{envoy.url}/api", 200)
    with RequestLoop(f"{envoy.url}/api") as loop:
        loop.wait_more(50)
        turnout.stop(kill=True)
        loop.wait_more(300)  # Envoy alone, its control plane gone
        turnout.start()
        revision = admin.create(
            "routes", {"name": "later", "paths": ["/later"], "service": "green"}
        )
        admin.wait_synced(envoy.node_id, revision, timeout=30)
        loop.wait_more(50)
    assert set(loop.results) == {"200"}, loop.results
    assert http.get(f"{envoy.url}/later").json()["service"] == "green"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_outage_503_traffic_unaffected_recovers(
    pg_behind_proxy: tuple[str, TcpProxy],
    tmp_path: Path,
    start_envoy: object,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    url, proxy = pg_behind_proxy
    turnout = TurnoutProcess(url, TOKEN, log_path=tmp_path / "turnout-pg.log").start()
    admin = AdminClient(turnout.admin_url, TOKEN)
    envoy = EnvoyProcess("envoy-db", turnout.xds_address, log_path=tmp_path / "envoy.log").start()
    try:
        _declare(admin, upstreams)
        wait_status(http, f"{envoy.url}/api", 200)
        with RequestLoop(f"{envoy.url}/api") as loop:
            proxy.down()
            started = time.monotonic()
            response = admin.http.post("/services", json={"name": "x", "url": "http://x:1"})
            took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert "database unavailable" in response.json()["detail"]
            assert took < 6, f"a write took {took:.1f}s to fail"
            assert admin.http.get("/healthz").status_code == 503
            loop.wait_more(200)  # traffic while the database is gone
            proxy.up()
            revision = wait_status(admin.http, "/healthz", 200, timeout=30).json()["revision"]
            revision = admin.create(
                "routes", {"name": "back", "paths": ["/back"], "service": "green"}
            )
            admin.wait_synced("envoy-db", revision, timeout=30)
            loop.wait_more(20)
        assert set(loop.results) == {"200"}, loop.results
        assert http.get(f"{envoy.url}/back").json()["service"] == "green"
    finally:
        envoy.stop()
        admin.close()
        turnout.stop()


def test_envoy_from_export_static_serves_with_turnout_down(
    turnout: TurnoutProcess,
    admin: AdminClient,
    upstreams: dict[str, EchoUpstream],
    tmp_path: Path,
    http: httpx.Client,
) -> None:
    _declare(admin, upstreams)
    admin.create(
        "splits",
        {"name": "s", "route": "api", "targets": [{"service": "green", "weight": 1}]},
    )
    port, admin_port = free_port(), free_port()
    out = tmp_path / "static.yaml"
    subprocess.run(
        [
            *turnout_command(), "export-static", "--node-cluster", "default", "-o", str(out),
            "--listener-address", "127.0.0.1", "--listener-port", str(port),
            "--admin-port", str(admin_port),
        ],
        env={**os.environ, "TURNOUT_DATABASE_URL": turnout.database_url},
        check=True,
    )  # fmt: skip
    config = yaml.safe_load(out.read_text())
    assert "dynamic_resources" not in config
    turnout.stop(kill=True)
    envoy = EnvoyProcess(
        "static",
        "127.0.0.1:1",
        listener_port=port,
        admin_port=admin_port,
        config_yaml=out.read_text(),
        log_path=tmp_path / "envoy-static.log",
    ).start()
    try:
        assert wait_status(http, f"{envoy.url}/api/x", 200).json()["service"] == "green"
        assert http.get(f"{envoy.url}/other").status_code == 404
    finally:
        envoy.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_periodic_export_keeps_a_fresh_file(database_url: str, tmp_path: Path) -> None:
    export_dir = tmp_path / "static"
    turnout = TurnoutProcess(
        database_url,
        TOKEN,
        log_path=tmp_path / "turnout.log",
        args=["--export-static-dir", str(export_dir), "--export-static-interval", "0.2"],
    ).start()
    admin = AdminClient(turnout.admin_url, TOKEN)
    path = export_dir / "default.yaml"
    try:
        wait_for(path.exists, 30, "the first export")
        admin.create("services", {"name": "blue", "url": "http://127.0.0.1:1"})
        revision = admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})
        wait_for(
            lambda: f"at revision {revision}\n" in path.read_text(),
            30,
            "an export of the new revision",
        )
    finally:
        admin.close()
        turnout.stop()
