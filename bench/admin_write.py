"""Admin write server time: one single-entity write on SQLite, measured inside the app.

Builds the admin app in-process (`create_app` on a Store over SQLite in a temp
dir) and drives it straight through ASGI (httpx's ASGITransport: no sockets, no
server). An ASGI wrapper times each request from the app receiving it to the last
byte of its response: the server's own time, which a client would see plus the
network. Timed: `POST /routes` (a new route each) and `PATCH /splits/canary`
(weights flipped each time), --writes of each after a warm-up.

    python bench/admin_write.py --writes 500
    python bench/admin_write.py --writes 500 --profile   # cProfile's top functions
"""

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from typing import Any

import httpx
from results_io import RESULTS, write_results
from served import summary

from turnout.admin.app import create_app
from turnout.models.proxy_status import ProxyStatus
from turnout.storage.store import Store

TOKEN = "bench-token"
WARMUP = 20


class NoProxies:
    """A `ProxyStatusSource` with no proxy connected (writes never ask it)."""

    def proxies(self) -> list[ProxyStatus]:
        return []

    def proxy_config(self, node_id: str) -> dict[str, list[dict[str, Any]]] | None:
        return None


class ServerTime:
    """ASGI wrapper: milliseconds from each HTTP request's arrival to its response's end."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.samples: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.samples.append((time.perf_counter() - start) * 1000)

        await self.app(scope, receive, timed_send)


async def _writes(client: httpx.AsyncClient, kind: str, first: int, n: int) -> None:
    for i in range(first, first + n):
        if kind == "routes":
            body = {"name": f"r{i}", "paths": [{"exact": f"/w/{i}"}], "service": "a"}
            response = await client.post("/routes", json=body)
        else:
            weights = (90, 10) if i % 2 else (10, 90)
            targets = [
                {"service": s, "weight": w} for s, w in zip(("a", "b"), weights, strict=True)
            ]
            response = await client.patch("/splits/canary", json={"targets": targets})
        if response.status_code >= 300:
            raise RuntimeError(f"{kind} write {i}: {response.status_code} {response.text}")


async def _run(writes: int, profile: bool) -> tuple[list[dict[str, object]], str]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        store.upgrade()
        timer = ServerTime(create_app(store, NoProxies(), admin_token=TOKEN))
        transport = httpx.ASGITransport(app=timer)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        results: list[dict[str, object]] = []
        profiles: list[str] = []
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://admin", headers=headers
            ) as client:
                for name in ("a", "b"):
                    body = {"name": name, "url": f"http://127.0.0.1:{9000 + ord(name)}"}
                    (await client.post("/services", json=body)).raise_for_status()
                await client.post("/routes", json={"name": "r", "paths": ["/"], "service": "a"})
                split = {
                    "name": "canary",
                    "route": "r",
                    "targets": [{"service": "a", "weight": 100}],
                }
                (await client.post("/splits", json=split)).raise_for_status()
                for kind in ("routes", "splits"):
                    await _writes(client, kind, 0, WARMUP)
                    timer.samples.clear()
                    profiler = cProfile.Profile() if profile else None
                    if profiler:
                        profiler.enable()
                    await _writes(client, kind, WARMUP, writes)
                    if profiler:
                        profiler.disable()
                        out = io.StringIO()
                        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
                        stats.print_stats(40)
                        profiles.append(f"--- {kind} ---\n{out.getvalue()}")
                    op = "POST /routes" if kind == "routes" else "PATCH /splits/{name}"
                    results.append(
                        {
                            "benchmark": "admin_write",
                            "operation": op,
                            "database": "sqlite",
                            "writes": writes,
                            **summary(list(timer.samples)),
                        }
                    )
        finally:
            store.close()
    return results, "\n".join(profiles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    args = parser.parse_args()
    results, profile = asyncio.run(_run(args.writes, args.profile))
    if profile:
        print(profile)
    print(f"{'operation':<22} {'writes':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        print(
            f"{r['operation']:<22} {r['writes']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['max_ms']:>8}"
        )
    if not args.profile:  # profiled figures are inflated: never store them
        write_results(results, RESULTS / "admin_write.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
