"""At most a few writes wait on the database at once; reads never queue behind them.

FastAPI runs every sync endpoint in one thread pool (40 threads). Writes serialize
on the database anyway (the revision row lock, or SQLite's write lock), so while
another process holds that lock every write blocks a thread for the lock timeout,
and 40 of them used to leave `/healthz` and every read waiting behind them.

This ASGI middleware admits at most `max_writers` writes into the app at once. The
next `max_waiting` wait here, on the event loop, holding no thread, for at most
`wait_s`; beyond that a write is answered 503 at once. A write refused here never
reached the database, so it can never commit later.
"""

import asyncio
import json
from collections import deque
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Requests that never write, so never wait here."""
MAX_WRITERS = 4
"""Writes running at once: enough to overlap auth and parsing with the one that holds
the database's write lock, few enough to leave the thread pool to reads."""
MAX_WAITING = 64
"""Writes queued behind them; a burst beyond that is refused at once."""
WAIT_S = 5.0
"""How long a queued write waits for its turn (the database's own lock timeout)."""


class WriteGate:
    """Bound the writes in flight; answer the rest 503 with `Retry-After`.

    The queue is a deque of futures handed a slot in order, rather than an
    `asyncio.Semaphore` under `wait_for`: a timeout that races the grant then
    cannot lose the slot (Python 3.11's `wait_for` can drop a result it cancelled).
    Everything runs on the event loop thread, so nothing here needs a lock.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_writers: int = MAX_WRITERS,
        max_waiting: int = MAX_WAITING,
        wait_s: float = WAIT_S,
    ) -> None:
        self.app = app
        self.max_writers = max_writers
        self.max_waiting = max_waiting
        self.wait_s = wait_s
        self._free = max_writers
        self._queue: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        why = await self._enter()
        if why is not None:
            await _busy(send, why)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._leave()

    async def _enter(self) -> str | None:
        """Take a slot, waiting at most `wait_s`; or say why not."""
        if self._free > 0:
            self._free -= 1
            return None
        if len(self._queue) >= self.max_waiting:
            return f"{len(self._queue)} writes are already waiting for the database"
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            await asyncio.wait([turn], timeout=self.wait_s)
        except BaseException:  # the request was cancelled (client gone): no slot leaks
            if turn.done():
                self._leave()
            else:
                self._queue.remove(turn)
            raise
        if turn.done():
            return None  # granted, possibly at the last moment: the slot is ours
        self._queue.remove(turn)
        turn.cancel()
        return f"no write finished within {self.wait_s:g} s"

    def _leave(self) -> None:
        """Hand the slot to the next waiter, or free it."""
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1


async def _busy(send: Send, why: str) -> None:
    body = json.dumps({"detail": f"database busy: {why}; nothing was written"}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
