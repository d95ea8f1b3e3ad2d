"""1,000 routes created in one bulk change (`POST /config`), served by a real Envoy.

The clock starts when the POST's response arrives and stops when a probe route
answers 200 through Envoy. A route configuration is applied atomically, so then
every new route is served; the script checks all of them afterwards (untimed).

    python bench/bulk_routes.py --routes 1000 --repeat 5
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from results_io import RESULTS, write_results

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, TurnoutProcess


def document(upstream_url: str, batch: int, routes: int) -> dict[str, object]:
    """The whole `bulk`-tagged part of the declaration: one service, `routes` routes."""
    return {
        "_format_version": "1",
        "services": [{"name": "bulk", "url": upstream_url, "tags": ["bulk"]}],
        "routes": [
            {
                "name": f"b{batch}-{i}",
                "paths": [f"/b{batch}/{i}"],
                "service": "bulk",
                "tags": ["bulk"],
            }
            for i in range(routes)
        ],
    }


def run(routes: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        upstream = EchoUpstream("bulk").start()
        turnout = TurnoutProcess(
            f"sqlite:///{tmp}/bench.db", "bench-token", log_path=Path(tmp) / "turnout.log"
        ).start()
        admin = AdminClient(turnout.admin_url, "bench-token")
        envoy = EnvoyProcess("bulk-envoy", turnout.xds_address).start()
        samples, commit_ms = [], []
        try:
            with httpx.Client(base_url=envoy.url, timeout=5) as http:
                for batch in range(repeat):
                    body = document(upstream.url, batch, routes)
                    sent = time.perf_counter()
                    response = admin.http.post("/config", params={"select_tag": "bulk"}, json=body)
                    start = time.perf_counter()
                    response.raise_for_status()
                    commit_ms.append((start - sent) * 1000)
                    probe = f"/b{batch}/{routes - 1}"
                    while http.get(probe).status_code != 200:
                        pass
                    samples.append((time.perf_counter() - start) * 1000)
                    missing = [
                        i for i in range(routes) if http.get(f"/b{batch}/{i}").status_code != 200
                    ]
                    if missing:
                        raise AssertionError(f"batch {batch}: {len(missing)} routes not served")
        finally:
            envoy.stop()
            admin.close()
            turnout.stop()
            upstream.stop()
    return {
        "benchmark": "bulk_routes",
        "routes_per_change": routes,
        "changes": repeat,
        "post_config_ms_median": round(statistics.median(commit_ms), 1),
        "commit_to_served_ms_median": round(statistics.median(samples), 1),
        "commit_to_served_ms_max": round(max(samples), 1),
        "samples_ms": [round(s, 1) for s in samples],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = run(args.routes, args.repeat)
    print(f"{'routes':>7} {'changes':>7} {'POST ms':>8} {'served p50 ms':>14} {'max ms':>8}")
    print(
        f"{result['routes_per_change']:>7} {result['changes']:>7} "
        f"{result['post_config_ms_median']:>8} {result['commit_to_served_ms_median']:>14} "
        f"{result['commit_to_served_ms_max']:>8}"
    )
    write_results(result, RESULTS / "bulk_routes.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
