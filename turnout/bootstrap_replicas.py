"""Bootstrap variants: several Turnout replicas, and mTLS to them.

`envoy/bootstrap/ads.yaml` describes the plain case: one replica, plaintext.
When `turnout bootstrap` is given several `--xds-address` or the TLS options,
the rendered template is loaded and its `_turnout_xds` cluster extended:

- one `lb_endpoint` per replica; Envoy's ADS client reconnects through the
  cluster's load balancer, so when one replica dies the stream moves to another;
- `--admin-address`: Envoy's admin listener off loopback, so that Prometheus
  can scrape `/stats/prometheus` (docker-compose.yml);
- an `UpstreamTlsContext` transport socket presenting the proxy's client
  certificate (`--client-cert/--client-key`, from `turnout certs init`), trusting
  only `--xds-ca`, and requiring the server certificate to name one of the
  replica hosts (a DNS or IP SAN).

The same kind of transport socket goes on `_turnout_ratelimit`, naming the rate
limit host: whether that is Turnout's xDS port (TLS whenever xDS is) or
`turnout ratelimit`/`serve --ratelimit-listen` (TLS with the same certificates),
a plaintext call to a TLS port fails, and Envoy's ratelimit filter then lets
every request through, so quotas would silently stop counting.
"""

from dataclasses import dataclass
from typing import Any

import yaml

from turnout.models.service import is_ip

XDS_CLUSTER = "_turnout_xds"
RATELIMIT_CLUSTER = "_turnout_ratelimit"


@dataclass(frozen=True)
class XdsTlsFiles:
    ca: str
    """PEM of the CA that signed Turnout's server certificate."""
    cert: str
    """PEM of this proxy's client certificate."""
    key: str
    """PEM of its private key."""


def _endpoint(host: str, port: int) -> dict[str, Any]:
    return {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}


def transport_socket(tls: XdsTlsFiles, hosts: list[str]) -> dict[str, Any]:
    sans = [
        {"san_type": "IP_ADDRESS" if is_ip(h) else "DNS", "matcher": {"exact": h}}
        for h in dict.fromkeys(hosts)
    ]
    context: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificates": [
                {"certificate_chain": {"filename": tls.cert}, "private_key": {"filename": tls.key}}
            ],
            "validation_context": {
                "trusted_ca": {"filename": tls.ca},
                "match_typed_subject_alt_names": sans,
            },
        },
    }
    if hosts and not is_ip(hosts[0]):
        context["sni"] = hosts[0]
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _list_endpoints(cluster: dict[str, Any], addresses: list[tuple[str, int]]) -> None:
    if any(not is_ip(h) for h, _ in addresses):
        cluster["type"] = "STRICT_DNS"
    cluster["load_assignment"]["endpoints"] = [
        {"lb_endpoints": [_endpoint(h, p) for h, p in addresses]}
    ]


def extend(
    text: str,
    addresses: list[tuple[str, int]],
    tls: XdsTlsFiles | None,
    admin_address: str = "127.0.0.1",
    ratelimit_on_replicas: bool = True,
    ratelimit_addresses: list[tuple[str, int]] | None = None,
) -> str:
    """The rendered bootstrap with every replica listed and, if given, mTLS and an
    admin address other than loopback (for Prometheus in another container).

    `ratelimit_on_replicas`: the rate limit service is `turnout serve` itself (no
    --ratelimit-address), so its cluster lists every replica too: quotas keep being
    counted when one replica dies. `ratelimit_addresses`: several `turnout ratelimit`
    hosts (--ratelimit-address more than once), one endpoint each."""
    if (
        len(addresses) <= 1
        and tls is None
        and admin_address == "127.0.0.1"
        and not ratelimit_addresses
    ):
        return text
    bootstrap = yaml.safe_load(text)
    bootstrap["admin"]["address"]["socket_address"]["address"] = admin_address
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    cluster = clusters[XDS_CLUSTER]
    _list_endpoints(cluster, addresses)
    if ratelimit_on_replicas:
        _list_endpoints(clusters[RATELIMIT_CLUSTER], addresses)
    elif ratelimit_addresses:
        _list_endpoints(clusters[RATELIMIT_CLUSTER], ratelimit_addresses)
    if tls is not None:
        cluster["transport_socket"] = transport_socket(tls, [h for h, _ in addresses])
        ratelimit = clusters[RATELIMIT_CLUSTER]
        rl_hosts = [
            e["endpoint"]["address"]["socket_address"]["address"]
            for group in ratelimit["load_assignment"]["endpoints"]
            for e in group["lb_endpoints"]
        ]
        ratelimit["transport_socket"] = transport_socket(tls, rl_hosts)
    header = (
        "# Envoy bootstrap rendered by `turnout bootstrap` (replicas, rate limit hosts "
        "and/or mTLS).\n"
    )
    return header + yaml.safe_dump(bootstrap, sort_keys=False)
