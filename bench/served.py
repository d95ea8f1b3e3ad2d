"""What the write→served benchmarks share: Envoys + an upstream, distinct paths, the clock.

`write_to_served.py` (Turnout) and `envoy_floor.py` (a minimal ADS server pushing
Turnout's bytes) measure the same thing the same way, so their ratio means
something: the same declaration (one service `bench`, route `r{i}` on the exact
path `/bench/{i}`), the same Envoys, and the same stop condition (every Envoy
answered 200 on the new path, polled back to back on keep-alive connections).
"""

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from results_io import percentile

from turnout.testing.processes import EchoUpstream, EnvoyProcess

SERVICE = "bench"
SERVED_TIMEOUT_S = 30.0
"""A change not served within this long is a failure, not a slow sample."""


def bench_path(i: int) -> str:
    # Exact paths: a prefix `/bench/1` would already answer `/bench/10`.
    return f"/bench/{i}"


def route_body(i: int) -> dict[str, object]:
    """The admin API body of change `i` (and the RouteSpec the floor translates)."""
    return {"name": f"r{i}", "paths": [{"exact": bench_path(i)}], "service": SERVICE}


PRESENT_TAG = "present"


def present_bodies(n: int) -> list[dict[str, object]]:
    """`--present N`: N routes already declared before the first change (exact paths of
    their own, so none answers a change's path), to measure a write to a large
    declaration: each change then re-sends a RouteConfiguration of N + i routes. With
    them, the benchmarks also remove the routes they added, one by one (served: the
    path answers 404)."""
    return [
        {
            "name": f"p{i}",
            "paths": [{"exact": f"/present/{i}"}],
            "service": SERVICE,
            "tags": [PRESENT_TAG],
        }
        for i in range(n)
    ]


@dataclass
class Fleet:
    """N Envoys with a keep-alive client each, and the echo upstream they route to."""

    upstream: EchoUpstream
    proxies: list[EnvoyProcess] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    def add_envoys(self, n: int, xds_address: str, prefix: str = "bench") -> None:
        for i in range(n):
            self.proxies.append(EnvoyProcess(f"{prefix}-{i}", xds_address).start())
            self.clients.append(httpx.Client(base_url=self.proxies[-1].url, timeout=5))

    def already_served(self, path: str) -> bool:
        """True if some Envoy answers `path` before its route was written (a trivial sample)."""
        return any(c.get(path).status_code == 200 for c in self.clients)

    def wait_served(self, path: str, status: int = 200) -> float:
        """Poll every Envoy until each answered `status` on `path` (404: the route is
        gone); the perf_counter then."""
        deadline = time.perf_counter() + SERVED_TIMEOUT_S
        pending = list(self.clients)
        while pending:
            pending = [c for c in pending if c.get(path).status_code != status]
            if pending and time.perf_counter() > deadline:
                raise TimeoutError(f"{path}: {len(pending)} Envoys never answered {status}")
        return time.perf_counter()

    def close(self) -> None:
        for c in self.clients:
            c.close()
        for p in self.proxies:
            p.stop()
        self.upstream.stop()


@contextmanager
def fleet() -> Iterator[Fleet]:
    """An echo upstream now; Envoys once the caller knows its xDS address."""
    f = Fleet(EchoUpstream(SERVICE).start())
    try:
        yield f
    finally:
        f.close()


def summary(samples: list[float], prefix: str = "") -> dict[str, float]:
    """p50/p90/p99/max/mean of `samples` (ms), keys prefixed with `prefix`."""
    return {
        f"{prefix}p50_ms": round(statistics.median(samples), 2),
        f"{prefix}p90_ms": round(percentile(samples, 90), 2),
        f"{prefix}p99_ms": round(percentile(samples, 99), 2),
        f"{prefix}max_ms": round(max(samples), 2),
        f"{prefix}mean_ms": round(statistics.fmean(samples), 2),
    }
