"""Write through replica A → first request served by an Envoy attached to replica B.

Two `turnout serve` on one PostgreSQL database (a fresh one, created and dropped),
an Envoy attached to B only, and an echo upstream. Each change is a new route
written through A; the clock starts when A's HTTP response arrives and stops when
the Envoy on B answers 200 on the new path. The same run through B itself (the
in-process feed) gives the baseline, so the difference is what LISTEN/NOTIFY adds.

    python bench/cross_replica.py --changes 100 \
        --server-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from results_io import RESULTS, write_results
from sqlalchemy import create_engine, make_url, text

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, TurnoutProcess

TOKEN = "bench-token"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def _measure(writer: AdminClient, envoy: httpx.Client, changes: int, prefix: str) -> list[float]:
    samples = []
    for i in range(changes):
        path = f"/{prefix}/{i}"
        writer.create("routes", {"name": f"{prefix}{i}", "paths": [path], "service": "bench"})
        start = time.perf_counter()
        while envoy.get(path).status_code != 200:
            pass
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _summary(kind: str, samples: list[float]) -> dict[str, object]:
    return {
        "benchmark": "cross_replica",
        "write_through": kind,
        "changes": len(samples),
        "p50_ms": round(statistics.median(samples), 2),
        "p90_ms": round(percentile(samples, 90), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples), 2),
    }


def run(changes: int, server_url: str) -> list[dict[str, object]]:
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"turnout_bench_{uuid.uuid4().hex[:8]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    procs: list[TurnoutProcess] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            upstream = EchoUpstream("bench").start()
            a = TurnoutProcess(url, TOKEN, log_path=Path(tmp) / "a.log").start()
            procs.append(a)
            b = TurnoutProcess(url, TOKEN, log_path=Path(tmp) / "b.log").start()
            procs.append(b)
            envoy = EnvoyProcess("bench-b", b.xds_address).start()
            admin_a, admin_b = AdminClient(a.admin_url, TOKEN), AdminClient(b.admin_url, TOKEN)
            try:
                revision = admin_a.create("services", {"name": "bench", "url": upstream.url})
                admin_b.wait_synced("bench-b", revision, timeout=30)
                with httpx.Client(base_url=envoy.url, timeout=5) as client:
                    via_b = _measure(admin_b, client, changes, "same")
                    via_a = _measure(admin_a, client, changes, "other")
            finally:
                envoy.stop()
                admin_a.close()
                admin_b.close()
                upstream.stop()
    finally:
        for proc in procs:
            proc.stop()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
    return [_summary("same replica (B)", via_b), _summary("other replica (A)", via_a)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument(
        "--server-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    results = run(args.changes, args.server_url)
    print(
        f"{'write through':<20} {'changes':>7} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}"
    )
    for r in results:
        print(
            f"{r['write_through']!s:<20} {r['changes']:>7} {r['p50_ms']:>8} {r['p90_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    write_results(results, RESULTS / "cross_replica.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
