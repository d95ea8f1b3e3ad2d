"""Fixed-window request counters in Redis, shared by every rate limit service replica.

A counter is one Redis key per (descriptor, window start), created with the
window's length as its TTL and incremented atomically, so any number of service
replicas and Envoys count together. Windows are aligned to the Unix epoch (a day
is a UTC day; a month is 30 days). Fixed windows allow up to twice the limit
across a window boundary; that is the usual trade for one round trip per decision.
"""

from dataclasses import dataclass

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


class RedisCounters:
    """Increments many counters in one round trip."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, timeout: float = 0.5) -> None:
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def hit(self, windows: list[Window], hits: int) -> list[int]:
        """Add `hits` to every window's counter; return the new counts, in order.

        Raises `redis.RedisError` (or OSError) when Redis cannot be reached.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            for window in windows:
                pipe.set(window.key, 0, ex=window.seconds, nx=True)
                pipe.incrby(window.key, hits)
            results = await pipe.execute()
        return [int(v) for v in results[1::2]]

    async def close(self) -> None:
        await self._redis.aclose()
