"""Dashboard pages with 50 splits and 100 connected proxies: render time per page.

Starts `turnout serve` on SQLite, declares 50 plans (two services, a route and a
split each) and 50 consumers with two quotas each, connects 100 fake SotW proxies
(bench/ads_load.py's) and, while they
stay connected, signs in to /ui and fetches every page `--rounds` times. The time
is taken around each request on loopback, so it is an upper bound of the
server-side render time (the goal: under 200 ms per page). With `--redis-url` (or
TURNOUT_REDIS_URL) the Consumers page reads the quota counters from that Redis.

    .venv/bin/python bench/ui_pages.py --splits 50 --proxies 100 --rounds 20
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from ads_load import Fleet, fake_proxy, make_channels
from envoy.service.discovery.v3 import ads_pb2_grpc
from results_io import RESULTS, percentile, write_results

from turnout.testing.processes import AdminClient, TurnoutProcess

TOKEN = "ui-bench-token"
PAGES = ["/ui/", "/ui/fleet", "/ui/history", "/ui/consumers"]
GOAL_MS = 200.0


def declare(admin: AdminClient, splits: int, consumers: int) -> None:
    for i in range(splits):
        for side in ("old", "new"):
            admin.create("services", {"name": f"s{i}-{side}", "url": f"http://10.0.{i}.1:80"})
        admin.create("routes", {"name": f"r{i}", "paths": [f"/r{i}"], "service": f"s{i}-old"})
        admin.create(
            "splits",
            {
                "name": f"move-{i}",
                "route": f"r{i}",
                "targets": [
                    {"service": f"s{i}-old", "weight": 1},
                    {"service": f"s{i}-new", "weight": 0},
                ],
                "plan": {"target": f"s{i}-new", "baseline": f"s{i}-old", "steps": [1, 10, 50, 100]},
            },
        )
        if i % 2:
            admin.write("POST", f"/splits/move-{i}/advance")
    for i in range(consumers):
        quota = [{"requests": 1000, "per": "day"}, {"requests": 100, "per": "hour"}]
        admin.create("consumers", {"name": f"c{i}", "limits": {"quota": quota}})


def measure(url: str, rounds: int) -> dict[str, dict[str, float]]:
    with httpx.Client(base_url=url, timeout=30) as client:
        signed_in = client.post("/ui/login", data={"token": TOKEN})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/"
        out = {}
        for page in PAGES:
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                response = client.get(page)
                times.append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
                assert "<main" in response.text, page
            out[page] = {
                "p50_ms": statistics.median(times),
                "p95_ms": percentile(times, 95),
                "max_ms": max(times),
                "bytes": len(response.content),
            }
        return out


async def run(turnout: TurnoutProcess, proxies: int, rounds: int) -> dict[str, dict[str, float]]:
    fleet = Fleet(proxies, None)
    channels = make_channels(turnout.xds_address, proxies, 0)
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channels[0])
    tasks = [asyncio.create_task(fake_proxy(i, stub, fleet, 10000 + i)) for i in range(proxies)]
    try:
        await asyncio.wait_for(fleet.all_synced.wait(), 120)
        return await asyncio.to_thread(measure, turnout.admin_url, rounds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=50)
    parser.add_argument("--proxies", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--consumers", type=int, default=50, help="each with two quotas")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TURNOUT_REDIS_URL"),
        help="the Consumers page reads quota counters here (default: TURNOUT_REDIS_URL)",
    )
    parser.add_argument("--out", default=str(RESULTS / "ui_pages.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        turnout = TurnoutProcess(
            f"sqlite:///{tmp}/ui.db",
            TOKEN,
            log_path=Path(tmp) / "turnout.log",
            env={"TURNOUT_REDIS_URL": args.redis_url} if args.redis_url else {},
        ).start()
        admin = AdminClient(turnout.admin_url, TOKEN)
        try:
            declare(admin, args.splits, args.consumers)
            pages = asyncio.run(run(turnout, args.proxies, args.rounds))
        finally:
            admin.close()
            turnout.stop()
    redis = "quota counters from Redis" if args.redis_url else "no Redis"
    print(
        f"{args.splits} splits, {args.proxies} proxies connected, "
        f"{args.consumers} consumers ({redis}), {args.rounds} rounds"
    )
    for page, fig in pages.items():
        verdict = "ok" if fig["p95_ms"] < GOAL_MS else f"ABOVE {GOAL_MS:g} ms"
        print(
            f"  {page:15} p50 {fig['p50_ms']:6.1f} ms  p95 {fig['p95_ms']:6.1f} ms  "
            f"max {fig['max_ms']:6.1f} ms  {fig['bytes']:7d} B  {verdict}"
        )
    write_results(
        {"splits": args.splits, "proxies": args.proxies, "rounds": args.rounds, "pages": pages},
        args.out,
    )
    return 0 if all(f["p95_ms"] < GOAL_MS for f in pages.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
