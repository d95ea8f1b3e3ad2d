"""The dashboard on a real HTTP server (uvicorn on loopback): the event stream bound,
and the Consumers page when Redis is down."""

import threading
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
import uvicorn
from conftest import TOKEN, FixedProxies

from turnout.admin.app import create_app
from turnout.ratelimit.usage import QuotaReader
from turnout.storage.store import Store
from turnout.testing.processes import free_port, wait_for

MAX_STREAMS = 2
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def server(store: Store, proxy_source: FixedProxies) -> Iterator[str]:
    """The admin app with at most MAX_STREAMS event streams and an unreachable Redis."""
    reader = QuotaReader(UNREACHABLE_REDIS)
    app = create_app(
        store, proxy_source, admin_token=TOKEN, quota_usage=reader, ui_event_streams=MAX_STREAMS
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, 10, "uvicorn")
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)
    reader.close()


def signed_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=5)
    answer = client.post("/ui/login", data={"token": TOKEN})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    return client


def test_the_stream_past_the_limit_gets_503_and_a_closed_one_frees_its_slot(server: str) -> None:
    with ExitStack() as stack:
        client = signed_in(server)
        stack.callback(client.close)
        streams = []
        for _ in range(MAX_STREAMS):
            stream = stack.enter_context(client.stream("GET", "/ui/events"))
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()  # kept: dropping the iterator closes the stream
            assert next(lines).startswith("retry:")
            streams.append((stream, lines))
        refused = client.get("/ui/events")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        assert f"at most {MAX_STREAMS}" in refused.json()["detail"]
        streams[0][0].close()  # the browser tab goes away

        def reopened() -> bool:
            with client.stream("GET", "/ui/events") as again:
                return again.status_code == 200

        wait_for(reopened, 10, "the closed stream's slot to be free")


def test_unsigned_event_stream_is_401(server: str) -> None:
    assert httpx.get(f"{server}/ui/events", timeout=5).status_code == 401


def test_consumers_page_renders_with_redis_down_and_says_unknown(server: str) -> None:
    client = signed_in(server)
    try:
        body = {"name": "acme", "limits": {"quota": [{"requests": 10, "per": "day"}]}}
        created = client.post("/consumers", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert created.status_code == 201, created.text
        page = client.get("/ui/consumers")
        assert page.status_code == 200
        assert 'data-used="unknown"' in page.text and "of 10 / day" in page.text
    finally:
        client.close()
