"""`turnout ratelimit`: the rate limit service alone, to scale it apart from `turnout serve`.

Point Envoys at it with `turnout bootstrap --ratelimit-address HOST:PORT`. It needs
only Redis: every descriptor carries its own limit, so any number of processes and
hosts share the counters. `--workers N` runs N processes on the one port
(`workers.py`, SO_REUSEPORT): the kernel spreads connections over them.

With `--tls-cert/--tls-key [--client-ca [--client-allow-list]]` it answers over TLS:
Envoys bootstrapped with mTLS to Turnout (`--xds-ca/--client-cert/--client-key`)
call it with the same client certificate and expect a server certificate, signed
by the `--xds-ca` CA, that names the rate limit host.
"""

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from turnout.ratelimit.batch import BatchedCounters
from turnout.ratelimit.callers import load_allow_list
from turnout.ratelimit.counters import DEFAULT_PREFIX
from turnout.ratelimit.server import CertCheck, RateLimitServer, server_credentials
from turnout.ratelimit.service import FailureMode, RateLimitService

log = logging.getLogger("turnout.ratelimit")

GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class Security:
    """TLS for the port, and who may call."""

    credentials: grpc.ServerCredentials | None = None
    """None: plaintext."""
    describe: str = "plaintext"
    """For the start-up line."""
    allow: CertCheck | None = None


def min_cpu() -> int:
    """The first CPU this process may run on."""
    return min(os.sched_getaffinity(0))


def security(
    cert: Path | None,
    key: Path | None,
    client_ca: Path | None,
    allow_list: Path | None = None,
) -> Security:
    """From `--tls-cert/--tls-key/--client-ca/--client-allow-list`; ValueError names
    the option that is missing or whose file cannot be used."""
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if allow_list is not None and client_ca is None:
        raise ValueError("--client-allow-list needs --client-ca (client certificates)")
    if cert is None or key is None:
        if client_ca is not None:
            raise ValueError("--client-ca needs --tls-cert and --tls-key")
        return Security()
    credentials = server_credentials(cert, key, client_ca)
    if client_ca is None:
        return Security(credentials, "TLS")
    allow = load_allow_list(allow_list) if allow_list is not None else None
    describe = "TLS, client certificates required" + (", allow-list" if allow else "")
    return Security(credentials, describe, allow)


def run_ratelimit(
    listen: str,
    redis_url: str | None,
    failure_mode: FailureMode,
    prefix: str | None = None,
    secure: Security | None = None,
    reuse_port: bool = False,
    stop: threading.Event | None = None,
    cpu: int | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set); OSError if it cannot listen.

    `cpu`: run on that CPU only. Python threads hand the GIL to each other on every
    call here (grpcio's threads, the handlers, the Redis pipeline); across two cores
    each handoff crosses caches and the process made 2,600 decisions/s on 9.7
    CPU-seconds per 8 s, pinned 5,500/s on one core (bench/ratelimit_rps.py)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before any thread starts: they inherit it
    secure = secure or Security()
    counters = BatchedCounters(redis_url, prefix or DEFAULT_PREFIX) if redis_url else None
    service = RateLimitService(counters, failure_mode)
    server = RateLimitServer(service, secure.allow)
    try:
        server.start(listen, secure.credentials, reuse_port)
    except OSError as exc:
        if counters is not None:
            counters.close()
        raise OSError(f"cannot listen for the rate limit service on {listen}: {exc}") from exc
    print(
        f"turnout: rate limit service on {listen} ({secure.describe}; "
        f"Redis: {'set' if redis_url else 'NOT SET'}, failing {failure_mode})",
        file=sys.stderr,
        flush=True,
    )
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):  # a timed wait: signal handlers run between waits
            pass
    finally:
        server.stop(GRACE_SECONDS)
        if counters is not None:
            counters.close()
