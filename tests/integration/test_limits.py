"""Bursts and quotas enforced by real Envoys, quotas counted in real Redis."""

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    free_port,
    turnout_command,
    wait_for,
)

TOKEN = "integration-test-token"  # as in conftest.py
SECRET = "integration-test-secret-key"


@pytest.fixture
def start(
    database_url: str, tmp_path: Path
) -> Iterator[Callable[..., tuple[AdminClient, TurnoutProcess]]]:
    """Start `turnout serve` with extra environment; stopped (with its Envoys) after."""
    procs: list[Any] = []

    def run(
        env: dict[str, str], args: list[str] | None = None
    ) -> tuple[AdminClient, TurnoutProcess]:
        proc = TurnoutProcess(
            database_url,
            TOKEN,
            log_path=tmp_path / "turnout.log",
            env={"TURNOUT_SECRET_KEY": SECRET, **env},
            args=args or [],
        ).start()
        procs.append(proc)
        admin = AdminClient(proc.admin_url, TOKEN)
        procs.append(admin)
        return admin, proc

    yield run
    for proc in reversed(procs):
        proc.close() if isinstance(proc, AdminClient) else proc.stop()


def envoy_for(turnout: TurnoutProcess, node_id: str, tmp_path: Path) -> EnvoyProcess:
    return EnvoyProcess(node_id, turnout.xds_address, log_path=tmp_path / f"{node_id}.log").start()


def declare(admin: AdminClient, upstream: EchoUpstream, limits: dict[str, Any]) -> dict[str, str]:
    admin.create("services", {"name": "blue", "url": upstream.url})
    keys = {}
    for name in ("alice", "bob"):
        admin.create("consumers", {"name": name})
        response = admin.http.post(f"/consumers/{name}/keys", json={})
        keys[name] = response.json()["key"]
    admin.create(
        "routes",
        {"name": "api", "paths": ["/api"], "service": "blue", "auth": {}, "limits": limits},
    )
    return keys


@pytest.fixture
def upstream() -> Iterator[EchoUpstream]:
    server = EchoUpstream("blue").start()
    yield server
    server.stop()


def test_a_per_second_burst_returns_429_after_n_requests_per_consumer(
    start: Callable[..., tuple[AdminClient, TurnoutProcess]],
    upstream: EchoUpstream,
    tmp_path: Path,
) -> None:
    admin, turnout = start({})
    envoy = envoy_for(turnout, "envoy-1", tmp_path)
    try:
        keys = declare(admin, upstream, {"burst": [{"requests": 3, "per": "second"}]})
        admin.wait_synced(envoy.node_id, admin.revision())
        with httpx.Client(base_url=envoy.url, timeout=5) as http:
            codes = [http.get("/api", headers={"apikey": keys["alice"]}) for _ in range(30)]
            assert [r.status_code for r in codes[:3]] == [200, 200, 200]
            limited = [r for r in codes if r.status_code == 429]
            assert limited, "30 requests in a burst never hit a 3/second limit"
            assert limited[0].headers["x-ratelimit-limit"].startswith("3")
            assert "x-ratelimit-remaining" in limited[0].headers
            # bob has his own bucket.
            assert http.get("/api", headers={"apikey": keys["bob"]}).status_code == 200
    finally:
        envoy.stop()


def assert_daily_quota_of_5_holds(
    admin: AdminClient, envoys: list[EnvoyProcess], keys: dict[str, str]
) -> None:
    """alice gets 5 requests in all across the Envoys, then 429s; bob has his own."""
    clients = [httpx.Client(base_url=e.url, timeout=5) for e in envoys]
    for envoy in envoys:
        admin.wait_synced(envoy.node_id, admin.revision())
    try:
        codes = [clients[i % 2].get("/api", headers={"apikey": keys["alice"]}) for i in range(12)]
        assert sum(r.status_code == 200 for r in codes) == 5, [r.status_code for r in codes]
        assert {r.status_code for r in codes[5:]} == {429}
        assert codes[-1].headers["x-ratelimit-limit"].startswith("5")
        assert clients[1].get("/api", headers={"apikey": keys["bob"]}).status_code == 200
    finally:
        for c in clients:
            c.close()


