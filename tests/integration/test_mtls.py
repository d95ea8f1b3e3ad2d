"""mTLS between Envoy and Turnout: a foreign CA is refused, a certificate naming
another node is refused, the right proxy converges; quotas still hold, wherever the
rate limit service answers. Real Envoy, real gRPC TLS, real Redis."""

import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.integration.test_limits import (
    SECRET,
    assert_daily_quota_of_5_holds,
    declare,
    listening,
    ratelimit_service,
)
from turnout.bootstrap_replicas import XdsTlsFiles
from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    free_port,
    turnout_command,
    wait_for,
    wait_status,
)

TOKEN = "mtls-test-token"


def _certs(directory: Path, *nodes: str) -> Path:
    args = [a for n in nodes for a in ("--node", n)]
    subprocess.run(
        [*turnout_command(), "certs", "init", "--dir", str(directory), *args], check=True
    )
    return directory


def _tls(ca_dir: Path, cert_dir: Path, cert: str) -> dict[str, XdsTlsFiles]:
    files = XdsTlsFiles(
        ca=str(ca_dir / "ca.pem"),
        cert=str(cert_dir / f"{cert}.pem"),
        key=str(cert_dir / f"{cert}.key"),
    )
    return {"xds_tls": files}


@pytest.fixture
def mtls_turnout(database_url: str, tmp_path: Path) -> tuple[TurnoutProcess, Path]:
    ours = _certs(tmp_path / "ours", "envoy-1", "envoy-2")
    allow = tmp_path / "allow.yaml"
    allow.write_text('- names: ["*"]\n  node_ids: ["{name}"]\n')
    proc = TurnoutProcess(
        database_url,
        TOKEN,
        log_path=tmp_path / "turnout.log",
        args=[
            "--xds-tls-cert", str(ours / "server.pem"),
            "--xds-tls-key", str(ours / "server.key"),
            "--xds-client-ca", str(ours / "ca.pem"),
            "--xds-allow-list", str(allow),
        ],
    ).start()  # fmt: skip
    yield proc, ours
    proc.stop()


def _log_has(path: Path, text: str) -> Callable[[], bool]:
    return lambda: text in path.read_text()


def test_foreign_ca_refused_wrong_node_refused_right_one_converges(
    mtls_turnout: tuple[TurnoutProcess, Path],
    tmp_path: Path,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    turnout, ours = mtls_turnout
    assert turnout.log_path is not None
    foreign = _certs(tmp_path / "foreign", "envoy-1")
    admin = AdminClient(turnout.admin_url, TOKEN)
    started: list[EnvoyProcess] = []

    def envoy(node_id: str, cert_dir: Path, cert: str, wait_ready: bool) -> EnvoyProcess:
        proc = EnvoyProcess(
            node_id,
            turnout.xds_address,
            log_path=tmp_path / f"envoy-{cert_dir.name}-{cert}.log",
            bootstrap=_tls(ours, cert_dir, cert),
        )
        started.append(proc)
        return proc.start(wait_ready=wait_ready)

    try:
        admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
        admin.create("routes", {"name": "api", "paths": ["/"], "service": "blue"})

        # 1. Another cluster's CA: the handshake fails, and the log says why.
        envoy("envoy-1", foreign, "envoy-1", wait_ready=False)
        wait_for(
            _log_has(turnout.log_path, "not signed by the CA in --xds-client-ca"),
            30,
            "a log line naming the foreign CA",
        )
        # 2. A valid certificate for envoy-2 claiming to be envoy-1.
        envoy("envoy-1", ours, "envoy-2", wait_ready=False)
        wait_for(
            _log_has(turnout.log_path, "may not claim node 'envoy-1'"),
            30,
            "a log line naming the node the certificate may not claim",
        )
        assert admin.proxies() == []
        for proc in started:
            proc.stop()

        # 3. The right certificate converges and serves traffic.
        good = envoy("envoy-1", ours, "envoy-1", wait_ready=True)
        admin.wait_synced("envoy-1", admin.revision(), timeout=30)
        assert wait_status(http, f"{good.url}/x", 200).json()["service"] == "blue"
        assert [p["node_id"] for p in admin.proxies()] == ["envoy-1"]
    finally:
        for proc in started:
            proc.stop()
        admin.close()


@pytest.mark.parametrize("where", ["xds-port", "serve-ratelimit-listen", "turnout-ratelimit"])
def test_quotas_hold_under_xds_mtls(
    database_url: str,
    tmp_path: Path,
    upstreams: dict[str, EchoUpstream],
    redis_env: dict[str, str],
    where: str,
) -> None:
    """Under xDS mTLS, Envoy's rate limit calls go over TLS too: a daily quota of 5 holds.

    Were they plaintext against a TLS port, every call would fail and Envoy would let all
    requests through (the ratelimit filter fails open). With `turnout ratelimit`, serve
    has no Redis: only the separate service, over TLS, can hold the quota.
    """
    ours = _certs(tmp_path / "certs", "envoy-1", "envoy-2")
    server = ["--xds-tls-cert", str(ours / "server.pem"), "--xds-tls-key", str(ours / "server.key"),
              "--xds-client-ca", str(ours / "ca.pem")]  # fmt: skip
    address = f"127.0.0.1:{free_port()}"
    env = {"TURNOUT_SECRET_KEY": SECRET, **redis_env}
    if where == "serve-ratelimit-listen":
        server += ["--ratelimit-listen", address]
    elif where == "turnout-ratelimit":
        env = {"TURNOUT_SECRET_KEY": SECRET}
    turnout = TurnoutProcess(
        database_url, TOKEN, log_path=tmp_path / "turnout.log", env=env, args=server
    ).start()
    admin = AdminClient(turnout.admin_url, TOKEN)
    tls = ["--tls-cert", str(ours / "server.pem"), "--tls-key", str(ours / "server.key"),
           "--client-ca", str(ours / "ca.pem")]  # fmt: skip
    envoys: list[EnvoyProcess] = []
    try:
        with ExitStack() as stack:
            if where == "turnout-ratelimit":
                log = tmp_path / "rl.log"
                stack.enter_context(ratelimit_service(address, redis_env, log, *tls))
            elif where == "serve-ratelimit-listen":
                wait_for(lambda: listening(address), 20, "serve's rate limit port listening")
            for node in ("envoy-1", "envoy-2"):
                bootstrap: dict[str, object] = {**_tls(ours, ours, node)}
                if where != "xds-port":
                    bootstrap["ratelimit_address"] = address
                log = tmp_path / f"{node}.log"
                envoy = EnvoyProcess(node, turnout.xds_address, log_path=log, bootstrap=bootstrap)
                envoys.append(envoy.start())
            keys = declare(admin, upstreams["blue"], {"quota": [{"requests": 5, "per": "day"}]})
            assert_daily_quota_of_5_holds(admin, envoys, keys)
            for envoy in envoys:  # the calls went over TLS
                stats = envoy.stats("_turnout_ratelimit.ssl.handshake")
                assert stats.get("cluster._turnout_ratelimit.ssl.handshake", 0) >= 1, stats
    finally:
        for envoy in envoys:
            envoy.stop()
        admin.close()
        turnout.stop()
