"""Rate limit service decisions per second: `turnout ratelimit` on one core, with Redis.

Starts `turnout ratelimit` as a child process pinned to one CPU, on Redis
($TURNOUT_REDIS_URL, default redis://127.0.0.1:6379/0; keys under a fresh prefix,
deleted afterwards), and drives `ShouldRateLimit` from the other CPU(s) with
--concurrency calls in flight over one HTTP/2 connection, each call one descriptor
with a quota (so one Redis counter increment per decision). Goal: >= 5,000/s on one
core.

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

from turnout.local import free_port, wait_for
from turnout.ratelimit.service import SHOULD_RATE_LIMIT

RESULTS = Path(__file__).parent / "results"
SERVICE_CPU = 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def drive_h2load(address: str, seconds: float, concurrency: int) -> tuple[int, int]:
    """(calls answered, calls failed) by h2load, from another CPU."""
    message = request("c1").SerializeToString()
    with tempfile.NamedTemporaryFile(suffix=".grpc") as body:
        body.write(b"\x00" + struct.pack(">I", len(message)) + message)
        body.flush()
        out = subprocess.run(
            [
                "h2load",
                *("-D", str(round(seconds)), "-c", "1", "-m", str(concurrency), "-d", body.name),
                *("-H", "content-type: application/grpc", "-H", "te: trailers"),
                f"http://{address}{SHOULD_RATE_LIMIT}",
            ],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=lambda: os.sched_setaffinity(0, other_cpus()),
        ).stdout
    found = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if found is None:
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    done, succeeded = int(found[1]), int(found[2])
    return succeeded, done - succeeded


async def drive_python(address: str, seconds: float, concurrency: int) -> tuple[int, int]:
    """(calls answered, calls failed) by a grpcio client over 1,000 consumers."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        done = failed = 0
        deadline = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            nonlocal done, failed
            i = n
            while time.perf_counter() < deadline:
                response = await stub.ShouldRateLimit(request(f"c{i % 1000}"))
                if response.overall_code == RateLimitResponse.OK:
                    done += 1
                else:
                    failed += 1
                i += concurrency

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return done, failed


def over_limit_check(address: str) -> bool:
    """A quota of 1: the second call must be OVER_LIMIT (the service really decides)."""
    with grpc.insecure_channel(address) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        codes = [stub.ShouldRateLimit(request("check", "1/day")).overall_code for _ in range(2)]
    return codes == [RateLimitResponse.OK, RateLimitResponse.OVER_LIMIT]


def counted(client: redis.Redis, prefix: str) -> int:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    return sum(int(v) for v in client.mget(keys)) if keys else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--client", choices=["auto", "h2load", "python"], default="auto")
    args = parser.parse_args()
    client_kind = args.client
    if client_kind == "auto":
        client_kind = "h2load" if shutil.which("h2load") else "python"
    redis_url = os.environ.get("TURNOUT_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"turnout-bench:{uuid.uuid4().hex[:8]}:"
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "TURNOUT_REDIS_URL": redis_url, "TURNOUT_REDIS_PREFIX": prefix}
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout.cli", "ratelimit", "--listen", address],
        env=env,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVICE_CPU}),
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
        cpu_before = cpu_seconds(proc.pid)
        start = time.perf_counter()
        if client_kind == "h2load":
            done, failed = drive_h2load(address, args.seconds, args.concurrency)
        else:
            os.sched_setaffinity(0, other_cpus())
            done, failed = asyncio.run(drive_python(address, args.seconds, args.concurrency))
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
    result = {
        "benchmark": "ratelimit_rps",
        "client": client_kind,
        "seconds": round(elapsed, 1),
        "concurrency": args.concurrency,
        "decisions": done,
        "failed": failed,
        "counted_in_redis": in_redis,
        "over_limit_check": decided,
        "decisions_per_s": round(done / elapsed),
        "server_cpu_s": round(server_cpu, 2),
        "decisions_per_server_cpu_s": round(done / server_cpu) if server_cpu else None,
    }
    print(f"{'client':>8} {'decisions/s':>12} {'per CPU-s':>10} {'in flight':>9} {'failed':>7}")
    print(
        f"{client_kind:>8} {result['decisions_per_s']:>12} "
        f"{result['decisions_per_server_cpu_s']:>10} {args.concurrency:>9} {failed:>7}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ratelimit_rps.json"
    # One entry per client kind: the last run of each.
    earlier = json.loads(out.read_text()) if out.exists() else []
    if not isinstance(earlier, list):
        earlier = []
    kept = [r for r in earlier if r.get("client") != client_kind]
    out.write_text(json.dumps([*kept, result], indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    # Counters count every call, the warm-up and the check included.
    if failed or in_redis < done or not decided:
        print(
            f"CHECK FAILED: failed={failed}, counted in Redis {in_redis} < answered {done}, "
            f"over-limit check {'ok' if decided else 'wrong'}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
