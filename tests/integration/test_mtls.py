"""mTLS between Envoy and Turnout: a foreign CA is refused, a certificate naming
another node is refused, the right proxy converges. Real Envoy, real gRPC TLS."""

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from turnout.bootstrap_extras import XdsTlsFiles
from turnout.local import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
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
