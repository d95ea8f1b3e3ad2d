"""Kong files of tests/integration/kong/ imported, then checked request by request
through a real Envoy against what Kong's documentation says each field does."""

import socket
import string
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from turnout.cli import main
from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    wait_for,
)

CORPUS = Path(__file__).parent / "kong"


@pytest.fixture
def turnout_xds_mode() -> str:
    """The import is the same whatever the xDS variant; one is enough here."""
    return "delta"


class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        time.sleep(float(query.get("sleep", ["0"])[0]))
        body = b'{"service": "slow"}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow() -> Iterator[str]:
    """An upstream that answers after `?sleep=SECONDS`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Importer = Callable[[str], str]


@pytest.fixture
def import_kong(
    tmp_path: Path,
    turnout: TurnoutProcess,
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    slow: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    turnout_env: dict[str, str],
) -> Importer:
    """Import corpus file NAME (ports filled in) with the CLI; wait until Envoy runs it."""
    monkeypatch.setenv("TURNOUT_SECRET_KEY", turnout_env["TURNOUT_SECRET_KEY"])
    ports = {
        "BLUE": upstreams["blue"].url,
        "GREEN": upstreams["green"].url,
        "BLUE_PORT": str(upstreams["blue"].port),
        "GREEN_PORT": str(upstreams["green"].port),
        "SLOW": slow,
        "DEAD_PORT": str(_dead_port()),
    }

    def run(name: str) -> str:
        text = string.Template((CORPUS / name).read_text()).safe_substitute(ports)
        path = tmp_path / name
        path.write_text(text)
        assert main(["import", "kong", str(path), "--database-url", turnout.database_url]) == 0
        report = capsys.readouterr().out
        admin.wait_synced(envoy.node_id, admin.revision())
        return report

    return run


def test_timeouts_and_retries(
    import_kong: Importer, envoy: EnvoyProcess, http: httpx.Client
) -> None:
    report = import_kong("timeouts.yaml")
    assert "read_timeout → route timeout" in report
    with ThreadPoolExecutor(1) as pool:
        # Kong's read timeout is 60 s when unset; Envoy's own default would be 15 s.
        sixteen = pool.submit(http.get, f"{envoy.url}/slow-default?sleep=16", timeout=30)
        # read_timeout 1000: an answer after 2 s is a 504, one after 0.1 s is not.
        late = http.get(f"{envoy.url}/slow-short?sleep=2", timeout=10)
        assert late.status_code == 504, late.text
        assert http.get(f"{envoy.url}/slow-short?sleep=0.1").status_code == 200
        # Nothing listens: connect fails fast (500 ms) and is retried 3 times.
        down = http.get(f"{envoy.url}/down", timeout=10)
        assert down.status_code == 503
        assert sixteen.result().status_code == 200
    stats = httpx.get(f"{envoy.admin_url}/stats?filter=cluster.down.upstream_rq_retry$").text
    assert "cluster.down.upstream_rq_retry: 3" in stats, stats


def test_key_auth_acl_consumer_headers_and_ttl(
    import_kong: Importer, envoy: EnvoyProcess, http: httpx.Client
) -> None:
    report = import_kong("auth.yaml")
    assert "keyauth_credentials[1] expires at its ttl" in report
    assert "bob-temporary-key-0123" not in report

    def get(path: str, key: str | None = None, **headers: str) -> httpx.Response:
        if key is not None:
            headers["apikey"] = key
        return http.get(f"{envoy.url}{path}", headers=headers)

    alice, bob, temporary = "alice-key-0123456789", "bob-key-0123456789ab", "bob-temporary-key-0123"
    # acl allow gold on service "members" only (a top-level plugin naming it).
    assert get("/members").status_code == 401
    assert get("/members", alice).status_code == 200
    assert get("/members", bob).status_code == 403  # a non-member: 403, as in Kong
    assert get("/all", bob).status_code == 200  # other services: no acl
    # acl deny silver on one route.
    assert get("/no-silver", bob).status_code == 403
    assert get("/no-silver", alice).status_code == 200
    # Kong's consumer header reaches the upstream; forged ones do not.
    forged = {
        "x-consumer-id": "forged",
        "x-consumer-custom-id": "forged",
        "x-consumer-username": "bob",
        "x-credential-identifier": "forged",
    }
    headers = get("/all", alice, **forged).json()["headers"]
    assert headers["x-consumer-username"] == "alice"
    assert headers["x-consumer-id"] == "7d3c8a52-1b4e-4f0a-9c61-2f5e8b9d0a11"
    assert headers["x-consumer-custom-id"] == "A-1"
    assert "x-credential-identifier" not in headers and "apikey" not in headers
    # bob has neither id nor custom_id in the file: only his name, nothing forged.
    headers = get("/all", bob, **forged).json()["headers"]
    assert headers["x-consumer-username"] == "bob"
    assert "x-consumer-id" not in headers and "x-consumer-custom-id" not in headers
    # The key with ttl 4 works, then expires as Kong's would.
    assert get("/all", temporary).status_code == 200
    wait_for(lambda: get("/all", temporary).status_code == 401, timeout=30, what="ttl expiry")
    assert get("/all", bob).status_code == 200


def test_route_policies(
    import_kong: Importer,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    report = import_kong("policies.yaml")
    assert "key apikey read from the URL path /forecast/{key}" in report
    assert "pirate-key" not in report

    def get(path: str, **headers: str) -> httpx.Response:
        return http.get(f"{envoy.url}{path}", headers=headers)

    # ip-restriction on single routes; the others stay open.
    assert get("/ip-denied").status_code == 403
    assert get("/ip-elsewhere").status_code == 403
    assert get("/ip-local").status_code == 200
    unrestricted = get("/unrestricted", **{"x-consumer-id": "forged", "x-consumer-username": "x"})
    assert unrestricted.status_code == 200
    # An open route: a client cannot pass itself off as a Kong consumer either.
    assert not {"x-consumer-id", "x-consumer-username"} & set(unrestricted.json()["headers"])
    # preserve_host false (Kong's default): the upstream gets the service's host.
    assert unrestricted.json()["headers"]["host"] == urlsplit(upstreams["blue"].url).netloc
    # X-Forwarded-For is written by the client: it does not get past the list.
    assert get("/ip-denied", **{"x-forwarded-for": "10.1.2.3"}).status_code == 403
    # cors: a preflight is answered for the allowed origin.
    preflight = http.options(
        f"{envoy.url}/cors",
        headers={
            "origin": "https://app.example.com",
            "access-control-request-method": "GET",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert preflight.headers["access-control-max-age"] == "600"
    other = http.options(
        f"{envoy.url}/cors",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers
    # request-transformer: add only when absent, replace only when present, append.
    sent = get("/transform", **{"x-from": "client", "x-tier": "silver", "x-drop": "1"})
    seen = sent.json()["headers"]
    assert seen["x-from"] == "client" and seen["x-tier"] == "gold" and seen["x-more"] == "1"
    assert "x-drop" not in seen
    bare = get("/transform").json()["headers"]
    assert bare["x-from"] == "kong" and "x-tier" not in bare
    # Service path /v1 joined with the (stripped) request path.
    assert get("/sp/a/b").json()["path"] == "/v1/a/b"
    assert get("/sq/a").json()["path"] == "/v1/sq/a"
    # regex_priority: the short regex wins over the longer one, as in Kong.
    assert get("/r/xyz").json()["service"] == "green"
    # The key inside the URL path (uri_captures): checked, and cut from the path.
    assert get("/forecast/wrong-key-0123456789/paris").status_code == 401
    ok = get("/forecast/pirate-key-0123456789/paris")
    assert ok.status_code == 200 and ok.json()["path"] == "/forecast/paris"
    assert ok.json()["headers"]["x-consumer-username"] == "pirate"


def test_upstream_health_checks_and_tags(
    import_kong: Importer,
    envoy: EnvoyProcess,
    admin: AdminClient,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    import_kong("upstream.yaml")
    service: dict[str, Any] = admin.http.get("/services/balanced").json()
    assert {"team-pool", "pool-tag", "kong-import"} <= set(service["tags"])
    assert service["policies"]["health_check"]["path"] == "/healthz"

    def served() -> set[str]:
        return {http.get(f"{envoy.url}/balanced").json()["service"] for _ in range(20)}

    wait_for(lambda: served() == {"blue", "green"}, timeout=20, what="both targets healthy")
    # A failing target: Kong's active checks take it out; Envoy's must too.
    upstreams["green"].answer_with(500)
    wait_for(lambda: served() == {"blue"}, timeout=20, what="green taken out")
    upstreams["green"].answer_with(200)
    try:
        wait_for(lambda: served() == {"blue", "green"}, timeout=20, what="green healthy again")
    except TimeoutError:
        raise AssertionError(httpx.get(f"{envoy.admin_url}/clusters").text) from None


def test_passive_health_checks_eject_a_failing_target(
    import_kong: Importer,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    blue, green = upstreams["blue"], upstreams["green"]
    green.answer_with(500)
    report = import_kong("passive.yaml")
    assert "passive checks eject a target after 3 consecutive every 5xx" in report
    before = green.requests
    # Round robin over both targets until green has failed 3 times in a row; then
    # Kong (and Envoy) send everything to blue. Counted at the upstreams.

    def only_blue() -> bool:
        seen_green, seen_blue = green.requests, blue.requests
        codes = {http.get(f"{envoy.url}/flaky").status_code for _ in range(20)}
        return codes == {200} and green.requests == seen_green and blue.requests == seen_blue + 20

    wait_for(only_blue, timeout=20, what="green ejected after consecutive 500s")
    # Ejected after its third consecutive failure (one more may be in flight when
    # the ejection lands).
    assert 3 <= green.requests - before <= 4, green.requests - before
    stats = httpx.get(f"{envoy.admin_url}/stats?filter=outlier_detection.ejections_enforced").text
    assert "cluster.flaky.outlier_detection.ejections_enforced_consecutive_5xx: 1" in stats, stats

    # Connection failures are counted apart (Kong's tcp_failures): the dead target
    # is ejected after 2, every request is answered by blue (retried on connect
    # failure, as Kong does).
    def dead_ejected() -> bool:
        http.get(f"{envoy.url}/half-down")
        stats = httpx.get(f"{envoy.admin_url}/stats?filter=half-down.outlier_detection").text
        return "ejections_enforced_consecutive_local_origin_failure: 1" in stats

    try:
        wait_for(dead_ejected, timeout=20, what="dead target ejected after connection failures")
    except TimeoutError:
        raise AssertionError(
            httpx.get(f"{envoy.admin_url}/stats?filter=cluster.half-down").text
        ) from None
    served = blue.requests
    assert all(http.get(f"{envoy.url}/half-down").status_code == 200 for _ in range(10))
    assert blue.requests == served + 10
