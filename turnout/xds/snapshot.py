"""Immutable per-node-group snapshots of serialized Envoy resources.

A snapshot holds, per type URL, a version and the resources packed into `Any`
once; every stream of the group shares those messages. A type's version is the
revision at which its content last changed, so a change that touches only routes
does not push clusters again.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message

from turnout.xds.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
)

if TYPE_CHECKING:
    from turnout.xds.route_parts import RouteParts

# Make-before-break order on ADS (xDS spec, "Eventual consistency considerations");
# extension configs (ECDS) before the listeners whose filters fetch them.
TYPE_ORDER = (CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE)

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "EXTENSION_CONFIG_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "TYPE_ORDER",
    "PackedResource",
    "Snapshot",
    "TypeResources",
    "build_snapshot",
    "pack",
    "packed_bytes",
]


@dataclass(frozen=True)
class PackedResource:
    name: str
    any: Any
    """The resource packed once, deterministically; shared by every stream."""
    hash: str
    """SHA-256 of the serialized resource: its version in Delta xDS."""


def pack(message: Message) -> PackedResource:
    packed = Any()
    packed.Pack(message, deterministic=True)
    name = message.name if hasattr(message, "name") else message.cluster_name  # type: ignore[attr-defined]
    return packed_bytes(name, packed)


def packed_bytes(name: str, packed: Any) -> PackedResource:
    """A resource already serialized into `packed`."""
    return PackedResource(name, packed, hashlib.sha256(packed.value).hexdigest())


@dataclass(frozen=True)
class TypeResources:
    version: str
    resources: dict[str, PackedResource]
    """By name, in name order."""
    digest: str
    """Hash over every resource, to tell whether the type changed."""
    source: object = field(default=None, compare=False, repr=False)
    """The list these were built from: the memo hands the same (never mutated) list on
    when a type did not change, so sorting and digesting 10,000 clusters again is skipped."""


def _type_resources(
    version: str, packed: Iterable[PackedResource], previous: TypeResources | None
) -> TypeResources:
    if previous is not None and previous.source is packed:
        return previous
    resources = {p.name: p for p in sorted(packed, key=lambda p: p.name)}
    digest = hashlib.sha256("".join(f"{n}:{p.hash};" for n, p in resources.items()).encode())
    hexdigest = digest.hexdigest()
    if previous is not None and previous.digest == hexdigest:
        version = previous.version
    return TypeResources(version, resources, hexdigest, packed)


@dataclass(frozen=True)
class Snapshot:
    """Everything one node group receives at one revision."""

    revision: int
    types: dict[str, TypeResources]
    eds_cluster_names: frozenset[str]
    """Clusters whose endpoints come over EDS: they warm until endpoints arrive."""
    route_refs: dict[str, frozenset[str]]
    """Route configuration name → the clusters its routes send traffic to."""
    route_parts: "dict[str, RouteParts]" = field(default_factory=dict)
    """Route configuration name → its per-route parts, to leave quarantined routes out."""

    def version(self, type_url: str) -> str:
        entry = self.types.get(type_url)
        return entry.version if entry else ""

    def resources(self, type_url: str) -> dict[str, PackedResource]:
        entry = self.types.get(type_url)
        return entry.resources if entry else {}


def build_snapshot(
    revision: int,
    packed: dict[str, list[PackedResource]],
    eds_cluster_names: frozenset[str],
    route_refs: dict[str, frozenset[str]],
    previous: Snapshot | None,
    route_parts: "dict[str, RouteParts] | None" = None,
) -> Snapshot:
    """Version `packed` (type URL → resources) against the group's previous snapshot."""
    version = str(revision)
    types: dict[str, TypeResources] = {}
    for type_url in TYPE_ORDER:
        before = previous.types.get(type_url) if previous else None
        types[type_url] = _type_resources(version, packed.get(type_url, []), before)
    return Snapshot(revision, types, eds_cluster_names, route_refs, route_parts or {})
