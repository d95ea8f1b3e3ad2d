"""Redis counters for grpcio's sync server: concurrent calls share one pipeline.

The handler threads of `turnout/ratelimit/server.py` each call `hit` and block; one
flusher thread takes everything queued since its last round trip and sends it as
one pipeline with one increment per counter (`counters.merge`/`split`, the same
arithmetic as the asyncio `RedisCounters`). Under load a pipeline carries the
counters of many decisions, so Redis round trips stay few however busy the port.

Bounds: at most `max_pending` calls wait (more get `BatchFull`, a RedisError, so the
call follows the failure mode), and a caller waits at most `timeout` twice over.
"""

import threading

import redis

from turnout.ratelimit.counters import DEFAULT_PREFIX, Hits, Window, merge, split


class BatchFull(redis.RedisError):
    """Too many calls already wait for Redis; this one is decided without it."""


class _Call:
    __slots__ = ("counts", "done", "error", "hits", "windows")

    def __init__(self, windows: list[Window], hits: int) -> None:
        self.windows = windows
        self.hits = hits
        self.done = threading.Event()
        self.counts: list[int] | None = None
        self.error: BaseException | None = None


class BatchedCounters:
    """Thread-safe fixed-window counters in Redis, batched by one flusher thread."""

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.5,
        max_pending: int = 10_000,
    ) -> None:
        self.prefix = prefix
        self._timeout = timeout
        self._max_pending = max_pending
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._pending: list[_Call] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ratelimit-redis", daemon=True)
        self._thread.start()

    def hit(self, windows: list[Window], hits: int) -> list[int]:
        """Add `hits` to every window's counter; return the new counts, in order.

        Raises `redis.RedisError` (or OSError) when Redis cannot be reached in time.
        """
        call = _Call(windows, hits)
        with self._wake:
            if self._closed:
                raise redis.ConnectionError("the rate limit service is stopping")
            if len(self._pending) >= self._max_pending:
                raise BatchFull(f"{len(self._pending)} calls already wait for Redis")
            self._pending.append(call)
            if len(self._pending) == 1:
                self._wake.notify()
        # A round trip takes at most `timeout` (socket timeout), and this call may wait
        # for the one in flight before its own.
        if not call.done.wait(2 * self._timeout + 0.1):
            raise redis.TimeoutError("no answer from Redis in time")
        if call.error is not None:
            raise call.error
        assert call.counts is not None
        return call.counts

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed and not self._pending:
                    return
                batch, self._pending = self._pending, []
            self._flush(batch)

    def _flush(self, batch: list[_Call]) -> None:
        hits: list[Hits] = [(c.windows, c.hits) for c in batch]
        totals, lengths = merge(hits)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, total in totals.items():
                pipe.set(key, 0, ex=lengths[key], nx=True)
                pipe.incrby(key, total)
            results = pipe.execute()
        except Exception as exc:  # every caller of the batch gets the error
            for call in batch:
                call.error = exc
                call.done.set()
            return
        for call, counts in zip(batch, split(hits, totals, results), strict=True):
            call.counts = counts
            call.done.set()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(2 * self._timeout + 1)
        self._redis.close()
