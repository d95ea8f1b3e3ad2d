"""New API key → first request it authenticates through a real Envoy, with many keys present.

Prepares a database with --keys existing keys (bulk import), one service (an echo
upstream) and one authenticated route, starts `turnout serve` and one Envoy, then
creates --new keys one by one through the admin API. The clock starts when
`POST /consumers/{name}/keys` answers and stops when Envoy first answers 200 to a
request with the new key (polled on a keep-alive connection, every --poll-ms: polling
back to back keeps a core busy that Envoy needs for the update on a 2-core machine,
so the observer slows what it measures; 0 polls back to back). Also
checks that the listener was never modified (no drain) during the run, and reads
the CPU time (utime + stime, /proc/<pid>/stat) Envoy and Turnout spent over the
new keys: each process's CPU per key change.

Envoy's CPU over those keys includes answering the polling requests (hundreds per
key, each a 401 until the key arrives). So a second round creates --new keys more
and waits for Envoy's ACK through Turnout's `GET /proxies` instead, sending Envoy
no request: `envoy_cpu_ms_per_update` is what one credential-list update costs
Envoy itself.

    python bench/keys_to_envoy.py --keys 100000 --new 100
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from results_io import RESULTS, percentile, write_results

from turnout.models.consumer import ConsumerSpec
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.storage.store import Store
from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, TurnoutProcess

SECRET = "bench-secret-key-0123456789"
TOKEN = "bench-token"


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid`, every thread included (proc(5))."""
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the command name, which may hold spaces: ")" ends it.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare(url: str, upstream: EchoUpstream, keys: int) -> float:
    store = Store(url, secret_key=SECRET)
    try:
        store.upgrade()
        store.create("service", ServiceSpec(name="api", url=upstream.url), "bench")
        for name in ("old", "new"):
            store.create("consumer", ConsumerSpec(name=name), "bench")
        store.create(
            "route", RouteSpec(name="api", paths=["/api"], service="api", auth={}), "bench"
        )
        start = time.perf_counter()
        batch = 10_000
        for first in range(0, keys, batch):
            chunk = [f"existing-key-{i:012d}" for i in range(first, min(keys, first + batch))]
            store.keys.import_keys("old", chunk, "bench")
        return time.perf_counter() - start
    finally:
        store.close()


def run(keys: int, new: int, poll_ms: float) -> dict[str, object]:
    poll_s = poll_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upstream = EchoUpstream("api").start()
        import_s = prepare(url, upstream, keys)
        turnout = TurnoutProcess(
            url, TOKEN, log_path=Path(tmp) / "turnout.log", env={"TURNOUT_SECRET_KEY": SECRET}
        ).start(timeout=120)
        admin = AdminClient(turnout.admin_url, TOKEN)
        envoy = EnvoyProcess("bench-keys", turnout.xds_address).start()
        client = httpx.Client(base_url=envoy.url, timeout=10)
        try:
            start = time.perf_counter()
            admin.wait_synced(envoy.node_id, admin.revision(), timeout=300)
            first_sync_s = time.perf_counter() - start
            assert (
                client.get("/api", headers={"apikey": "existing-key-000000000007"}).status_code
                == 200
            )
            modified = envoy.stats(r"listener_manager\.listener_modified")
            samples: list[float] = []
            assert envoy.proc is not None and turnout.proc is not None
            pids = {"envoy": envoy.proc.pid, "turnout": turnout.proc.pid}
            cpu_before = {k: cpu_seconds(pid) for k, pid in pids.items()}
            polled = 0
            for _ in range(new):
                response = admin.http.post("/consumers/new/keys", json={})
                response.raise_for_status()
                key = response.json()["key"]
                start = time.perf_counter()
                polled += 1
                while client.get("/api", headers={"apikey": key}).status_code != 200:
                    polled += 1
                    if time.perf_counter() - start > 60:
                        raise TimeoutError(f"key {response.json()['id']} not served in 60 s")
                    if poll_s:
                        time.sleep(poll_s)  # a pause between polls, not a wait for the result
                samples.append((time.perf_counter() - start) * 1000)
            cpu_ms = {k: (cpu_seconds(pid) - cpu_before[k]) * 1000 / new for k, pid in pids.items()}
            # The same without requests to Envoy: its CPU for the updates alone.
            acked: list[float] = []
            cpu_before = {k: cpu_seconds(pid) for k, pid in pids.items()}
            for _ in range(new):
                revision = admin.write("POST", "/consumers/new/keys", {})
                start = time.perf_counter()
                admin.wait_synced(envoy.node_id, revision, timeout=60)
                acked.append((time.perf_counter() - start) * 1000)
            update_ms = {
                k: (cpu_seconds(pid) - cpu_before[k]) * 1000 / new for k, pid in pids.items()
            }
            assert envoy.stats(r"listener_manager\.listener_modified") == modified
            rss = envoy.stats(r"server\.memory_allocated")
        finally:
            client.close()
            envoy.stop()
            admin.close()
            turnout.stop()
            upstream.stop()
    return {
        "benchmark": "keys_to_envoy",
        "existing_keys": keys,
        "new_keys": new,
        "bulk_import_s": round(import_s, 1),
        "first_sync_s": round(first_sync_s, 2),
        "p50_ms": round(statistics.median(samples), 1),
        "p90_ms": round(percentile(samples, 90), 1),
        "p99_ms": round(percentile(samples, 99), 1),
        "max_ms": round(max(samples), 1),
        "envoy_cpu_ms_per_key": round(cpu_ms["envoy"], 1),
        "turnout_cpu_ms_per_key": round(cpu_ms["turnout"], 1),
        "poll_ms": poll_ms,
        "envoy_requests_per_key": round(polled / new),
        "acked_p50_ms": round(statistics.median(acked), 1),
        "envoy_cpu_ms_per_update": round(update_ms["envoy"], 1),
        "turnout_cpu_ms_per_update": round(update_ms["turnout"], 1),
        "envoy_memory_allocated_mb": round(rss.get("server.memory_allocated", 0) / 2**20, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],  # per run: a run takes minutes
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000])
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--poll-ms", type=float, default=2.0)
    args = parser.parse_args()
    results = [run(k, args.new, args.poll_ms) for k in args.keys]
    print(
        f"{'keys':>7} {'new':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'envoy MB':>8} {'envoy CPU/key':>13} {'turnout CPU/key':>15} "
        f"{'envoy CPU/update':>16} {'turnout CPU/update':>18}"
    )
    for r in results:
        print(
            f"{r['existing_keys']:>7} {r['new_keys']:>4} {r['p50_ms']:>8} {r['p90_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']:>8} {r['envoy_memory_allocated_mb']:>8} "
            f"{r['envoy_cpu_ms_per_key']:>13} {r['turnout_cpu_ms_per_key']:>15} "
            f"{r['envoy_cpu_ms_per_update']:>16} {r['turnout_cpu_ms_per_update']:>18}"
        )
    write_results(results, RESULTS / "keys_to_envoy.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
