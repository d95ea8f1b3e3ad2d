"""Request and upstream policies through a real Envoy: headers, rewrites, retries, health."""

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, free_port, wait_for


class _FlakyHandler(BaseHTTPRequestHandler):
    """Fails every odd request with 503, answers every even one with 200."""

    server: "_FlakyServer"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.count += 1
            fail = self.server.count % 2 == 1
        body = b"fail" if fail else b"ok"
        self.send_response(503 if fail else 200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _FlakyServer(ThreadingHTTPServer):
    daemon_threads = True
    count = 0
    lock = threading.Lock()


@pytest.fixture
def flaky() -> Iterator[_FlakyServer]:
    server = _FlakyServer(("127.0.0.1", 0), _FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_headers_prefix_and_host_rewrite(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    admin.create(
        "routes",
        {
            "name": "shaped",
            "paths": ["/old"],
            "service": "blue",
            "policies": {
                "request_headers": {
                    "add": {"x-added": "1"},
                    "set": {"x-env": "prod"},
                    "remove": ["x-debug"],
                },
                "response_headers": {"set": {"x-served-by": "turnout"}, "remove": ["x-upstream"]},
                "rewrite": {"prefix": "/new"},
                "host_rewrite": "web.internal",
            },
        },
    )
    revision = admin.create(
        "routes",
        {
            "name": "versioned",
            "paths": [{"regex": "/v[0-9]+/items/.*"}],
            "service": "blue",
            "policies": {
                "rewrite": {"regex": "^/v([0-9]+)/items/(.*)$", "substitution": "/items/\\2"}
            },
        },
    )
    admin.wait_synced(envoy.node_id, revision)
    response = http.get(f"{envoy.url}/old/thing?q=1", headers={"x-debug": "secret", "x-env": "dev"})
    assert response.status_code == 200
    seen = response.json()
    assert seen["path"] == "/new/thing?q=1"
    assert seen["headers"]["host"] == "web.internal"
    assert seen["headers"]["x-added"] == "1"
    assert seen["headers"]["x-env"] == "prod"
    assert "x-debug" not in seen["headers"]
    assert response.headers["x-served-by"] == "turnout"
    assert "x-upstream" not in response.headers
    assert http.get(f"{envoy.url}/v2/items/abc").json()["path"] == "/items/abc"


@pytest.mark.parametrize(("retries", "status"), [(None, 503), ({"attempts": 2}, 200)])
def test_a_retry_turns_one_failure_into_success(
    admin: AdminClient,
    envoy: EnvoyProcess,
    flaky: _FlakyServer,
    http: httpx.Client,
    retries: dict[str, int] | None,
    status: int,
) -> None:
    admin.create("services", {"name": "flaky", "url": f"http://127.0.0.1:{flaky.server_port}"})
    policies = {"retries": retries} if retries else None
    revision = admin.create(
        "routes", {"name": "r", "paths": ["/"], "service": "flaky", "policies": policies}
    )
    admin.wait_synced(envoy.node_id, revision)
    before = flaky.count
    assert http.get(f"{envoy.url}/x").status_code == status
    assert flaky.count - before == (2 if retries else 1)


def test_an_active_health_check_takes_a_dead_endpoint_out_of_rotation(
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    dead = free_port()  # nothing listens there
    admin.create(
        "services",
        {
            "name": "pool",
            "endpoints": [
                {"address": "127.0.0.1", "port": upstreams["blue"].port},
                {"address": "127.0.0.1", "port": dead},
            ],
            "policies": {
                "health_check": {"path": "/healthz", "interval_ms": 200, "unhealthy_threshold": 1}
            },
        },
    )
    revision = admin.create("routes", {"name": "r", "paths": ["/"], "service": "pool"})
    admin.wait_synced(envoy.node_id, revision)

    def dead_marked() -> bool:
        with urllib.request.urlopen(f"{envoy.admin_url}/clusters", timeout=2) as resp:
            text = resp.read().decode()
        return f"pool::127.0.0.1:{dead}::health_flags::/failed_active_hc" in text

    wait_for(dead_marked, 15, "the dead endpoint to fail its health check")
    statuses = [http.get(f"{envoy.url}/x").status_code for _ in range(40)]
    assert statuses == [200] * 40
