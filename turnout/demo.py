"""`turnout demo` (what `make run` starts): Turnout on SQLite, a real Envoy, two
demo upstreams and a route split 90/10 between them. Ctrl-C stops everything."""

import secrets
import signal
import sys
import threading
from pathlib import Path

from turnout.settings import current as current_settings
from turnout.testing.processes import (
    AdminClient,
    AdminError,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    http_ok,
    wait_for,
)

ADMIN_PORT, XDS_PORT, LISTENER_PORT, ENVOY_ADMIN_PORT = 8001, 18000, 10000, 9901

DECLARATION: list[tuple[str, dict[str, object]]] = [
    ("services", {"name": "legacy", "url": "http://127.0.0.1:8081", "tags": ["demo"]}),
    ("services", {"name": "modern", "url": "http://127.0.0.1:8082", "tags": ["demo"]}),
    ("routes", {"name": "api", "paths": ["/"], "service": "legacy", "tags": ["demo"]}),
    (
        "splits",
        {
            "name": "api-migration",
            "route": "api",
            "targets": [{"service": "legacy", "weight": 90}, {"service": "modern", "weight": 10}],
            "tags": ["demo"],
        },
    ),
]


def apply_demo_declaration(admin: AdminClient) -> None:
    """Create the demo entities, or put them back as declared if they exist."""
    for collection, body in DECLARATION:
        try:
            admin.create(collection, body)
        except AdminError as exc:
            if exc.response.status_code != 409:
                raise RuntimeError(f"demo declaration: {exc}") from None
            admin.write("PUT", f"/{collection}/{body['name']}", body)


def run_demo(database_url: str) -> int:
    env = current_settings()
    token = env.admin_token or secrets.token_urlsafe(24)
    # Without a secret key the demo could not create consumer keys (the README's key examples).
    secret_key = env.secret_key or secrets.token_urlsafe(32)
    logs = Path(".run")
    logs.mkdir(exist_ok=True)
    upstreams = [EchoUpstream("legacy", 8081), EchoUpstream("modern", 8082)]
    turnout = TurnoutProcess(
        database_url,
        token,
        ADMIN_PORT,
        XDS_PORT,
        log_path=logs / "turnout.log",
        env={"TURNOUT_SECRET_KEY": secret_key},
    )
    envoy = EnvoyProcess(
        "demo-envoy",
        turnout.xds_address,
        listener_port=LISTENER_PORT,
        admin_port=ENVOY_ADMIN_PORT,
        log_path=logs / "envoy.log",
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for upstream in upstreams:
            upstream.start()
        turnout.start()
        admin = AdminClient(turnout.admin_url, token)
        apply_demo_declaration(admin)
        admin.close()
        envoy.start()
        wait_for(lambda: http_ok(f"{envoy.url}/"), 10, "the demo route")
        print(_instructions(token), flush=True)
        stop.wait()
    except (OSError, RuntimeError, TimeoutError, AdminError) as exc:
        print(f"turnout demo: {exc} (logs in {logs}/)", file=sys.stderr)
        return 1
    finally:
        print("\nstopping Envoy, Turnout and the demo upstreams ...", file=sys.stderr)
        envoy.stop()
        turnout.stop()
        for upstream in upstreams:
            upstream.stop()
    return 0


def _instructions(token: str) -> str:
    admin = f"http://127.0.0.1:{ADMIN_PORT}"
    auth = f'-H "Authorization: Bearer {token}"'
    return f"""
Turnout demo is up.
  Envoy listener   http://127.0.0.1:{LISTENER_PORT}   (Envoy admin http://127.0.0.1:{ENVOY_ADMIN_PORT})
  Admin API        {admin}   (OpenAPI docs at {admin}/docs)
  Dashboard        {admin}/ui   (sign in with the admin token)
  Admin token      {token}

Send a request through Envoy (about 9 in 10 answer "legacy", 1 in 10 "modern"):
  curl -s http://127.0.0.1:{LISTENER_PORT}/hello
  for i in $(seq 100); do curl -s http://127.0.0.1:{LISTENER_PORT}/ | \\
    python3 -c 'import json,sys; print(json.load(sys.stdin)["service"])'; done | sort | uniq -c

Move all traffic to the new backend:
  curl -s -X PATCH {admin}/splits/api-migration {auth} \\
    -H 'Content-Type: application/json' -d '{{"targets": [{{"service": "legacy", "weight": 0}},
    {{"service": "modern", "weight": 100}}]}}'

See what the proxy runs:
  curl -s {admin}/proxies {auth}

Logs: .run/turnout.log and .run/envoy.log. Ctrl-C stops everything.
"""
