"""The dashboard at /ui in a real headless Chromium, against `turnout serve` and Envoy.

Debian's chromium is driven by Playwright's Python package (Playwright's own
browser download does not work here); without /usr/bin/chromium these tests skip.
Screenshots of every page go to the test's tmp dir (artifacts/).
"""

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
LIVE_MS = 1000
"""A change must show on an open page within this, without a reload."""

if not CHROMIUM.exists():
    pytest.skip(
        f"the dashboard tests need {CHROMIUM} (apt-get install chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def turnout_xds_mode() -> str:
    """The dashboard does not depend on the xDS flavour; one is enough."""
    return "sotw"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            viewport={"width": 1400, "height": 800},
        )
        yield context
        context.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    path = tmp_path / "artifacts"
    path.mkdir()
    return path


def _sign_in(browser: Any, turnout: Any, token: str) -> Any:
    page = browser.new_page()
    page.goto(f"{turnout.admin_url}/ui/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{turnout.admin_url}/ui/")
    return page


def _services(admin: AdminClient, upstreams: dict[str, EchoUpstream]) -> None:
    for name, upstream in upstreams.items():
        admin.create("services", {"name": name, "url": upstream.url})
    admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})


def _plan_split(admin: AdminClient, steps: list[float], hold: float, min_requests: int) -> int:
    return admin.create(
        "splits",
        {
            "name": "api-move",
            "route": "api",
            "targets": [{"service": "blue", "weight": 1}, {"service": "green", "weight": 0}],
            "plan": {
                "target": "green",
                "baseline": "blue",
                "steps": steps,
                "hold_seconds": hold,
                "criteria": {"max_error_rate": 0.05, "min_requests": min_requests},
            },
        },
    )


def _weight(page: Any, service: str) -> str:
    return str(
        page.get_attribute(
            f'tr[data-split="api-move"] .seg[data-service="{service}"]', "data-weight"
        )
    )


def test_sign_in_and_a_split_changed_through_the_api_moves_its_bar_live(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    upstreams: dict[str, EchoUpstream],
    browser: Any,
    artifacts: Path,
) -> None:
    _services(admin, upstreams)
    _plan_split(admin, [10, 50, 100], 3600, 1)
    page = _sign_in(browser, turnout, turnout_token)
    assert _weight(page, "green") == "0"
    page.wait_for_function("window.turnoutEvents && window.turnoutEvents.readyState === 1")
    admin.write(
        "PUT",
        "/splits/api-move",
        {
            "name": "api-move",
            "route": "api",
            "targets": [{"service": "blue", "weight": 3}, {"service": "green", "weight": 1}],
        },
    )
    page.wait_for_selector(
        'tr[data-split="api-move"] .seg[data-service="green"][data-weight="1"]', timeout=LIVE_MS
    )
    assert page.url == f"{turnout.admin_url}/ui/"  # no reload, no navigation
    page.screenshot(path=artifacts / "board.png", full_page=True)
    for name in ("fleet", "history", "consumers"):
        page.goto(f"{turnout.admin_url}/ui/{name}")
        page.screenshot(path=artifacts / f"{name}.png", full_page=True)


