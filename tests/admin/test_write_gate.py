"""The write gate: a few writes in flight, a bounded queue, reads never held, no slot lost."""

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from turnout.admin.write_gate import WriteGate


class Held:
    """An app whose writes run until released; reads answer at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            self.running += 1
            await self.release.wait()
            self.running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_writes_beyond_the_gate_wait_then_503_reads_pass() -> None:
    app = Held()
    gate = WriteGate(app, max_writers=2, max_waiting=3, wait_s=0.3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(gate), base_url="http://t") as c:
        writes = [asyncio.create_task(c.post("/x")) for _ in range(7)]
        while app.running < 2 or sum(w.done() for w in writes) < 2:
            await asyncio.sleep(0.01)
        assert (await c.get("/x")).status_code == 200  # a read is never queued
        # 2 run, 3 wait, 2 are refused at once.
        refused = [w.result() for w in writes if w.done()]
        assert [r.status_code for r in refused] == [503, 503]
        assert "3 writes are already waiting" in refused[0].json()["detail"]
        queued = [w for w in writes if not w.done()]  # 3 waiting, 2 running
        async with asyncio.timeout(5):  # the waiting ones give up after wait_s
            while sum(w.done() for w in queued) < 3:
                await asyncio.sleep(0.01)
        timed_out = [w.result() for w in queued if w.done()]
        assert [r.status_code for r in timed_out] == [503, 503, 503]
        assert "no write finished within 0.3 s" in timed_out[0].json()["detail"]
        assert timed_out[0].headers["retry-after"] == "1"
        app.release.set()
        statuses = [(await w).status_code for w in writes]
        assert statuses.count(200) == 2 and statuses.count(503) == 5
        # Every slot came back: the next writes all run at once.
        app.release.clear()
        more = [asyncio.create_task(c.post("/x")) for _ in range(2)]
        while app.running < 2:
            await asyncio.sleep(0.01)
        app.release.set()
        assert [(await m).status_code for m in more] == [200, 200]


async def test_a_finished_write_hands_its_slot_to_the_next_in_line() -> None:
    app = Held()
    gate = WriteGate(app, max_writers=1, max_waiting=10, wait_s=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(gate), base_url="http://t") as c:
        first = asyncio.create_task(c.post("/x"))
        while app.running < 1:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(c.post("/x"))
        while not gate._queue:
            await asyncio.sleep(0.01)
        app.release.set()
        assert [(await first).status_code, (await second).status_code] == [200, 200]
        assert gate._free == 1 and not gate._queue


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    app = Held()
    gate = WriteGate(app, max_writers=1, max_waiting=10, wait_s=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(gate), base_url="http://t") as c:
        first = asyncio.create_task(c.post("/x"))
        while app.running < 1:
            await asyncio.sleep(0.01)
        waiter = asyncio.create_task(c.post("/x"))
        while not gate._queue:
            await asyncio.sleep(0.01)
        waiter.cancel()
        while gate._queue:
            await asyncio.sleep(0.01)
        app.release.set()
        assert (await first).status_code == 200
        assert gate._free == 1
