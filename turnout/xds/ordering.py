"""Make before break: what a stream keeps, and what it leaves out, so a proxy never
holds a route to a cluster it does not have. Pure functions over one subscription
and the snapshot; `stream.py` calls them. Rules (xDS spec, "Eventual consistency
considerations"):

1. A cluster (and its endpoints) gone from the snapshot stays while a route the
   proxy acknowledged, or was sent, still uses it (`held_back`).
2. A route to a cluster the proxy rejected and never held is left out
   (`missing_clusters` names those clusters).
3. A type's version is marked when something is held for old routes, so the
   proxy sees a new version once it is dropped (`version_label`).
"""

import hashlib
from collections.abc import Iterable, Mapping

from turnout.xds.snapshot import CLUSTER_TYPE, ENDPOINT_TYPE, PackedResource, Snapshot
from turnout.xds.subscription import Subscription


def held_back(
    sub: Subscription,
    snapshot: Snapshot,
    route_refs: Iterable[frozenset[str]],
    holding: Mapping[str, PackedResource],
) -> tuple[str, ...]:
    """Clusters (and their endpoints) gone from the snapshot that the proxy's routes,
    acknowledged or in flight (`route_refs`), still use: kept until they no longer
    are. `holding`: what the proxy holds of the type if it accepted everything."""
    if sub.type_url not in (CLUSTER_TYPE, ENDPOINT_TYPE):
        return ()
    used: set[str] = set().union(*route_refs)
    if sub.type_url == ENDPOINT_TYPE and not sub.wildcard:
        used &= sub.names
    gone = used - snapshot.resources(sub.type_url).keys()
    return tuple(sorted(n for n in gone if n in holding and n in sub.sent))


def missing_clusters(
    cds: Subscription | None, snapshot: Snapshot, accepted: Mapping[str, PackedResource]
) -> set[str]:
    """Clusters the client rejected (quarantined in `cds`) and holds no version of
    (`accepted`: the clusters it acknowledged)."""
    if cds is None or not cds.quarantined:
        return set()
    clusters = snapshot.resources(CLUSTER_TYPE)
    return {
        name
        for name, q in list(cds.quarantined.items())
        if name not in accepted
        and (cluster := clusters.get(name)) is not None
        and cluster.hash == q.fingerprint
    }


def version_label(
    version: str, wanted: Mapping[str, PackedResource], snapshot: Snapshot, type_url: str
) -> str:
    """The type's version, marked when clusters or endpoints are held for old routes."""
    extra = sorted(wanted.keys() - snapshot.resources(type_url).keys())
    if not extra:
        return version
    return f"{version}+{hashlib.sha256(','.join(extra).encode()).hexdigest()[:8]}"
