"""What wakes the dashboard's pages: the store's change notifications, as SSE.

The app's change feed (`app.state.feed`, `turnout.storage.feed`) is the one that
`turnout serve` chose, so a commit by another replica wakes the pages too.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from turnout.storage.feed import ChangeFeed

MAX_CLIENTS = 100
"""Event streams served at once; more are answered 503."""
TICK_SECONDS = 1.0
"""Between "tick" events: proxy status and load reports change without a commit."""


class EventHub:
    """Bounds the open event streams."""

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        self.max_clients = max_clients
        self.clients = 0

    def full(self) -> bool:
        return self.clients >= self.max_clients

    async def stream(self, feed: ChangeFeed) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unsubscribe = feed.subscribe(lambda _commit: loop.call_soon_threadsafe(changed.set))
        self.clients += 1
        try:
            yield "retry: 1000\n\n"
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), TICK_SECONDS)
                if changed.is_set():
                    changed.clear()
                    yield "event: change\ndata: {}\n\n"
                else:
                    yield "event: tick\ndata: {}\n\n"
        finally:
            self.clients -= 1
            unsubscribe()
