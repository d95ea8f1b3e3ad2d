"""The one translation the proxies are served: a declaration and a node group → resources.

`translate` is what the snapshot cache calls, and what the golden and property tests
run. It reuses what the previous translations built (`TranslationMemo`: results by
entity, kept while the entity's spec object is the same) and checks the references
(`consistency.check_references`) before anything can be published. Its bytes equal
`build_resources`' (the from-scratch translation), serialized deterministically.
"""

from dataclasses import dataclass

from turnout.models.declaration import Declaration
from turnout.xds.memo import SharedResources, TranslationMemo
from turnout.xds.route_parts import RouteParts
from turnout.xds.snapshot import PackedResource
from turnout.xds.translate.consistency import References, check_references, references_of
from turnout.xds.translate.options import NodeGroup
from turnout.xds.translate.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
)


@dataclass(frozen=True)
class Translation:
    """One node group's resources at one revision, packed, consistent."""

    revision: int
    packed: dict[str, list[PackedResource]]
    """Type URL → resources, each list in name order."""
    shared: SharedResources
    """The part every group shares (the same object for every group at a revision)."""
    route_refs: dict[str, frozenset[str]]
    """Route configuration name → the clusters its routes send traffic to."""
    route_parts: dict[str, RouteParts]
    """Route configuration name → its per-route parts."""


def translate(decl: Declaration, group: NodeGroup, previous: TranslationMemo) -> Translation:
    """`group`'s resources for `decl`, rebuilding only what changed since the
    translations `previous` remembers; `TranslationError` if a reference is broken.
    The references are checked whole for a group's first translation (and after a
    failed check); after that, those from or to what changed since the last check."""
    shared = previous.shared(decl)
    parts = previous.route_parts(decl, group)
    listener, packed_listener = previous.listener(group)
    check_references(
        References(
            clusters=shared.cluster_names,
            eds_clusters=shared.eds_services,
            endpoints=shared.eds_cluster_names,
            route_configs=frozenset((parts.name,)),
            extension_configs=frozenset(e.name for e in shared.extension_configs),
            # Read off the message, as for `check_consistent` (one listener: cheap).
            listeners=references_of({LISTENER_TYPE: [listener]}).listeners,
            route_clusters=previous.route_clusters(group.group),
        ),
        previous.check_scope(group.group),
    )
    previous.checked(group.group)
    packed = {
        CLUSTER_TYPE: shared.clusters,
        ENDPOINT_TYPE: shared.endpoints,
        EXTENSION_CONFIG_TYPE: shared.extension_configs,
        LISTENER_TYPE: [packed_listener],
        ROUTE_TYPE: [parts.full],
    }
    refs = previous.clusters_in_use(group.group)
    return Translation(decl.revision, packed, shared, {parts.name: refs}, {parts.name: parts})
