"""`turnout ratelimit`: the rate limit service alone, to scale it apart from `turnout serve`.

Point Envoys at it with `turnout bootstrap --ratelimit-address HOST:PORT`. It needs
only Redis: every descriptor carries its own limit. It answers over the lean HTTP/2
transport of `h2grpc` rather than grpcio's server, which is what lets one core make
well over 5,000 decisions per second (`bench/ratelimit_rps.py`).

With `--tls-cert/--tls-key [--client-ca]` it answers over TLS (`h2tls`): Envoys
bootstrapped with mTLS to Turnout (`--xds-ca/--client-cert/--client-key`) call it
over TLS with the same client certificate and expect a server certificate, signed
by the `--xds-ca` CA, that names the rate limit host.
"""

import asyncio
import logging
import signal
import sys
from pathlib import Path
from ssl import CERT_REQUIRED, SSLContext

from turnout.envoy_bootstrap import split_host_port
from turnout.ratelimit.counters import DEFAULT_PREFIX, RedisCounters
from turnout.ratelimit.h2grpc import GrpcH2Server
from turnout.ratelimit.h2tls import server_context
from turnout.ratelimit.service import SHOULD_RATE_LIMIT, FailureMode, RateLimitService

log = logging.getLogger("turnout.ratelimit")

GRACE_SECONDS = 2.0


def tls_context(cert: Path | None, key: Path | None, client_ca: Path | None) -> SSLContext | None:
    """The server context for `--tls-cert/--tls-key/--client-ca`, None without them;
    ValueError names the option that is missing or whose file cannot be read."""
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if cert is None or key is None:
        if client_ca is not None:
            raise ValueError("--client-ca needs --tls-cert and --tls-key")
        return None
    for option, path in (("--tls-cert", cert), ("--tls-key", key), ("--client-ca", client_ca)):
        if path is None:
            continue
        try:
            path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    return server_context(cert, key, client_ca)


async def run_ratelimit(
    listen: str,
    redis_url: str | None,
    failure_mode: FailureMode,
    prefix: str | None = None,
    tls: SSLContext | None = None,
) -> None:
    host, port = split_host_port(listen)
    counters = RedisCounters(redis_url, prefix or DEFAULT_PREFIX) if redis_url else None
    service = RateLimitService(counters, failure_mode)
    server = GrpcH2Server({SHOULD_RATE_LIMIT: service.handle})
    try:
        await server.start(host, port, ssl=tls)
    except OSError as exc:
        raise OSError(f"cannot listen for the rate limit service on {listen}: {exc}") from exc
    if tls is None:
        transport = "plaintext"
    elif tls.verify_mode == CERT_REQUIRED:
        transport = "TLS, client certificates required"
    else:
        transport = "TLS"
    print(
        f"turnout: rate limit service on {listen} ({transport}; "
        f"Redis: {'set' if redis_url else 'NOT SET'}, failing {failure_mode})",
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
