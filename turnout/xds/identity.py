"""Who a proxy is, by its client certificate, and whether it may claim its node.

With mTLS on (`turnout serve --xds-client-ca`), gRPC has already checked that
the proxy's certificate chains to the client CA before the stream starts. This
module checks the second half: that the node id and node cluster in the
proxy's first DiscoveryRequest are ones its certificate may claim, so a proxy
holding a valid certificate for `edge-1` cannot pose as `billing-1` and receive
its configuration.

The allow-list is a YAML file, a list of rules; a proxy is admitted when one rule
matches one of its certificate names (CN, DNS/URI SANs) and its node:

    - names: ["edge-*"]          # glob over certificate names
      node_clusters: ["edge"]    # and the node cluster must be one of these
    - names: ["*"]
      node_ids: ["{name}"]       # the node id must equal the matching name

`node_ids` and `node_clusters` are globs; `{name}` stands for the certificate
name that matched. A rule with neither admits any node. A node URI SAN
(`spiffe://turnout/node/<id>`, as `turnout certs init` issues) also counts as the
name `<id>`. No allow-list: any certificate from the CA may claim any node.
"""

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NODE_URI_PREFIX = "spiffe://turnout/node/"


class IdentityRefused(Exception):
    """The proxy's certificate does not allow the node it claims."""


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    node_ids: tuple[str, ...] = ()
    node_clusters: tuple[str, ...] = ()

    def admits(self, cert_names: Sequence[str], node_id: str, node_cluster: str) -> bool:
        for name in cert_names:
            if not any(fnmatch.fnmatchcase(name, g) for g in self.names):
                continue
            ids = [g.replace("{name}", name) for g in self.node_ids]
            clusters = [g.replace("{name}", name) for g in self.node_clusters]
            if ids and not any(fnmatch.fnmatchcase(node_id, g) for g in ids):
                continue
            if clusters and not any(fnmatch.fnmatchcase(node_cluster, g) for g in clusters):
                continue
            return True
        return False


@dataclass(frozen=True)
class AllowList:
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, data: Any, source: str = "allow-list") -> "AllowList":
        if not isinstance(data, list):
            raise ValueError(f"{source}: expected a list of rules")
        rules = []
        for i, item in enumerate(data):
            if not isinstance(item, Mapping) or not item.get("names"):
                raise ValueError(f"{source}: rule {i} needs a non-empty 'names' list")
            unknown = set(item) - {"names", "node_ids", "node_clusters"}
            if unknown:
                raise ValueError(f"{source}: rule {i} has unknown keys {sorted(unknown)}")
            rules.append(
                Rule(
                    names=tuple(str(n) for n in item["names"]),
                    node_ids=tuple(str(n) for n in item.get("node_ids") or ()),
                    node_clusters=tuple(str(n) for n in item.get("node_clusters") or ()),
                )
            )
        return cls(tuple(rules))

    @classmethod
    def load(cls, path: Path) -> "AllowList":
        return cls.parse(yaml.safe_load(path.read_text()), str(path))

    def check(self, cert_names: Sequence[str], node_id: str, node_cluster: str) -> None:
        """Raise `IdentityRefused` naming the reason unless a rule admits the node."""
        if not cert_names:
            raise IdentityRefused(
                f"node {node_id!r} (cluster {node_cluster!r}) presented no client certificate"
            )
        if not any(r.admits(cert_names, node_id, node_cluster) for r in self.rules):
            raise IdentityRefused(
                f"certificate {list(cert_names)} may not claim node {node_id!r} "
                f"(cluster {node_cluster!r}): no allow-list rule admits it"
            )


def cert_names(auth_context: Mapping[str, Sequence[bytes]]) -> list[str]:
    """The names in a gRPC peer's certificate: CN, SANs, and node ids from node URIs."""
    names: list[str] = []
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for raw in auth_context.get(key, ()):
            value = raw.decode(errors="replace")
            names.append(value)
            if value.startswith(NODE_URI_PREFIX):
                names.append(value.removeprefix(NODE_URI_PREFIX))
    return list(dict.fromkeys(names))
