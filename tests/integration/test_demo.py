"""The demo declaration `make run` applies: valid, idempotent, routed by Envoy."""

from collections import Counter

import httpx

from turnout.demo import DECLARATION, _instructions, apply_demo_declaration
from turnout.testing.processes import AdminClient, EnvoyProcess


def test_the_demo_declaration_applies_twice_and_reaches_envoy(
    admin: AdminClient, envoy: EnvoyProcess, http: httpx.Client
) -> None:
    apply_demo_declaration(admin)
    apply_demo_declaration(admin)  # a second `make run` on the same turnout.db
    for collection, body in DECLARATION:
        assert admin.http.get(f"/{collection}/{body['name']}").status_code == 200
    proxy = admin.proxy(envoy.node_id)
    assert proxy is not None
    admin.wait_synced(envoy.node_id, admin.revision())
    # The demo upstreams listen on fixed ports the test does not start: Envoy answers
    # 503 for them, but the route exists (not 404) and follows the split.
    statuses = Counter(http.get(f"{envoy.url}/").status_code for _ in range(20))
    assert 404 not in statuses


def test_the_demo_says_where_the_dashboard_is_and_how_to_sign_in() -> None:
    text = _instructions("tok-123")
    assert "http://127.0.0.1:8001/ui" in text and "sign in with the admin token" in text
    assert "Admin token      tok-123" in text
