"""`turnout ratelimit --workers N`: N service processes on one port.

Each worker is a full `turnout ratelimit` (its own grpcio server, handler threads and
Redis pipeline) that binds the port with SO_REUSEPORT (`grpc.so_reuseport`); the
kernel hands each new connection to one of them, so Envoy's connections, and the
calls on them, spread over the workers. They share nothing but Redis, which is
where the counters are anyway.

This parent only supervises: it checks the port is free (so a port taken by another
program is an error, not a silent sharing), starts the workers, each pinned to one CPU
(round robin over the CPUs it may use; `--no-pin` to leave them free), restarts one
that dies, and stops them all on SIGINT/SIGTERM.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from turnout.envoy_bootstrap import split_host_port

log = logging.getLogger("turnout.ratelimit")

RESTART_AFTER_SECONDS = 1.0
STOP_SECONDS = 10.0


def check_port_free(listen: str) -> None:
    """OSError naming the address if something listens there already."""
    host, port = split_host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen for the rate limit service on {listen}: {exc}") from exc


def run_workers(count: int, listen: str, worker_args: list[str]) -> int:
    """Run `count` workers (`turnout ratelimit <worker_args> --reuse-port`) until a
    signal; the exit status is 0, or 2 if a worker could not start."""
    if listen.rpartition(":")[2] == "0":
        raise ValueError("--workers needs a fixed port in --listen (not 0)")
    check_port_free(listen)
    # "--workers 1" explicitly: TURNOUT_RATELIMIT_WORKERS, inherited, must not apply again.
    command = [sys.executable, "-m", "turnout.cli", *worker_args, "--workers", "1", "--reuse-port"]
    cpus = sorted(os.sched_getaffinity(0))

    def start(i: int) -> subprocess.Popen[bytes]:
        # Worker i on CPU i (round robin): see `run_ratelimit`'s `cpu`.
        pin = [] if "--no-pin" in worker_args else ["--cpu", str(cpus[i % len(cpus)])]
        return subprocess.Popen([*command, *pin])

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    workers = [start(i) for i in range(count)]
    started = [time.monotonic()] * count
    print(f"turnout: {count} rate limit workers on {listen}", file=sys.stderr, flush=True)
    status = 0
    try:
        while not stop.wait(0.2):
            for i, worker in enumerate(workers):
                code = worker.poll()
                if code is None:
                    continue
                if code == 2 and time.monotonic() - started[i] < 10:
                    log.error("rate limit worker %d could not start (exit 2); stopping", i)
                    status = 2
                    stop.set()
                    break
                log.warning("rate limit worker %d exited with %s; restarting it", i, code)
                time.sleep(RESTART_AFTER_SECONDS)
                workers[i] = start(i)
                started[i] = time.monotonic()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for worker in workers:
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    return status
