"""`turnout ratelimit`: the rate limit service alone, to scale it apart from `turnout serve`.

Point Envoys at it with `turnout bootstrap --ratelimit-address HOST:PORT`. It needs
only Redis: every descriptor carries its own limit.
"""

import asyncio
import logging
import signal
import sys

import grpc

from turnout.ratelimit.counters import DEFAULT_PREFIX, RedisCounters
from turnout.ratelimit.service import FailureMode, RateLimitService, add_rate_limit_service

log = logging.getLogger("turnout.ratelimit")

GRACE_SECONDS = 2.0


async def run_ratelimit(
    listen: str, redis_url: str | None, failure_mode: FailureMode, prefix: str | None = None
) -> None:
    counters = RedisCounters(redis_url, prefix or DEFAULT_PREFIX) if redis_url else None
    server = grpc.aio.server()
    add_rate_limit_service(server, RateLimitService(counters, failure_mode))
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"cannot listen for the rate limit service on {listen}")
    await server.start()
    print(
        f"turnout: rate limit service on {listen} (Redis: {'set' if redis_url else 'NOT SET'}, "
        f"failing {failure_mode})",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(GRACE_SECONDS)
        if counters is not None:
            await counters.close()
