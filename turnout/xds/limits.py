"""Bounds on what one xDS client may make the server do, and the budgets that keep them.

A hostile or broken client must not be able to grow server state without bound or
hold the event loop, which the admin API shares. These are the bounds:

- requests are at most MAX_REQUEST_BYTES (gRPC refuses larger ones with
  RESOURCE_EXHAUSTED before any Python runs; its default is 4 MiB). 2 MiB fits a
  Delta reconnect listing 16,000 resources of one type with their SHA-256
  versions, and load reports of as many clusters;
- a request's `type_url` must be one Turnout serves (TYPE_ORDER). Any other closes
  the stream with INVALID_ARGUMENT naming it, as go-control-plane does, so a
  stream never holds more than len(TYPE_ORDER) subscriptions and nothing is
  stored for an unknown type;
- one subscription names at most MAX_NAMES_PER_SUBSCRIPTION resources (Delta:
  after applying the request; also `initial_resource_versions`);
- each stream has a budget of work (one unit per request plus one per name it
  carries): past it the stream's requests are read more slowly, which pushes back
  on the client through HTTP/2 flow control rather than dropping anything;
- a server holds at most MAX_STREAMS ADS streams, and one client certificate (under
  xDS mTLS) at most MAX_STREAMS_PER_IDENTITY of them: past either, a new stream is
  closed with RESOURCE_EXHAUSTED naming the bound (`start_server(max_streams=...,
  max_streams_per_identity=...)` changes them);
- a new stream must send its first request within FIRST_REQUEST_SECONDS (Envoy sends
  it at once), else it is closed with DEADLINE_EXCEEDED: a client that opens streams
  and sends nothing holds no handler for long;
- NACK log lines are limited per stream by `turnout/xds/nack.py` (`NackLog`); what
  it leaves out is counted (`turnout_xds_nack_logs_suppressed_total`).
"""

import time
from collections.abc import Callable

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from turnout.xds.snapshot import TYPE_ORDER
from turnout.xds.stream import ProtocolError, StreamState

MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_NAMES_PER_SUBSCRIPTION = 16_384
WORK_PER_SECOND = 50_000.0
"""Refill of a stream's budget: requests plus names per second (Envoy at startup
sends a handful of requests with at most one name per resource)."""
WORK_BURST = 100_000.0

MAX_STREAMS = 20_000
"""Open ADS streams per server (the 5,000-stream benchmark fits four times)."""
MAX_STREAMS_PER_IDENTITY = 5_000
"""Open ADS streams per client certificate under xDS mTLS."""
FIRST_REQUEST_SECONDS = 10.0

KNOWN_TYPES = frozenset(TYPE_ORDER)


class TooManyStreams(Exception):
    """A new stream would pass MAX_STREAMS or MAX_STREAMS_PER_IDENTITY."""


class NoFirstRequest(Exception):
    """A new stream sent nothing within FIRST_REQUEST_SECONDS."""


def check_request(state: StreamState, request: DiscoveryRequest | DeltaDiscoveryRequest) -> int:
    """Raise `ProtocolError` if the request breaks a bound; else return its work units."""
    type_url = request.type_url
    if type_url and type_url not in KNOWN_TYPES:
        raise ProtocolError(
            f"type_url {type_url[:200]!r} is not one Turnout serves "
            f"({', '.join(t.rsplit('.', 1)[-1] for t in TYPE_ORDER)})"
        )
    if isinstance(request, DeltaDiscoveryRequest):
        sub = state.subscriptions.get(type_url)
        held = len(sub.names) if sub is not None else 0
        names = len(request.resource_names_subscribe)
        if held + names > MAX_NAMES_PER_SUBSCRIPTION:
            raise ProtocolError(
                f"resource_names_subscribe: {type_url.rsplit('.', 1)[-1]} would name "
                f"{held + names} resources, more than {MAX_NAMES_PER_SUBSCRIPTION}"
            )
        if len(request.initial_resource_versions) > MAX_NAMES_PER_SUBSCRIPTION:
            raise ProtocolError(
                f"initial_resource_versions: {len(request.initial_resource_versions)} "
                f"entries, more than {MAX_NAMES_PER_SUBSCRIPTION}"
            )
        names += len(request.resource_names_unsubscribe) + len(request.initial_resource_versions)
    else:
        names = len(request.resource_names)
        if names > MAX_NAMES_PER_SUBSCRIPTION:
            raise ProtocolError(
                f"resource_names: {names} names, more than {MAX_NAMES_PER_SUBSCRIPTION}"
            )
    return 1 + names


class TokenBucket:
    """`rate` units per second up to `burst`; `delay(n)` says how long to wait for n."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst = rate, burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, units: float) -> float:
        """Spend `units` (going into debt if need be); seconds until back in credit."""
        self._refill()
        self._tokens -= units
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self, units: float = 1.0) -> bool:
        """Spend `units` only if there are that many."""
        self._refill()
        if self._tokens < units:
            return False
        self._tokens -= units
        return True
