"""The `_turnout_ratelimit` cluster of `turnout bootstrap`: several rate limit hosts
(`--ratelimit-address` repeated), one endpoint each, with mTLS naming every host, and
HTTP/2 keepalive pings no more often than the service accepts; Envoy validates it."""

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from turnout import certs
from turnout.cli import main
from turnout.testing.processes import envoy_binary


def ratelimit_cluster(tmp_path: Path, *args: str) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / "bootstrap.yaml"
    assert main(["bootstrap", "--node-id", "n1", "-o", str(out), *args]) == 0
    clusters = yaml.safe_load(out.read_text())["static_resources"]["clusters"]
    return out, next(c for c in clusters if c["name"] == "_turnout_ratelimit")


def hosts(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (e["endpoint"]["address"]["socket_address"]["address"],
         e["endpoint"]["address"]["socket_address"]["port_value"])
        for group in cluster["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    ]  # fmt: skip


def test_several_rate_limit_hosts_with_mtls_and_keepalive(tmp_path: Path) -> None:
    certs.init(tmp_path, ["n1"], ["localhost"], ["127.0.0.1"])
    path, cluster = ratelimit_cluster(
        tmp_path,
        "--ratelimit-address", "rl-1.internal:18081",
        "--ratelimit-address", "rl-2.internal:18081",
        "--xds-ca", str(tmp_path / "ca.pem"),
        "--client-cert", str(tmp_path / "n1.pem"),
        "--client-key", str(tmp_path / "n1.key"),
    )  # fmt: skip
    assert hosts(cluster) == [("rl-1.internal", 18081), ("rl-2.internal", 18081)]
    assert cluster["type"] == "STRICT_DNS"
    tls = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    sans = tls["validation_context"]["match_typed_subject_alt_names"]
    assert [m["matcher"]["exact"] for m in sans] == ["rl-1.internal", "rl-2.internal"]
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    keepalive = options["explicit_http_config"]["http2_protocol_options"]["connection_keepalive"]
    assert keepalive["interval"] == "30s"  # the service's minimum is 10 s
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path),
         "--base-id", str(os.getpid() % 1000 + 8000)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_rate_limit_host_plaintext(tmp_path: Path) -> None:
    _, cluster = ratelimit_cluster(tmp_path, "--ratelimit-address", "127.0.0.1:18081")
    assert hosts(cluster) == [("127.0.0.1", 18081)]
    assert cluster["type"] == "STATIC" and "transport_socket" not in cluster
