"""Leader election over a PostgreSQL advisory lock: one leader, failover in seconds."""

import subprocess
import sys
import time

import pytest

from turnout.storage.leader import Leader

PG = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

_HOLDER = """
import sys, time
from turnout.storage.leader import Leader
leader = Leader(sys.argv[1], "plan-controller", interval=0.2).start()
if leader.wait_leader(30):
    print("LEADER", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_always_leads(database_url: str) -> None:
    leader = Leader(database_url, "x").start()
    assert leader.is_leader
    leader.stop()
    assert not leader.is_leader


@PG
def test_exactly_one_leader_and_handover_on_stop(database_url: str) -> None:
    changes: list[bool] = []
    a = Leader(database_url, "plan-controller", interval=0.2, on_change=changes.append).start()
    assert a.wait_leader(10)
    b = Leader(database_url, "plan-controller", interval=0.2).start()
    other = Leader(database_url, "scheduled-freezes", interval=0.2).start()
    try:
        assert other.wait_leader(10)  # another name is another lock
        assert not b.wait_leader(0.6)  # three campaign rounds in which b must not win
        a.stop()
        assert changes == [True, False]
        assert b.wait_leader(5)
    finally:
        for leader in (a, b, other):
            leader.stop()


@PG
def test_failover_within_seconds_when_the_leader_process_dies(database_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, database_url], stdout=subprocess.PIPE, text=True
    )
    follower = Leader(database_url, "plan-controller", interval=0.2)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LEADER"
        follower.start()
        assert not follower.wait_leader(1)
        holder.kill()
        killed = time.monotonic()
        assert follower.wait_leader(10)
        took = time.monotonic() - killed
        assert took < 5, f"failover took {took:.2f}s"
    finally:
        holder.kill()
        holder.wait()
        follower.stop()
