"""Fixed-window request counters in Redis, shared by every rate limit service replica.

A counter is one Redis key per (descriptor, window start), created with the
window's length as its TTL and incremented atomically, so any number of service
replicas and Envoys count together. Windows are aligned to the Unix epoch (a day
is a UTC day; a month is 30 days). Fixed windows allow up to twice the limit
across a window boundary; that is the usual trade for one round trip per decision.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

DEFAULT_PREFIX = "turnout:rl:"


@dataclass(frozen=True)
class Window:
    """One counter: which key, and how long its window lasts."""

    key: str
    """Redis key: prefix + counter identity + window start."""
    seconds: int
    """The window length (also the key's TTL)."""
    reset_in: int
    """Seconds until this window ends."""


def window_for(identity: str, seconds: int, now: float, prefix: str) -> Window:
    start = int(now) - int(now) % seconds
    return Window(f"{prefix}{identity}:{seconds}:{start}", seconds, start + seconds - int(now))


Hits = tuple[list[Window], int]
"""One caller's share of a batch: its windows and the hits to add to each."""


def merge(batch: list[Hits]) -> tuple[dict[str, int], dict[str, int]]:
    """One increment per counter for a whole batch (a busy consumer's calls share it):
    (key -> total hits, key -> window length)."""
    totals: dict[str, int] = {}
    lengths: dict[str, int] = {}
    for windows, hits in batch:
        for window in windows:
            totals[window.key] = totals.get(window.key, 0) + hits
            lengths[window.key] = window.seconds
    return totals, lengths


def split(batch: list[Hits], totals: dict[str, int], results: list[Any]) -> list[list[int]]:
    """Each caller's counts from the pipeline's results (SET NX, INCRBY per key): the
    count just after its own hits, in arrival order, as if sent one by one."""
    counts = {key: int(results[2 * i + 1]) - totals[key] for i, key in enumerate(totals)}
    out = []
    for windows, hits in batch:
        mine = []
        for window in windows:
            counts[window.key] += hits
            mine.append(counts[window.key])
        out.append(mine)
    return out


class RedisCounters:
    """Increments counters in Redis, batching concurrent callers into one round trip.

    Every `hit` made while a batch is being sent joins the next batch: under load
    one pipeline carries the counters of many decisions, which is what lets one
    core decide thousands of requests per second.
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, timeout: float = 0.5) -> None:
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._pending: list[tuple[list[Window], int, asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def hit(self, windows: list[Window], hits: int) -> list[int]:
        """Add `hits` to every window's counter; return the new counts, in order.

        Raises `redis.RedisError` (or OSError) when Redis cannot be reached.
        """
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((windows, hits, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            totals, lengths = merge([(w, h) for w, h, _ in batch])
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, total in totals.items():
                        pipe.set(key, 0, ex=lengths[key], nx=True)
                        pipe.incrby(key, total)
                    results = await pipe.execute()
            except Exception as exc:  # every caller of the batch gets the error
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            counts = split([(w, h) for w, h, _ in batch], totals, results)
            for (_, _, future), mine in zip(batch, counts, strict=True):
                if not future.done():
                    future.set_result(mine)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._redis.aclose()
