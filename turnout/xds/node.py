"""A proxy's `node`, checked once when its stream starts: its group and listener.

The node id and node cluster name the proxy in logs, `GET /proxies` and LRS; the
node cluster and the metadata `listener_address` / `listener_port` pick the node
group, whose listener Envoy binds. Envoy would reject a listener on a port out of
range or on an address that is not an IP literal (listeners never resolve names),
so such metadata is refused here with INVALID_ARGUMENT naming the field, before
anything is translated for it. Knows nothing of gRPC or of the cache.
"""

import ipaddress
import math

from envoy.config.core.v3.base_pb2 import Node
from google.protobuf.struct_pb2 import Value

from turnout.xds.groups import NodeGroup
from turnout.xds.stream import ProtocolError

DEFAULT_LISTENER_PORT = 10000
DEFAULT_LISTENER_ADDRESS = "0.0.0.0"
MAX_NODE_NAME = 256
"""Longest node id or node cluster accepted: they are log, metric and resource names."""


class InvalidNode(ProtocolError):
    """The first request's `node` is unusable; the stream is closed."""


def node_group(node: Node) -> NodeGroup:
    """The node group a proxy belongs to (node cluster, listener address and port);
    raise `InvalidNode` naming the field and the reason."""
    _check_name("node.id", node.id)
    _check_name("node.cluster", node.cluster)
    fields = node.metadata.fields
    port = DEFAULT_LISTENER_PORT
    if "listener_port" in fields:
        port = _port(fields["listener_port"])
    address = DEFAULT_LISTENER_ADDRESS
    if "listener_address" in fields:
        address = _address(fields["listener_address"])
    return NodeGroup(address=address, port=port, group=node.cluster or "default")


def _check_name(field: str, value: str) -> None:
    if len(value) > MAX_NODE_NAME:
        raise InvalidNode(f"{field}: {len(value)} characters, longer than {MAX_NODE_NAME}")
    if not value.isprintable():
        raise InvalidNode(f"{field}: {value[:64]!r} contains control characters")


def _port(value: Value) -> int:
    field = "node.metadata.listener_port"
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number) or number != int(number):
            raise InvalidNode(f"{field}: {number!r} is not a whole number")
        port = int(number)
    elif kind == "string_value":
        text = value.string_value.strip()
        if not text.isdecimal() or len(text) > 5:
            raise InvalidNode(f"{field}: {value.string_value[:64]!r} is not a port number")
        port = int(text)
    else:
        raise InvalidNode(f"{field}: expected a number, got {kind or 'nothing'}")
    if not 1 <= port <= 65535:
        raise InvalidNode(f"{field}: {port} is out of range (1-65535)")
    return port


def _address(value: Value) -> str:
    field = "node.metadata.listener_address"
    if value.WhichOneof("kind") != "string_value":
        raise InvalidNode(f"{field}: expected a string (an IP address)")
    text = value.string_value
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidNode(
            f"{field}: {text[:64]!r} is not an IP address (Envoy listeners bind to IPs)"
        ) from None
