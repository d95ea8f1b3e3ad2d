"""`turnout ratelimit --workers 2`: two processes on one port (SO_REUSEPORT), sharing Redis.

Connections spread over both workers (seen in /proc: each worker holds established
connections to the port), a quota holds across them, a worker that dies is restarted,
and SIGTERM stops them all. A port already taken is refused."""

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3.ratelimit_pb2 import RateLimitDescriptor
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from envoy.service.ratelimit.v3.rls_pb2_grpc import RateLimitServiceStub

from turnout.testing.processes import free_port, turnout_command, wait_for

DEADLINE = 5.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


def established(pid: int, port: int) -> int:
    """How many established TCP connections to `port` process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def quota_request(consumer: str) -> RateLimitRequest:
    entries = {"route": "api", "consumer": consumer, "quota": "30/day"}
    return RateLimitRequest(
        domain="turnout",
        descriptors=[
            RateLimitDescriptor(
                entries=[RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries.items()]
            )
        ],
    )


@pytest.fixture(params=["option", "environment"])
def workers(
    redis_url: str, redis_prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[int, int]]:
    """(supervisor pid, port) of `turnout ratelimit --workers 2` (or
    TURNOUT_RATELIMIT_WORKERS=2, which the workers inherit and must not apply again)."""
    port = free_port()
    env = {**os.environ, "TURNOUT_REDIS_URL": redis_url, "TURNOUT_REDIS_PREFIX": redis_prefix}
    option = ["--workers", "2"]
    if request.param == "environment":
        env["TURNOUT_RATELIMIT_WORKERS"] = "2"
        option = []
    log = tmp_path / "ratelimit.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*turnout_command(), "ratelimit", "--listen", f"127.0.0.1:{port}", *option],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: len(children(proc.pid)) == 2, 20, "two workers")
        wait_for(lambda: log.read_text().count("rate limit service on") == 2, 20, "both serving")
        assert [children(w) for w in children(proc.pid)] == [[], []]  # no workers of workers
        yield proc.pid, port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_connections_spread_over_the_workers_and_a_quota_holds_across_them(
    workers: tuple[int, int],
) -> None:
    pid, port = workers
    # One connection per channel (a distinct option keeps grpcio from sharing them).
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=[("turnout.test.connection", i)])
        for i in range(16)
    ]
    try:
        stubs = [RateLimitServiceStub(c) for c in channels]
        wait_for(
            lambda: all(_answers(s) for s in stubs),
            20,
            "every connection answered",
        )
        per_worker = [established(w, port) for w in children(pid)]
        assert len(per_worker) == 2 and min(per_worker) >= 1, per_worker
        codes = [
            stubs[i % 16].ShouldRateLimit(quota_request("shared"), timeout=DEADLINE).overall_code
            for i in range(40)
        ]
        assert codes.count(RateLimitResponse.OK) == 30
        assert codes[30:] == [RateLimitResponse.OVER_LIMIT] * 10
    finally:
        for channel in channels:
            channel.close()


def _answers(stub: RateLimitServiceStub) -> bool:
    try:
        stub.ShouldRateLimit(RateLimitRequest(domain="d"), timeout=1)
        return True
    except grpc.RpcError:
        return False


def test_a_worker_that_dies_is_restarted(workers: tuple[int, int]) -> None:
    pid, port = workers
    first, second = children(pid)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: first not in children(pid) and len(children(pid)) == 2, 20, "a new worker")
    assert second in children(pid)
    # Fresh connections answer (whichever worker they reach, the new one once it listens).
    for i in range(8):
        address = f"127.0.0.1:{port}"
        with grpc.insecure_channel(address, options=[("turnout.test.connection", i)]) as channel:
            stub = RateLimitServiceStub(channel)
            wait_for(lambda stub=stub: _answers(stub), 20, "an answer after the restart")


def test_workers_refuse_a_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*turnout_command(), "ratelimit", "--listen", f"127.0.0.1:{port}", "--workers", "2"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert f"cannot listen for the rate limit service on 127.0.0.1:{port}" in done.stderr


def cpus_allowed(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


def test_each_worker_runs_on_a_cpu_of_its_own(workers: tuple[int, int]) -> None:
    pid, _ = workers
    allowed = [cpus_allowed(w) for w in children(pid)]
    assert all(len(cpus) == 1 for cpus in allowed), allowed
    if len(os.sched_getaffinity(0)) >= 2:
        assert allowed[0] != allowed[1], allowed
