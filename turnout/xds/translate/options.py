"""Per-node-group inputs to translation, and the names derived from them.

Owns the naming scheme of the resources that do not come from a declared entity
(the listener and the route configuration). Knows nothing of protobufs.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeGroup:
    """The node-group key, named once: what one group of proxies is translated for (its
    listener address and port, and the node cluster `group`, from the node's metadata,
    `turnout.xds.node.node_group`). Proxies of one group share one snapshot."""

    address: str = "0.0.0.0"
    """Address the HTTP listener binds to (node metadata `listener_address`)."""
    port: int = 10000
    """Port the HTTP listener binds to (node metadata `listener_port`)."""
    group: str = "default"
    """The node group (`node.cluster`): its proxies see only the routes attached to it."""


def listener_name(opts: NodeGroup) -> str:
    """`turnout_http_<port>`: one HTTP listener per port."""
    return f"turnout_http_{opts.port}"


def route_configuration_name(opts: NodeGroup) -> str:
    """`turnout_routes_<group>`: the RDS name the group's listeners ask for."""
    return f"turnout_routes_{opts.group}"
