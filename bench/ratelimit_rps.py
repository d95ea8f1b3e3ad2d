"""Rate limit service decisions per second: `turnout ratelimit` with 1 and 2 workers, on Redis.

Starts `turnout ratelimit --workers N` (for each N of --workers), on Redis
($TURNOUT_REDIS_URL, default redis://127.0.0.1:6379/0; keys under a fresh prefix,
deleted afterwards), and drives `ShouldRateLimit` with --concurrency calls in flight
over --connections HTTP/2 connections (SO_REUSEPORT hands each connection to one
worker), each call one descriptor with a quota (one Redis counter increment per
decision). One worker is pinned to one CPU and the client to the other; two workers
and the client share the machine. Goal: >= 5,000/s.

"per CPU-s" divides by the CPU time of the service's whole process tree (workers
and their supervisor). --compare-checkout DIR runs the same load, in the same run,
against the `turnout ratelimit` of another source checkout (e.g. the hand-written
HTTP/2 transport of an older commit, in a `git worktree`) with one worker, and
prints the ratio.

The load generator is `h2load` (Debian/Ubuntu: `apt-get install nghttp2-client`)
when it is on PATH: a C client costs little, so the service core is the limit.
Without it (or with --client python) a grpcio client is used, which on a
two-core machine tops out near the goal by itself; the service's own CPU time
is reported either way ("per CPU-s").

Every decision is checked: afterwards the Redis counters must add up to the
number of calls answered (each call was really counted), and a last call over a
tiny quota must come back OVER_LIMIT.

    python bench/ratelimit_rps.py --seconds 10 --concurrency 64
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import redis
from envoy.extensions.common.ratelimit.v3.ratelimit_pb2 import RateLimitDescriptor
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from results_io import RESULTS, write_results

from turnout.ratelimit.service import SHOULD_RATE_LIMIT
from turnout.testing.processes import free_port, wait_for

SERVICE_CPU = 0


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children (Linux /proc), in s."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def request(consumer: str, quota: str = "1000000000/day") -> RateLimitRequest:
    entries = [("route", "api"), ("consumer", consumer), ("quota", quota)]
    return RateLimitRequest(
        domain="turnout",
        descriptors=[
            RateLimitDescriptor(
                entries=[RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
            )
        ],
    )


def other_cpus() -> set[int]:
    cpus = os.sched_getaffinity(0) - {SERVICE_CPU}
    return cpus or {SERVICE_CPU}


def drive_h2load(
    address: str, seconds: float, concurrency: int, connections: int, cpus: set[int]
) -> tuple[int, int]:
    """(calls answered, calls failed) by h2load, from another CPU."""
    message = request("c1").SerializeToString()
    with tempfile.NamedTemporaryFile(suffix=".grpc") as body:
        body.write(b"\x00" + struct.pack(">I", len(message)) + message)
        body.flush()
        out = subprocess.run(
            [
                "h2load",
                *("-D", str(round(seconds)), "-c", str(connections)),
                *("-m", str(max(1, concurrency // connections)), "-d", body.name),
                *("-H", "content-type: application/grpc", "-H", "te: trailers"),
                f"http://{address}{SHOULD_RATE_LIMIT}",
            ],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        ).stdout
    found = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if found is None:
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    done, succeeded = int(found[1]), int(found[2])
    return succeeded, done - succeeded


async def drive_python(
    address: str, seconds: float, concurrency: int, connections: int
) -> tuple[int, int]:
    """(calls answered, calls failed) by a grpcio client over 1,000 consumers."""
    # A channel option of its own per connection: grpcio would otherwise share one.
    channels = [
        grpc.aio.insecure_channel(address, options=[("turnout.bench.connection", n)])
        for n in range(connections)
    ]
    try:
        stubs = [rls_pb2_grpc.RateLimitServiceStub(c) for c in channels]
        done = failed = 0
        deadline = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            nonlocal done, failed
            i = n
            stub = stubs[n % connections]
            while time.perf_counter() < deadline:
                response = await stub.ShouldRateLimit(request(f"c{i % 1000}"))
                if response.overall_code == RateLimitResponse.OK:
                    done += 1
                else:
                    failed += 1
                i += concurrency

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return done, failed
    finally:
        for channel in channels:
            await channel.close()


def over_limit_check(address: str) -> bool:
    """A quota of 1: the second call must be OVER_LIMIT (the service really decides)."""
    with grpc.insecure_channel(address) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        codes = [stub.ShouldRateLimit(request("check", "1/day")).overall_code for _ in range(2)]
    return codes == [RateLimitResponse.OK, RateLimitResponse.OVER_LIMIT]


def counted(client: redis.Redis, prefix: str) -> int:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    return sum(int(v) for v in client.mget(keys)) if keys else 0


def measure(
    args: argparse.Namespace,
    client_kind: str,
    workers: int,
    redis_url: str,
    source: Path | None = None,
) -> dict[str, object]:
    """One run: start the service, drive it, check Redis counted every call."""
    prefix = f"turnout-bench:{uuid.uuid4().hex[:8]}:"
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "TURNOUT_REDIS_URL": redis_url, "TURNOUT_REDIS_PREFIX": prefix}
    if source is not None:  # another checkout's code, on this interpreter
        env["PYTHONPATH"] = str(source)
    command = [sys.executable, "-m", "turnout.cli", "ratelimit", "--listen", address]
    if workers > 1:
        command += ["--workers", str(workers)]
    all_cpus = os.sched_getaffinity(0)
    service_cpus = {SERVICE_CPU} if workers == 1 else all_cpus
    client_cpus = other_cpus() if workers == 1 else all_cpus
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=source,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, service_cpus),
    )
    store = redis.Redis.from_url(redis_url)
    try:

        def ready() -> bool:
            try:
                with grpc.insecure_channel(address) as channel:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                return True
            except grpc.FutureTimeoutError:
                return False

        wait_for(ready, 20, "turnout ratelimit")
        load = os.getloadavg()[0]
        cpu_before = cpu_seconds(proc.pid)
        start = time.perf_counter()
        if client_kind == "h2load":
            done, failed = drive_h2load(
                address, args.seconds, args.concurrency, args.connections, client_cpus
            )
        else:
            os.sched_setaffinity(0, client_cpus)
            done, failed = asyncio.run(
                drive_python(address, args.seconds, args.concurrency, args.connections)
            )
            os.sched_setaffinity(0, all_cpus)
        elapsed = time.perf_counter() - start
        server_cpu = cpu_seconds(proc.pid) - cpu_before
        in_redis = counted(store, prefix)
        decided = over_limit_check(address)
    finally:
        proc.terminate()
        proc.wait(10)
        keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            store.delete(*keys)
        store.close()
    return {
        "benchmark": "ratelimit_rps",
        "client": client_kind,
        "server": "grpcio" if source is None else f"checkout {source}",
        "workers": workers,
        "seconds": round(elapsed, 1),
        "concurrency": args.concurrency,
        "connections": args.connections,
        "load_average_1m": round(load, 2),
        "decisions": done,
        "failed": failed,
        "counted_in_redis": in_redis,
        "over_limit_check": decided,
        "decisions_per_s": round(done / elapsed),
        "server_cpu_s": round(server_cpu, 2),
        "decisions_per_server_cpu_s": round(done / server_cpu) if server_cpu else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--client", choices=["auto", "h2load", "python"], default="auto")
    parser.add_argument("--compare-checkout", type=Path, metavar="DIR")
    args = parser.parse_args()
    client_kind = args.client
    if client_kind == "auto":
        client_kind = "h2load" if shutil.which("h2load") else "python"
    redis_url = os.environ.get("TURNOUT_REDIS_URL", "redis://127.0.0.1:6379/0")
    results = []
    if args.compare_checkout is not None:
        results.append(measure(args, client_kind, 1, redis_url, args.compare_checkout.resolve()))
    for workers in args.workers:
        results.append(measure(args, client_kind, workers, redis_url))
    print(
        f"{'server':>10} {'workers':>7} {'decisions/s':>12} {'per CPU-s':>10} "
        f"{'load':>5} {'failed':>7}"
    )
    for r in results:
        server = "grpcio" if r["server"] == "grpcio" else "compared"
        print(
            f"{server:>10} {r['workers']:>7} {r['decisions_per_s']:>12} "
            f"{r['decisions_per_server_cpu_s']:>10} {r['load_average_1m']:>5} {r['failed']:>7}"
        )
    if args.compare_checkout is not None:
        ours = next(r for r in results[1:] if r["workers"] == 1) if 1 in args.workers else None
        if ours is not None:
            base = results[0]
            wall = float(ours["decisions_per_s"]) / float(base["decisions_per_s"])  # type: ignore[arg-type]
            cpu = float(ours["decisions_per_server_cpu_s"] or 0) / float(
                base["decisions_per_server_cpu_s"] or 1  # type: ignore[arg-type]
            )
            print(f"grpcio / compared, 1 worker: {wall:.2f} (decisions/s), {cpu:.2f} (per CPU-s)")
    out = RESULTS / "ratelimit_rps.json"
    # One entry per (client kind, server, workers): the last run of each.
    earlier = json.loads(out.read_text()) if out.exists() else []
    if not isinstance(earlier, list):
        earlier = []
    fresh = {(r["client"], r["server"], r["workers"]) for r in results}
    kept = [
        r
        for r in earlier
        if (r.get("client"), r.get("server", "grpcio"), r.get("workers", 1)) not in fresh
        and "server" in r
    ]
    write_results([*kept, *results], out)
    status = 0
    for r in results:
        # Counters count every call, the warm-up and the check included.
        if r["failed"] or r["counted_in_redis"] < r["decisions"] or not r["over_limit_check"]:  # type: ignore[operator]
            print(
                f"CHECK FAILED ({r['server']}, {r['workers']} workers): failed={r['failed']}, "
                f"counted in Redis {r['counted_in_redis']} < answered {r['decisions']}, "
                f"over-limit check {'ok' if r['over_limit_check'] else 'wrong'}",
                file=sys.stderr,
            )
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
