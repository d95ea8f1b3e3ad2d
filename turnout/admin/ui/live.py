"""What wakes the dashboard's pages: the store's change notifications, as SSE.

The app's change feed (`app.state.feed`, `turnout.storage.feed`) is the one that
`turnout serve` chose, so a commit by another replica wakes the pages too.
"""

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator

from turnout.models.change import ChangeFeed

MAX_CLIENTS = 100
"""Event streams served at once; more are answered 503."""
TICK_SECONDS = 1.0
"""Between "tick" events: proxy status and load reports change without a commit."""


class EventHub:
    """Bounds the open event streams.

    A stream holds its slot from the moment `open` hands it out: the check and the
    reservation happen with no await between them, so concurrent requests cannot
    overshoot the bound. Slots are the live stream objects (a WeakSet), so a stream
    whose client went away before its first byte (never started, never finished)
    frees its slot when it is dropped, as one that ran frees it when it ends.
    """

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients: {max_clients} must be at least 1")
        self.max_clients = max_clients
        self._open: weakref.WeakSet[AsyncGenerator[str, None]] = weakref.WeakSet()

    @property
    def clients(self) -> int:
        return len(self._open)

    def full(self) -> bool:
        return self.clients >= self.max_clients

    def open(self, feed: ChangeFeed) -> AsyncIterator[str] | None:
        """A new event stream holding a slot, or None when all slots are taken."""
        if self.full():
            return None
        stream = self._stream(feed)
        self._open.add(stream)
        return stream

    async def _stream(self, feed: ChangeFeed) -> AsyncGenerator[str, None]:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unsubscribe = feed.subscribe(lambda _commit: loop.call_soon_threadsafe(changed.set))
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
            unsubscribe()
