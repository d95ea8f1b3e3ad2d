"""`turnout export-static`: the current revision as a static Envoy configuration.

For a cold start while Turnout is down: the file needs no control plane at all.
It is built from the same translators the xDS server uses, then made static:

- the route configuration is inlined into the listener's HTTP connection manager
  (`route_config` instead of `rds`), and so is the API keys' filter config (ECDS),
- EDS clusters become STATIC clusters carrying their endpoints inline.

`turnout serve --export-static-dir DIR` keeps one file per node cluster fresh on
disk (written atomically), so a proxy can start from it at any time.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from turnout.models.declaration import Declaration
from turnout.xds.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    NodeGroup,
    build_resources,
    check_consistent,
    resource_name,
)
from turnout.xds.translate.listener import inline_discovered


def _to_dict(message: Message) -> dict[str, Any]:
    # Through JSON: MessageToDict leaves OrderedDicts inside Any fields, which
    # yaml.safe_dump cannot represent.
    out: dict[str, Any] = json.loads(MessageToJson(message, preserving_proto_field_name=True))
    return out


def static_config(decl: Declaration, opts: NodeGroup, admin_port: int = 9901) -> dict[str, Any]:
    """A complete Envoy bootstrap (dict) serving `decl` with no xDS."""
    resources = build_resources(decl, opts)
    check_consistent(resources)
    [listener] = resources[LISTENER_TYPE]
    assert isinstance(listener, Listener)
    inline_discovered(
        listener,
        {resource_name(r): r for r in resources[ROUTE_TYPE]},  # type: ignore[misc]
        {resource_name(c): c for c in resources[EXTENSION_CONFIG_TYPE]},  # type: ignore[misc]
    )
    endpoints = {resource_name(e): e for e in resources[ENDPOINT_TYPE]}
    static_clusters = [_inline_endpoints(c, endpoints) for c in resources[CLUSTER_TYPE]]  # type: ignore[arg-type]
    return {
        "node": {"id": f"static-{opts.group}", "cluster": opts.group},
        "static_resources": {
            "listeners": [_to_dict(listener)],
            "clusters": [_to_dict(c) for c in static_clusters],
        },
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "layered_runtime": {
            "layers": [
                {
                    "name": "static",
                    "static_layer": {"overload": {"global_downstream_max_connections": 50000}},
                }
            ]
        },
        "turnout_revision_comment": decl.revision,
    }


def _inline_endpoints(cluster: Cluster, endpoints: dict[str, Message]) -> Cluster:
    if cluster.type != Cluster.EDS:
        return cluster
    static = Cluster()
    static.CopyFrom(cluster)
    static.ClearField("eds_cluster_config")
    static.type = Cluster.STATIC
    assignment = endpoints.get(cluster.name)
    if assignment is not None:
        static.load_assignment.CopyFrom(assignment)
    else:
        static.load_assignment.cluster_name = cluster.name
    return static


def render(decl: Declaration, opts: NodeGroup, admin_port: int = 9901) -> str:
    config = static_config(decl, opts, admin_port)
    revision = config.pop("turnout_revision_comment")
    header = (
        f"# Static Envoy configuration exported by Turnout at revision {revision}\n"
        f"# for node cluster {opts.group!r}; no control plane needed.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` so that a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
