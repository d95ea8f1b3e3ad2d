"""Admin write → first request through Envoy served by the new configuration.

Starts `turnout serve` (SQLite in a temp dir unless --database-url), N real Envoys
and an echo upstream, then makes --changes changes, each a new route. The clock
starts when the write's HTTP response arrives and stops when every Envoy answered
200 on the new path (polled back to back on keep-alive connections).

    python bench/write_to_served.py --changes 100 --envoys 1
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from results_io import RESULTS, percentile, write_results

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, TurnoutProcess


def run(changes: int, envoys: int, database_url: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{tmp}/bench.db"
        upstream = EchoUpstream("bench").start()
        turnout = TurnoutProcess(url, "bench-token", log_path=Path(tmp) / "turnout.log").start()
        admin = AdminClient(turnout.admin_url, "bench-token")
        proxies: list[EnvoyProcess] = []
        clients: list[httpx.Client] = []
        try:
            for i in range(envoys):
                proxies.append(EnvoyProcess(f"bench-{i}", turnout.xds_address).start())
                clients.append(httpx.Client(base_url=proxies[-1].url, timeout=5))
            revision = admin.create("services", {"name": "bench", "url": upstream.url})
            for p in proxies:
                admin.wait_synced(p.node_id, revision, timeout=30)
            samples: list[float] = []
            from_request: list[float] = []
            trivial = 0
            for i in range(changes):
                # Exact paths: a prefix `/bench/1` would already answer `/bench/10`.
                path = f"/bench/{i}"
                if any(c.get(path).status_code == 200 for c in clients):
                    trivial += 1
                sent = time.perf_counter()
                admin.create(
                    "routes", {"name": f"r{i}", "paths": [{"exact": path}], "service": "bench"}
                )
                start = time.perf_counter()
                pending = list(clients)
                while pending:
                    pending = [c for c in pending if c.get(path).status_code != 200]
                done = time.perf_counter()
                samples.append((done - start) * 1000)
                from_request.append((done - sent) * 1000)
        finally:
            for c in clients:
                c.close()
            for p in proxies:
                p.stop()
            admin.close()
            turnout.stop()
            upstream.stop()
    return {
        "benchmark": "write_to_served",
        "envoys": envoys,
        "changes": changes,
        "database": "postgresql" if database_url else "sqlite",
        "p50_ms": round(statistics.median(samples), 2),
        "p90_ms": round(percentile(samples, 90), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "from_request_p50_ms": round(statistics.median(from_request), 2),
        "from_request_p99_ms": round(percentile(from_request, 99), 2),
        "trivial_samples": trivial,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--envoys", type=int, nargs="+", default=[1])
    parser.add_argument("--database-url", help="default: SQLite in a temp dir")
    args = parser.parse_args()
    results = [run(args.changes, n, args.database_url) for n in args.envoys]
    print(
        f"{'envoys':>6} {'changes':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'req p50':>8} {'req p99':>8} {'trivial':>7}"
    )
    for r in results:
        print(
            f"{r['envoys']:>6} {r['changes']:>7} {r['p50_ms']:>8} {r['p90_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']:>8} {r['from_request_p50_ms']:>8} "
            f"{r['from_request_p99_ms']:>8} {r['trivial_samples']:>7}"
        )
    write_results(results, RESULTS / "write_to_served.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
