"""`BatchedCounters` bounds: calls waiting for a Redis that does not answer are capped
(BatchFull at once, a RedisError: the call follows the failure mode) and each waits a
bounded time."""

import socket
import threading
import time

import pytest
import redis

from turnout.ratelimit.batch import BatchedCounters, BatchFull
from turnout.ratelimit.counters import window_for
from turnout.testing.processes import wait_for


def test_waiting_calls_are_capped_and_time_out() -> None:
    with socket.socket() as silent:  # accepts, never answers: a hung Redis
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        counters = BatchedCounters(f"redis://127.0.0.1:{port}/0", "t:", 0.5, max_pending=2)
        window = window_for("x", 60, time.time(), "t:")
        errors: list[BaseException] = []

        def call() -> None:
            try:
                counters.hit([window], 1)
            except redis.RedisError as exc:
                errors.append(exc)

        try:
            first = threading.Thread(target=call)
            first.start()  # taken by the flusher, which then waits on the socket
            wait_for(lambda: not counters._pending, 5, "the flusher took the first call")
            waiting = [threading.Thread(target=call) for _ in range(2)]
            for thread in waiting:
                thread.start()
            wait_for(lambda: len(counters._pending) == 2, 5, "two calls waiting")
            start = time.monotonic()
            with pytest.raises(BatchFull):
                counters.hit([window], 1)
            assert time.monotonic() - start < 0.1  # refused at once, not after a wait
            for thread in (first, *waiting):
                thread.join(5)
            assert len(errors) == 3  # every waiting call ended with an error, in time
        finally:
            counters.close()