class Traffic:
    """Requests through Envoy in a thread, counted by upstream."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                client.get(f"{self.url}/api/x")


@pytest.fixture
def traffic(envoy: EnvoyProcess) -> Iterator[Traffic]:
    loop = Traffic(envoy.url)
    loop.thread.start()
    yield loop
    loop.stop.set()
    loop.thread.join(10)


def test_a_plan_advanced_from_the_board_shifts_envoys_traffic(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    upstreams: dict[str, EchoUpstream],
    envoy: EnvoyProcess,
    browser: Any,
) -> None:
    _services(admin, upstreams)
    admin.wait_synced(envoy.node_id, _plan_split(admin, [50, 100], 3600, 1))
    page = _sign_in(browser, turnout, turnout_token)
    page.click('tr[data-split="api-move"] button[data-post$="/advance"]')
    page.wait_for_selector(
        'tr[data-split="api-move"] .seg[data-service="green"][data-weight="5000"]'
    )
    admin.wait_synced(envoy.node_id, admin.revision())
    before = {name: u.requests for name, u in upstreams.items()}
    with httpx.Client(timeout=5) as client:
        for _ in range(400):
            assert client.get(f"{envoy.url}/api/x").status_code == 200
    counted = {name: u.requests - before[name] for name, u in upstreams.items()}
    share = counted["green"] / sum(counted.values())
    assert 0.4 <= share <= 0.6, counted


def test_an_automatic_rollback_and_its_reason_show_on_the_board(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    upstreams: dict[str, EchoUpstream],
    envoy: EnvoyProcess,
    traffic: Traffic,
    browser: Any,
    artifacts: Path,
) -> None:
    _services(admin, upstreams)
    admin.wait_synced(envoy.node_id, _plan_split(admin, [50, 100], 3600, 5))
    page = _sign_in(browser, turnout, turnout_token)
    page.click('tr[data-split="api-move"] button[data-post$="/advance"]')
    page.wait_for_selector('tr[data-split="api-move"] .status.running')
    upstreams["green"].answer_with(500)
    cell = 'tr[data-split="api-move"] td.rollback'
    wait_for(lambda: "error rate" in page.inner_text(cell), 30, "the rollback on the board")
    assert "above the ceiling 5.0%" in page.inner_text(cell)
    assert page.inner_text('tr[data-split="api-move"] .status') == "rolled_back"
    page.screenshot(path=artifacts / "board-rolled-back.png", full_page=True)


def test_during_a_freeze_rollback_works_and_other_writes_show_423(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    upstreams: dict[str, EchoUpstream],
    browser: Any,
    artifacts: Path,
) -> None:
    _services(admin, upstreams)
    _plan_split(admin, [10, 50, 100], 3600, 1)
    admin.write("POST", "/splits/api-move/advance")
    page = _sign_in(browser, turnout, turnout_token)
    page.fill("form.freeze-form input[name=reason]", "release night")
    page.click("form.freeze-form button")
    page.wait_for_selector(".banner", timeout=LIVE_MS * 2)
    assert "release night" in page.inner_text(".banner")
    page.click('tr[data-split="api-move"] button[data-post$="/promote"]')
    page.wait_for_selector("#toast.bad")
    assert page.inner_text("#toast").startswith("423 frozen:")
    page.screenshot(path=artifacts / "board-frozen.png", full_page=True)
    page.click('tr[data-split="api-move"] button[data-post$="/rollback"]')
    page.wait_for_selector('tr[data-split="api-move"] .status.rolled_back')
    split = admin.http.get("/splits/api-move").json()
    assert {t["service"]: t["weight"] for t in split["targets"]}["green"] == 0
    events = admin.http.get("/audit", params={"entity": "split/api-move"}).json()
    assert events[0]["actor"] == "admin" and "dashboard" in events[0]["reason"]


def test_a_viewer_sees_no_write_controls_and_forged_or_csrf_less_writes_get_403(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    upstreams: dict[str, EchoUpstream],
    browser: Any,
) -> None:
    _services(admin, upstreams)
    _plan_split(admin, [10, 50, 100], 3600, 1)
    viewer_token = admin.http.post("/tokens", json={"name": "vera", "role": "viewer"}).json()[
        "token"
    ]
    page = _sign_in(browser, turnout, viewer_token)
    assert page.inner_text("header .who") == "vera · viewer"
    assert page.query_selector_all(".write") == []
    assert page.query_selector('tr[data-split="api-move"]') is not None
    csrf = page.get_attribute('meta[name="csrf-token"]', "content")
    url = f"{turnout.admin_url}/ui/splits/api-move/advance"
    forged = page.request.post(url, headers={"X-CSRF-Token": csrf})
    assert forged.status == 403 and "needs role operator" in forged.json()["detail"]
    browser.clear_cookies()
    admin_page = _sign_in(browser, turnout, turnout_token)
    assert admin_page.query_selector_all("button.write")
    no_csrf = admin_page.request.post(url)
    assert no_csrf.status == 403 and "X-CSRF-Token" in no_csrf.json()["detail"]
    assert admin.http.get("/splits/api-move").json()["plan_state"] is None


SECRET_KEY_LIKE = "tk_Sup3rSecretV4lue99"
STRICT_RUNTIME = {"re2.max_program_size.error_level": 8}


def test_a_nacked_proxy_shows_envoys_message_redacted(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    start_envoy: Callable[..., EnvoyProcess],
    upstreams: dict[str, EchoUpstream],
    browser: Any,
    artifacts: Path,
) -> None:
    envoy = start_envoy("strict-envoy", runtime=STRICT_RUNTIME)
    _services(admin, upstreams)
    regex = f"/v[0-9]+/{SECRET_KEY_LIKE}/[a-z]+"
    admin.create("routes", {"name": "fancy", "paths": [{"regex": regex}], "service": "green"})
    wait_for(lambda: bool((admin.proxy(envoy.node_id) or {}).get("quarantined")), 15, "the NACK")
    page = _sign_in(browser, turnout, turnout_token)
    page.goto(f"{turnout.admin_url}/ui/fleet")
    row = page.inner_text(f'tr[data-node="{envoy.node_id}"]')
    assert "NACKED" in row and "program size" in row
    assert "tk_[redacted]" in row and SECRET_KEY_LIKE not in page.content()
    page.screenshot(path=artifacts / "fleet-nacked.png", full_page=True)


def test_sign_out_clears_the_cookie_and_the_old_session_no_longer_works(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    browser: Any,
) -> None:
    page = _sign_in(browser, turnout, turnout_token)
    for path in ("/ui/fleet", "/ui/history", "/ui/consumers", "/ui/"):
        page.goto(f"{turnout.admin_url}{path}")
        assert page.is_visible("header form.logout button"), path
    (old,) = [c["value"] for c in browser.cookies() if c["name"] == "turnout_session"]
    page.click("header form.logout button")
    page.wait_for_url(f"{turnout.admin_url}/ui/login")
    assert [c for c in browser.cookies() if c["name"] == "turnout_session"] == []
    page.goto(f"{turnout.admin_url}/ui/")
    assert page.url == f"{turnout.admin_url}/ui/login"
    # The old cookie value, sent again by hand, is signed out on the server too.
    with httpx.Client(base_url=turnout.admin_url, timeout=5) as client:
        client.cookies.set("turnout_session", old, path="/ui")
        assert client.get("/ui/").headers.get("location") == "/ui/login"
        assert client.get("/ui/events").status_code == 401


def test_an_admin_restores_a_revision_from_history_and_envoy_follows(
    admin: AdminClient,
    turnout: Any,
    turnout_token: str,
    upstreams: dict[str, EchoUpstream],
    envoy: EnvoyProcess,
    browser: Any,
    artifacts: Path,
) -> None:
    _services(admin, upstreams)  # route api → blue
    to_blue = admin.revision()
    admin.write("PUT", "/routes/api", {"name": "api", "paths": ["/api"], "service": "green"})
    admin.wait_synced(envoy.node_id, admin.revision())
    with httpx.Client(timeout=5) as client:
        assert client.get(f"{envoy.url}/api/x").headers["x-upstream"] == "green"
    viewer_token = admin.http.post("/tokens", json={"name": "vera", "role": "viewer"}).json()[
        "token"
    ]
    viewer = _sign_in(browser, turnout, viewer_token)
    viewer.goto(f"{turnout.admin_url}/ui/history")
    assert viewer.query_selector_all("button.restore") == []
    csrf = viewer.get_attribute('meta[name="csrf-token"]', "content")
    forged = viewer.request.post(
        f"{turnout.admin_url}/ui/revisions/{to_blue}/restore", headers={"X-CSRF-Token": csrf}
    )
    assert forged.status == 403 and "needs role admin" in forged.json()["detail"]
    assert admin.http.get("/routes/api").json()["service"] == "green"
    browser.clear_cookies()
    page = _sign_in(browser, turnout, turnout_token)
    page.goto(f"{turnout.admin_url}/ui/history")
    page.wait_for_function("window.turnoutEvents && window.turnoutEvents.readyState === 1")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f'button.restore[data-post="/ui/revisions/{to_blue}/restore"]')
    page.wait_for_selector("#toast.ok")
    wait_for(lambda: admin.http.get("/routes/api").json()["service"] == "blue", 5, "the restore")
    restored = admin.revision()
    page.wait_for_selector(f"h2:has-text('current revision {restored}')", timeout=LIVE_MS * 2)
    assert f"restore revision {to_blue} (dashboard)" in page.inner_text("table.timeline")
    admin.wait_synced(envoy.node_id, restored)
    with httpx.Client(timeout=5) as client:
        assert client.get(f"{envoy.url}/api/x").headers["x-upstream"] == "blue"
    page.screenshot(path=artifacts / "history.png", full_page=True)


QUOTA_USED = 7


def test_the_consumers_page_shows_quota_used_against_the_limit(
    database_url: str,
    turnout_token: str,
    turnout_env: dict[str, str],
    redis_env: dict[str, str],
    upstreams: dict[str, EchoUpstream],
    browser: Any,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    """Requests with acme's key through a real Envoy, counted by the real rate limit
    service in real Redis: the page shows that many used of the day's limit."""
    turnout = TurnoutProcess(
        database_url,
        turnout_token,
        log_path=tmp_path / "turnout.log",
        env={**turnout_env, **redis_env},
    ).start()
    admin = AdminClient(turnout.admin_url, turnout_token)
    envoy = EnvoyProcess("envoy-1", turnout.xds_address, log_path=tmp_path / "envoy.log")
    try:
        envoy.start()
        admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
        quota = {"quota": [{"requests": 100, "per": "day"}]}
        admin.create("consumers", {"name": "acme", "limits": quota})
        admin.create("consumers", {"name": "idle", "limits": quota})
        key = admin.http.post("/consumers/acme/keys", json={}).json()["key"]
        admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue", "auth": {}})
        admin.wait_synced(envoy.node_id, admin.revision())
        with httpx.Client(base_url=envoy.url, timeout=5) as client:
            for _ in range(QUOTA_USED):
                answer = client.get("/api/x", headers={"apikey": key})
                assert answer.status_code == 200, answer.text
        page = _sign_in(browser, turnout, turnout_token)
        page.goto(f"{turnout.admin_url}/ui/consumers")
        acme = page.inner_text("tr:has(td.name:text-is('acme')) .quota")
        assert f"{QUOTA_USED} used of 100 / day" in acme, acme
        idle = page.inner_text("tr:has(td.name:text-is('idle')) .quota")
        assert "0 used of 100 / day" in idle, idle
        assert key not in page.content()
        page.screenshot(path=artifacts / "consumers.png", full_page=True)
    finally:
        envoy.stop()
        admin.close()
        turnout.stop()