def test_a_daily_quota_holds_across_two_envoys_sharing_redis(
    start: Callable[..., tuple[AdminClient, TurnoutProcess]],
    upstream: EchoUpstream,
    redis_env: dict[str, str],
    tmp_path: Path,
) -> None:
    admin, turnout = start(redis_env)
    envoys = [envoy_for(turnout, f"envoy-{i}", tmp_path) for i in (1, 2)]
    try:
        keys = declare(admin, upstream, {"quota": [{"requests": 5, "per": "day"}]})
        assert_daily_quota_of_5_holds(admin, envoys, keys)
    finally:
        for envoy in envoys:
            envoy.stop()


@pytest.mark.parametrize("where", ["turnout-ratelimit", "serve-ratelimit-listen"])
def test_the_fast_rate_limit_transport_counts_for_the_fleet(
    start: Callable[..., tuple[AdminClient, TurnoutProcess]],
    upstream: EchoUpstream,
    redis_env: dict[str, str],
    tmp_path: Path,
    where: str,
) -> None:
    """Envoys bootstrapped with --ratelimit-address call the lean HTTP/2 transport, run
    alone (`turnout ratelimit`) or by `turnout serve --ratelimit-listen`.

    For `turnout ratelimit`, serve has no Redis: its own rate limit service would fail
    open and let all 12 requests through, so only the separate service can hold the quota.
    """
    address = f"127.0.0.1:{free_port()}"
    with ExitStack() as stack:
        if where == "turnout-ratelimit":
            admin, turnout = start({})
            stack.enter_context(ratelimit_service(address, redis_env, tmp_path / "rl.log"))
        else:
            admin, turnout = start(redis_env, args=["--ratelimit-listen", address])
            wait_for(lambda: listening(address), 20, "serve's rate limit port listening")
        envoys: list[EnvoyProcess] = []
        try:
            for i in (1, 2):
                envoy = EnvoyProcess(
                    f"envoy-{i}",
                    turnout.xds_address,
                    log_path=tmp_path / f"envoy-{i}.log",
                    bootstrap={"ratelimit_address": address},
                )
                envoys.append(envoy.start())
            keys = declare(admin, upstream, {"quota": [{"requests": 5, "per": "day"}]})
            assert_daily_quota_of_5_holds(admin, envoys, keys)
        finally:
            for envoy in envoys:
                envoy.stop()


@contextmanager
def ratelimit_service(
    address: str, env: dict[str, str], log_path: Path, *args: str
) -> Iterator[None]:
    """`turnout ratelimit --listen ADDRESS [args]` until it listens; it must exit cleanly."""
    with open(log_path, "ab") as log:
        service = subprocess.Popen(
            [*turnout_command(), "ratelimit", "--listen", address, *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: listening(address), 20, "turnout ratelimit listening")
        yield
    finally:
        service.terminate()
        assert service.wait(10) == 0, log_path.read_text()


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize(("mode", "status"), [("open", 200), ("closed", 429)])
def test_unreachable_redis_follows_the_configured_failure_mode(
    start: Callable[..., tuple[AdminClient, TurnoutProcess]],
    upstream: EchoUpstream,
    tmp_path: Path,
    mode: str,
    status: int,
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    admin, turnout = start({"TURNOUT_REDIS_URL": dead, "TURNOUT_RATELIMIT_FAILURE_MODE": mode})
    envoy = envoy_for(turnout, "envoy-1", tmp_path)
    try:
        keys = declare(admin, upstream, {"quota": [{"requests": 1, "per": "day"}]})
        admin.wait_synced(envoy.node_id, admin.revision())
        with httpx.Client(base_url=envoy.url, timeout=5) as http:
            codes = [
                http.get("/api", headers={"apikey": keys["alice"]}).status_code for _ in range(3)
            ]
        assert codes == [status] * 3
        turnout_log = (tmp_path / "turnout.log").read_text()
        assert f"failing {mode}" in turnout_log
    finally:
        envoy.stop()


@pytest.mark.parametrize(
    "limits",
    [{"burst": [{"requests": -1, "per": "second"}]}, {"quota": [{"requests": 5, "per": "second"}]}],
    ids=["negative", "quota-per-second"],
)
def test_bad_limits_are_422_and_nothing_is_stored(
    start: Callable[..., tuple[AdminClient, TurnoutProcess]],
    upstream: EchoUpstream,
    limits: dict[str, Any],
) -> None:
    admin, _ = start({})
    admin.create("services", {"name": "blue", "url": upstream.url})
    revision = admin.revision()
    response = admin.http.post(
        "/routes", json={"name": "api", "paths": ["/api"], "service": "blue", "limits": limits}
    )
    assert response.status_code == 422
    assert "limits" in response.text
    assert admin.revision() == revision
