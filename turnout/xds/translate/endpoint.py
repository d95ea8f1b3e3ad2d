"""Service endpoints → `ClusterLoadAssignment`.

Owns the choice between EDS and DNS discovery (`uses_eds`) and the shape of a load
assignment, which serves both the EDS resource and a STRICT_DNS cluster's inline
`load_assignment`. Knows nothing of routes or listeners.
"""

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from turnout.models.declaration import Declaration
from turnout.models.service import ServiceSpec, is_ip


def uses_eds(service: ServiceSpec) -> bool:
    """True when every endpoint is an IP address: Envoy then needs no DNS, and
    endpoint changes travel as small EDS updates instead of a cluster change
    (which would re-warm the cluster)."""
    return all(is_ip(e.address) for e in service.resolved_endpoints())


def build_cluster_load_assignment(service: ServiceSpec) -> ClusterLoadAssignment:
    """One locality holding every endpoint, sorted by (address, port) so that a
    reordered list in the declaration yields the same bytes."""
    endpoints = sorted(service.resolved_endpoints(), key=lambda e: (e.address, e.port))
    cla = ClusterLoadAssignment(cluster_name=service.name)
    # Filled in place: nested constructors copy each sub-message into its parent
    # (three times the cost at 10,000 services).
    lb_endpoints = cla.endpoints.add().lb_endpoints
    for e in endpoints:
        lb = lb_endpoints.add()
        socket = lb.endpoint.address.socket_address
        socket.address, socket.port_value = e.address, e.port
        lb.load_balancing_weight.value = e.weight
    return cla


def build_endpoints(decl: Declaration) -> list[ClusterLoadAssignment]:
    """The EDS resources: one per service whose cluster is of type EDS, sorted by name."""
    return [
        build_cluster_load_assignment(decl.services[name])
        for name in sorted(decl.services)
        if uses_eds(decl.services[name])
    ]
