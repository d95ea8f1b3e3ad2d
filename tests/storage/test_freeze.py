"""Freezes in the store: coverage rules, and no concurrent writer slips past one."""

import threading
from typing import Any

import pytest

from turnout.models.freeze import FreezeCreate, FreezeScope, Frozen
from turnout.models.split import SplitSpec
from turnout.storage.freezes import covers
from turnout.storage.store import Store
from turnout.testing.processes import wait_for


def test_covers() -> None:
    route = {"name": "r", "service": "s", "tags": ["t"]}
    split = {"name": "x", "route": "r", "targets": [{"service": "v2"}], "tags": []}
    assert covers(FreezeScope(all=True), "route", route)
    assert covers(FreezeScope(services=["s"]), "route", route)
    assert covers(FreezeScope(tags=["t"]), "route", route)
    assert not covers(FreezeScope(routes=["other"]), "route", route)
    assert covers(FreezeScope(routes=["r"]), "split", split)
    assert covers(FreezeScope(services=["v2"]), "split", split)
    assert not covers(FreezeScope(services=["s"]), "service", {"name": "t", "tags": []})
    assert not covers(FreezeScope(all=True), "service", None)


def test_no_write_commits_after_the_freeze(store: Store, make: Any) -> None:
    """Writers hammer the store while a freeze is declared: once `freezes.create`
    returned, the revision never moves again (the check runs under the write lock)."""
    store.create("service", make.service("a"), "t")
    stop = threading.Event()
    refused: list[int] = []

    def writer(worker: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            spec = make.service("a", connect_timeout_ms=1 + (worker * 10_000 + i) % 60_000)
            try:
                store.replace("service", "a", spec, f"w{worker}")
            except Frozen:
                refused.append(worker)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    try:
        store.freezes.create(FreezeCreate(reason="r", scope=FreezeScope(all=True)), "ops")
        frozen_at = store.revision()
        wait_for(lambda: len(refused) >= 10, 30, "writers to be refused")
        assert store.revision() == frozen_at
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert store.revision() == frozen_at


def test_pin_header_is_lowercased() -> None:
    split = SplitSpec.model_validate(
        {
            "name": "x",
            "route": "r",
            "targets": [{"service": "a", "weight": 1}, {"service": "b", "weight": 0}],
            "pins": [{"header": "X-Canary", "value": "on", "service": "b"}],
            "sticky": {"header": "X-User"},
        }
    )
    assert split.pins[0].header == "x-canary"
    assert split.sticky is not None and split.sticky.header == "x-user"
    with pytest.raises(ValueError, match="not one of the targets"):
        SplitSpec.model_validate(
            {**split.model_dump(), "pins": [{"header": "h", "value": "v", "service": "zz"}]}
        )
