"""What wakes the dashboard's pages: the store's change notifications, as SSE.

`subscribe_changes` is the one place that knows how the store announces a commit,
so pointing the dashboard at another change feed changes only this function.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from turnout.storage.store import Store

MAX_CLIENTS = 100
"""Event streams served at once; more are answered 503."""
TICK_SECONDS = 1.0
"""Between "tick" events: proxy status and load reports change without a commit."""


def subscribe_changes(store: Store, wake: Callable[[int], None]) -> Callable[[], None]:
    """Call `wake(revision)` after every commit; returns the unsubscribe function."""
    return store.subscribe(wake)


class EventHub:
    """Bounds the open event streams."""

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        self.max_clients = max_clients
        self.clients = 0

    def full(self) -> bool:
        return self.clients >= self.max_clients

    async def stream(self, store: Store) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unsubscribe = subscribe_changes(store, lambda _rev: loop.call_soon_threadsafe(changed.set))
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
