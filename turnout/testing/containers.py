"""The docker backend of the pytest plugin: Turnout and Envoy in testcontainers.

Optional: `testcontainers` is imported only here and only when asked for, and
`unavailable()` names what is missing (the package, or a reachable Docker
engine) so the plugin can skip with that reason. Both containers use host
networking so that Envoy reaches Turnout, and tests reach both, on 127.0.0.1.
"""

import tempfile
from pathlib import Path
from typing import Any

from turnout.envoy_bootstrap import BootstrapOptions, render_bootstrap
from turnout.testing.processes import free_port, http_ok, wait_for

ENVOY_IMAGE = "envoyproxy/envoy:v1.40-latest"


def unavailable() -> str | None:
    """Why the docker backend cannot run here, or None if it can."""
    try:
        import docker  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import testcontainers  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        return "the testcontainers package is not installed (pip install testcontainers)"
    try:
        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine reachable ({exc.__class__.__name__})"
    return None


class TurnoutContainer:
    """`turnout serve` on SQLite inside the container, host network."""

    def __init__(self, image: str, token: str, serve_args: list[str]) -> None:
        from testcontainers.core.container import (  # type: ignore[import-not-found, unused-ignore]
            DockerContainer,
        )

        self.admin_port, self.xds_port = free_port(), free_port()
        self.token = token
        self.database_url = "sqlite:////var/lib/turnout/turnout.db"
        self._container = (
            DockerContainer(image)
            .with_kwargs(network_mode="host")
            .with_env("TURNOUT_ADMIN_TOKEN", token)
            .with_env("TURNOUT_DATABASE_URL", self.database_url)
            .with_command(
                [
                    "serve",
                    "--admin-listen", f"127.0.0.1:{self.admin_port}",
                    "--xds-listen", f"127.0.0.1:{self.xds_port}",
                    *serve_args,
                ]
            )
        )  # fmt: skip

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def xds_address(self) -> str:
        return f"127.0.0.1:{self.xds_port}"

    def __enter__(self) -> "TurnoutContainer":
        self._container.start()
        wait_for(lambda: http_ok(f"{self.admin_url}/healthz"), 60, "Turnout container")
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.stop()


class EnvoyContainer:
    """Envoy from the official image, bootstrapped like EnvoyProcess."""

    def __init__(self, node_id: str, turnout: Any, **kwargs: Any) -> None:
        self.node_id = node_id
        self.listener_port = kwargs.pop("listener_port", None) or free_port()
        self.admin_port = kwargs.pop("admin_port", None) or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix=f"envoy-{node_id}-")
        Path(self._dir.name, "envoy.yaml").write_text(
            render_bootstrap(
                BootstrapOptions(
                    node_id=node_id,
                    xds_address=turnout.xds_address,
                    listener_port=self.listener_port,
                    listener_address="127.0.0.1",
                    admin_port=self.admin_port,
                    **kwargs,
                )
            )
        )
        from testcontainers.core.container import (  # type: ignore[import-not-found, unused-ignore]
            DockerContainer,
        )

        self._container = (
            DockerContainer(ENVOY_IMAGE)
            .with_kwargs(network_mode="host")
            .with_volume_mapping(self._dir.name, "/etc/turnout-envoy", "ro")
            .with_command(["envoy", "-c", "/etc/turnout-envoy/envoy.yaml", "--concurrency", "1"])
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> "EnvoyContainer":
        self._container.start()
        wait_for(lambda: http_ok(f"{self.admin_url}/ready"), 60, f"Envoy container {self.node_id}")
        return self

    def stop(self) -> None:
        self._container.stop()
        self._dir.cleanup()
