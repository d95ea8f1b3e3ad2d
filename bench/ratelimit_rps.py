"""Rate limit service decisions per second: `turnout ratelimit` (one process, one core) + Redis.

Starts `turnout ratelimit` as a child process (an asyncio event loop: one core) on
Redis ($TURNOUT_REDIS_URL, default redis://127.0.0.1:6379/0, keys under a fresh
prefix deleted afterwards), then drives it from this process with --concurrency
requests in flight over one gRPC channel for --seconds, each request carrying one
descriptor with a quota (one Redis round trip per decision). Goal: >= 5,000/s on
one core. Reports wall-clock decisions/s (the load generator shares the machine)
and decisions per CPU-second of the service process, i.e. what one core sustains.

    python bench/ratelimit_rps.py --seconds 10 --concurrency 64
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import redis
from envoy.extensions.common.ratelimit.v3.ratelimit_pb2 import RateLimitDescriptor
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest

from turnout.local import free_port, wait_for

RESULTS = Path(__file__).parent / "results"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(i: int) -> RateLimitRequest:
    entries = [("route", "api"), ("consumer", f"c{i % 1000}"), ("quota", "1000000/day")]
    return RateLimitRequest(
        domain="turnout",
        descriptors=[
            RateLimitDescriptor(
                entries=[RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
            )
        ],
    )


async def drive(address: str, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        await stub.ShouldRateLimit(request(0))
        done = 0
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            nonlocal done
            i = n
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await stub.ShouldRateLimit(request(i))
                latencies.append((time.perf_counter() - start) * 1000)
                done += 1
                i += concurrency

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return done, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    redis_url = os.environ.get("TURNOUT_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"turnout-bench:{uuid.uuid4().hex[:8]}:"
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "TURNOUT_REDIS_URL": redis_url, "TURNOUT_REDIS_PREFIX": prefix}
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout.cli", "ratelimit", "--listen", address],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:

        def ready() -> bool:
            try:
                channel = grpc.insecure_channel(address)
                grpc.channel_ready_future(channel).result(timeout=0.5)
                channel.close()
                return True
            except grpc.FutureTimeoutError:
                return False

        wait_for(ready, 20, "turnout ratelimit")
        cpu_before = cpu_seconds(proc.pid)
        start = time.perf_counter()
        done, latencies = asyncio.run(drive(address, args.seconds, args.concurrency))
        elapsed = time.perf_counter() - start
        server_cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.terminate()
        proc.wait(10)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    latencies.sort()
    result = {
        "benchmark": "ratelimit_rps",
        "seconds": round(elapsed, 1),
        "concurrency": args.concurrency,
        "decisions": done,
        "decisions_per_s": round(done / elapsed),
        "server_cpu_s": round(server_cpu, 2),
        "decisions_per_server_cpu_s": round(done / server_cpu) if server_cpu else None,
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2),
    }
    print(f"{'decisions/s':>12} {'per CPU-s':>10} {'p50 ms':>8} {'p99 ms':>8} {'in flight':>9}")
    print(
        f"{result['decisions_per_s']:>12} {result['decisions_per_server_cpu_s']:>10} "
        f"{result['p50_ms']:>8} {result['p99_ms']:>8} {args.concurrency:>9}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ratelimit_rps.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
