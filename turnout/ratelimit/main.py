"""`turnout ratelimit`: the rate limit service alone, to scale it apart from `turnout serve`.

Point Envoys at it with `turnout bootstrap --ratelimit-address HOST:PORT`. It needs
only Redis: every descriptor carries its own limit. It answers over the lean HTTP/2
transport of `h2grpc` rather than grpcio's server, which is what lets one core make
well over 5,000 decisions per second (`bench/ratelimit_rps.py`).
"""

import asyncio
import logging
import signal
import sys

from turnout.envoy_bootstrap import split_host_port
from turnout.ratelimit.counters import DEFAULT_PREFIX, RedisCounters
from turnout.ratelimit.h2grpc import GrpcH2Server
from turnout.ratelimit.service import SHOULD_RATE_LIMIT, FailureMode, RateLimitService

log = logging.getLogger("turnout.ratelimit")

GRACE_SECONDS = 2.0


async def run_ratelimit(
    listen: str, redis_url: str | None, failure_mode: FailureMode, prefix: str | None = None
) -> None:
    host, port = split_host_port(listen)
    counters = RedisCounters(redis_url, prefix or DEFAULT_PREFIX) if redis_url else None
    service = RateLimitService(counters, failure_mode)
    server = GrpcH2Server({SHOULD_RATE_LIMIT: service.handle})
    try:
        await server.start(host, port)
    except OSError as exc:
        raise OSError(f"cannot listen for the rate limit service on {listen}: {exc}") from exc
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
