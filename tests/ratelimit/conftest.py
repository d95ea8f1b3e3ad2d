"""Real Redis for rate limit tests: TURNOUT_TEST_REDIS_URL, else the tests are skipped.

redis_url     the server URL
redis_prefix  a key prefix of this test's own; every key under it is deleted after
"""

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

REDIS_ENV = "TURNOUT_TEST_REDIS_URL"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV}=redis://127.0.0.1:6379/0")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"turnout-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
