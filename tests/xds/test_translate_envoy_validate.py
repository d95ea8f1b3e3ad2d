"""Every golden case's resources are accepted by a real Envoy (`--mode validate`).

Each case is wrapped in a static bootstrap: the listeners' RDS is replaced by the
RouteConfiguration inlined into the HTTP connection manager, and EDS clusters become
STATIC with their ClusterLoadAssignment inlined. Envoy then runs its full proto
validation (PGV) and builds listeners, routes (RE2 compiles), clusters and TLS
contexts without binding anything. Negative controls prove the harness can fail.
"""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.extension_pb2 import TypedExtensionConfig
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.xds.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    NodeGroup,
    build_resources,
)
from turnout.xds.translate.listener import inline_discovered
from turnout.xds.translate.ratelimit import RATELIMIT_CLUSTER

if TYPE_CHECKING:
    from conftest import GoldenCase


def _envoy_binary() -> str | None:
    found = shutil.which("envoy")
    if found:
        return found
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else None


ENVOY = _envoy_binary()
pytestmark = pytest.mark.skipif(
    ENVOY is None, reason="no envoy binary on PATH or beside the Python interpreter"
)

# Several Envoys on one host need distinct base ids (shared memory / domain socket).
_BASE_IDS = itertools.count((os.getpid() % 100_000) * 100)


def static_bootstrap(resources: dict[str, list[Message]]) -> Bootstrap:
    """The resources as a bootstrap that needs no management server."""
    route_configs = {r.name: r for r in resources[ROUTE_TYPE] if isinstance(r, RouteConfiguration)}
    extension_configs = {
        c.name: c for c in resources[EXTENSION_CONFIG_TYPE] if isinstance(c, TypedExtensionConfig)
    }
    assignments = {
        a.cluster_name: a for a in resources[ENDPOINT_TYPE] if isinstance(a, ClusterLoadAssignment)
    }
    bootstrap = Bootstrap()
    bootstrap.node.id = "validate"
    bootstrap.node.cluster = "validate"
    for original in resources[LISTENER_TYPE]:
        assert isinstance(original, Listener)
        listener = bootstrap.static_resources.listeners.add()
        listener.CopyFrom(original)
        inline_discovered(listener, route_configs, extension_configs)
    for original in resources[CLUSTER_TYPE]:
        assert isinstance(original, Cluster)
        cluster = bootstrap.static_resources.clusters.add()
        cluster.CopyFrom(original)
        if cluster.type == Cluster.EDS:
            cluster.type = Cluster.STATIC
            cluster.ClearField("eds_cluster_config")
            cluster.load_assignment.CopyFrom(assignments[cluster.name])
    # What envoy/bootstrap/ads.yaml provides beside ADS: the rate limit service.
    rls = bootstrap.static_resources.clusters.add()
    rls.name = RATELIMIT_CLUSTER
    rls.type = Cluster.STATIC
    rls.connect_timeout.seconds = 1
    rls.http2_protocol_options.SetInParent()
    rls.load_assignment.cluster_name = RATELIMIT_CLUSTER
    address = rls.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address
    address.socket_address.address = "127.0.0.1"
    address.socket_address.port_value = 18000
    return bootstrap


def envoy_validate(bootstrap: Bootstrap, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert ENVOY is not None
    config = tmp_path / "bootstrap.json"
    config.write_text(MessageToJson(bootstrap, preserving_proto_field_name=True))
    return subprocess.run(
        [
            ENVOY,
            "--mode",
            "validate",
            "-c",
            str(config),
            "--base-id",
            str(next(_BASE_IDS)),
            "--concurrency",
            "1",
            "--log-level",
            "warn",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_envoy_accepts_golden_case(golden_case: "GoldenCase", tmp_path: Path) -> None:
    decl, opts = golden_case.load()
    result = envoy_validate(static_bootstrap(build_resources(decl, opts)), tmp_path)
    if golden_case.expected_error is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        # What check_consistent refuses, Envoy refuses too (route to an unknown cluster).
        assert result.returncode != 0
        assert "unknown cluster" in result.stdout + result.stderr


def test_harness_fails_on_a_bad_regex(tmp_path: Path) -> None:
    resources = build_resources(_decl_with_one_route(), NodeGroup())
    route_config = resources[ROUTE_TYPE][0]
    assert isinstance(route_config, RouteConfiguration)
    route_config.virtual_hosts[-1].routes[0].match.safe_regex.regex = "[a-z"
    result = envoy_validate(static_bootstrap(resources), tmp_path)
    assert result.returncode != 0
    assert "missing ]" in result.stdout + result.stderr


def test_harness_fails_on_empty_weighted_clusters(tmp_path: Path) -> None:
    resources = build_resources(_decl_with_one_route(), NodeGroup())
    route_config = resources[ROUTE_TYPE][0]
    assert isinstance(route_config, RouteConfiguration)
    action = route_config.virtual_hosts[-1].routes[0].route
    action.weighted_clusters.SetInParent()
    result = envoy_validate(static_bootstrap(resources), tmp_path)
    assert result.returncode != 0


def _decl_with_one_route() -> Declaration:
    svc = ServiceSpec(name="svc", url="http://10.0.0.1:80")
    route = RouteSpec(name="r", paths=[{"regex": "^/x/.*"}], service="svc")
    return Declaration(revision=1, services={"svc": svc}, routes={"r": route})
