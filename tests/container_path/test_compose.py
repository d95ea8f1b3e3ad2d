"""`docker-compose up` of the real docker-compose.yml: two replicas on PostgreSQL, mTLS.

The services that have test stand-ins run (postgres, redis, certs, turnout-1,
turnout-2, envoy-bootstrap, envoy, blue, green); Prometheus and Grafana are left
out: they watch the stack but carry no traffic, and neither has a Debian-packaged
stand-in here. Traffic stays between the stack's own containers and 127.0.0.1.
"""

import os
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest
from dockercli import ROOT

from turnout.testing.processes import AdminClient, RequestLoop, http_ok, wait_for

TOKEN = "compose-test-admin-token"
SERVICES = [
    "postgres", "redis", "certs", "turnout-1", "turnout-2",
    "envoy-bootstrap", "envoy", "blue", "green",
]  # fmt: skip
ENVOY = "http://127.0.0.1:10000"


class Compose:
    def __init__(self) -> None:
        self.project = f"turnout-test-{uuid.uuid4().hex[:6]}"
        self.env = {**os.environ, "TURNOUT_ADMIN_TOKEN": TOKEN}

    def __call__(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["docker-compose", "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), *args],
            capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=timeout,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result.stdout


@pytest.fixture
def stack(turnout_image: str) -> Iterator[Compose]:
    compose = Compose()
    try:
        # The image is built (host network, for pip) by the turnout_image fixture.
        compose("up", "-d", "--no-build", *SERVICES, timeout=600)
        yield compose
    finally:
        logs = subprocess.run(
            ["docker-compose", "-p", compose.project, "-f", str(ROOT / "docker-compose.yml"),
             "logs", "--tail", "40"],
            capture_output=True, text=True, env=compose.env, cwd=ROOT,
        ).stdout  # fmt: skip
        compose("down", "-v", "--remove-orphans", timeout=300)
        print(logs[-6000:])
    remaining = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={compose.project}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert remaining == "", "docker-compose down -v left containers behind"


def _text(url: str) -> str:
    """The body at `url`, or "" while the published port resets (docker-proxy, nothing behind)."""
    try:
        return httpx.get(url, timeout=5).text.strip()
    except httpx.HTTPError:
        return ""


def test_two_replicas_behind_mtls_route_served_and_replica_failover(stack: Compose) -> None:
    urls = ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
    one, two = (AdminClient(url, TOKEN) for url in urls)
    try:
        for url in urls:
            wait_for(lambda u=url: http_ok(f"{u}/healthz"), 120, f"{url} to answer /healthz")
        # Declared through replica 1, served by the Envoy container (mTLS to both).
        one.create("services", {"name": "blue", "url": "http://blue:5678"})
        two.create("services", {"name": "green", "url": "http://green:5678"})
        one.create("routes", {"name": "api", "paths": ["/"], "service": "blue"})
        wait_for(lambda: _text(f"{ENVOY}/") == "blue", 120, "Envoy to serve blue")
        wait_for(lambda: two.proxy("envoy-1") is not None, 60, "envoy-1 seen from replica 2")

        with RequestLoop(f"{ENVOY}/") as loop:
            loop.wait_more(20)
            stack("stop", "turnout-1")
            loop.wait_more(50)  # Envoy alone on the replica it had, or reconnecting
            revision = two.write(
                "PATCH", "/routes/api", {"service": "green"}
            )  # through the replica left
            two.wait_synced("envoy-1", revision, timeout=120)
            wait_for(lambda: _text(f"{ENVOY}/") == "green", 60, "Envoy to serve green")
            loop.wait_more(20)
        assert set(loop.results) == {"200"}, loop.results
    finally:
        one.close()
        two.close()
