"""The deployment kit, checked statically (these machines have no Docker engine):
`docker-compose config` validates the compose file, and every command, path, port
and variable it names must agree with Turnout's own CLI and files."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from sqlalchemy import make_url

from turnout.cli import parse

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _turnout_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("image") == "turnout:local"
    }


def test_docker_compose_config_validates() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose not installed (Debian package docker-compose; .ci/run installs it)"
        )
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_every_turnout_command_parses(compose: dict[str, Any]) -> None:
    services = _turnout_services(compose)
    assert {"certs", "turnout-1", "turnout-2", "envoy-bootstrap"} <= set(services)
    for name, svc in services.items():
        try:
            parse([str(a) for a in svc["command"]])
        except click.UsageError:
            pytest.fail(f"service {name}: `turnout {' '.join(svc['command'])}` does not parse")


def _opt(command: list[str], flag: str) -> list[str]:
    return [str(command[i + 1]) for i, a in enumerate(command) if a == flag]


def test_certificate_files_are_the_ones_certs_init_writes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    init = services["certs"]["command"]
    out_dir = _opt(init, "--dir")[0]
    made = {
        f"{out_dir}/{stem}.{ext}"
        for stem in ["ca", "server", *_opt(init, "--node")]
        for ext in ("pem", "key")
    }
    used = []
    for name in ("turnout-1", "turnout-2", "envoy-bootstrap"):
        cmd = services[name]["command"]
        used += [a for a in map(str, cmd) if a.startswith(out_dir + "/")]
    assert used and set(used) <= made
    # The server certificate names both replicas, as the bootstrap's SAN check needs.
    bootstrap = services["envoy-bootstrap"]["command"]
    hosts = {a.rsplit(":", 1)[0] for a in _opt(bootstrap, "--xds-address")}
    assert hosts == {"turnout-1", "turnout-2"} <= set(_opt(init, "--server-name"))
    assert _opt(bootstrap, "--node-id") == _opt(init, "--node")


def test_ports_and_hosts_agree(compose: dict[str, Any]) -> None:
    services = compose["services"]
    serve = services["turnout-1"]["command"]
    admin_port = _opt(serve, "--admin-listen")[0].rsplit(":", 1)[1]
    xds_port = _opt(serve, "--xds-listen")[0].rsplit(":", 1)[1]
    bootstrap = services["envoy-bootstrap"]["command"]
    assert {a.rsplit(":", 1)[1] for a in _opt(bootstrap, "--xds-address")} == {xds_port}
    assert services["turnout-1"]["ports"] == [f"{admin_port}:{admin_port}"]
    assert services["turnout-2"]["ports"] == [f"8002:{admin_port}"]
    listener = _opt(bootstrap, "--listener-port")[0]
    envoy_admin = _opt(bootstrap, "--admin-port")[0]
    assert f"{listener}:{listener}" in services["envoy"]["ports"]
    assert _opt(bootstrap, "--admin-address") == ["0.0.0.0"]
    assert _opt(bootstrap, "-o")[0] in services["envoy"]["command"]
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = {
        j["job_name"]: j["static_configs"][0]["targets"] for j in prometheus["scrape_configs"]
    }
    assert targets["turnout"] == [f"turnout-1:{admin_port}", f"turnout-2:{admin_port}"]
    assert targets["envoy"] == [f"envoy:{envoy_admin}"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {admin_port} {xds_port}" in dockerfile


def test_environment_matches_code(compose: dict[str, Any]) -> None:
    env = compose["x-turnout"]["environment"]
    known = {
        "TURNOUT_DATABASE_URL",
        "TURNOUT_ADMIN_TOKEN",
        "TURNOUT_LOG_FORMAT",
        "TURNOUT_REPLICA_ID",
    }
    for name in ("turnout-1", "turnout-2"):
        svc_env = compose["services"][name]["environment"]
        assert set(svc_env) <= known
        assert svc_env["TURNOUT_REPLICA_ID"] == name
    sources = "\n".join(p.read_text() for p in (ROOT / "turnout").rglob("*.py"))
    for var in known:
        assert f'"{var}"' in sources, f"{var} is not read anywhere in turnout/"
    url = make_url(env["TURNOUT_DATABASE_URL"])
    pg = compose["services"]["postgres"]["environment"]
    assert (url.username, url.password, url.database, url.host) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"], "postgres"
    )  # fmt: skip
    assert env["TURNOUT_LOG_FORMAT"] in {"text", "json"}


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []) + compose["x-turnout"]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
    assert 'ENTRYPOINT ["turnout"]' in dockerfile
    assert 'turnout = "turnout.cli:main"' in (ROOT / "pyproject.toml").read_text()


def test_grafana_dashboard_uses_turnout_metric_names() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/turnout.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "turnout_connected_proxies",
        "turnout_xds_pushes_total",
        "turnout_xds_push_duration_seconds",
        "turnout_xds_commit_to_ack_seconds",
        "turnout_xds_nacks_total",
        "turnout_xds_stale_nonces_total",
        "turnout_xds_resends_suppressed_total",
        "envoy_cluster_upstream_rq_total",
    ):
        assert metric in exprs
    provisioning = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/turnout.yml").read_text()
    )
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
