"""Render the Envoy bootstrap that points a proxy at Turnout (envoy/bootstrap/)."""

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from turnout.bootstrap_replicas import XdsTlsFiles, extend
from turnout.models.service import is_ip

TEMPLATE = "ads.yaml"

# In a source checkout the templates sit in envoy/bootstrap/; an installed wheel
# carries them as the data package `turnout.bootstrap` (pyproject.toml).
_SOURCE_DIR = Path(__file__).resolve().parent.parent / "envoy" / "bootstrap"


def read_template(name: str = TEMPLATE) -> str:
    if (_SOURCE_DIR / name).is_file():
        return (_SOURCE_DIR / name).read_text()
    return resources.files("turnout.bootstrap").joinpath(name).read_text()


@dataclass(frozen=True)
class BootstrapOptions:
    node_id: str
    node_cluster: str = "default"
    xds_address: str = "127.0.0.1:18000"
    listener_port: int = 10000
    listener_address: str = "0.0.0.0"
    admin_port: int = 9901
    delta: bool = False
    """Use Delta (incremental) xDS: `DELTA_GRPC` instead of State of the World."""
    more_xds_addresses: tuple[str, ...] = field(default_factory=tuple)
    """Further replicas (HOST:PORT) besides `xds_address`."""
    xds_tls: XdsTlsFiles | None = None
    """mTLS to Turnout (turnout/bootstrap_replicas.py)."""
    admin_address: str = "127.0.0.1"
    """Where Envoy's admin listener binds."""
    ratelimit_address: str | None = None
    """The rate limit service (HOST:PORT); default: `xds_address` (`turnout serve`)."""
    more_ratelimit_addresses: tuple[str, ...] = field(default_factory=tuple)
    """Further rate limit service hosts (HOST:PORT) besides `ratelimit_address`."""


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def render_bootstrap(opts: BootstrapOptions) -> str:
    host, port = split_host_port(opts.xds_address)
    rl_host, rl_port = split_host_port(opts.ratelimit_address or opts.xds_address)
    text = Template(read_template()).substitute(
        node_id=opts.node_id,
        node_cluster=opts.node_cluster,
        listener_address=opts.listener_address,
        listener_port=opts.listener_port,
        ads_api_type="DELTA_GRPC" if opts.delta else "GRPC",
        xds_cluster_type="STATIC" if is_ip(host) else "STRICT_DNS",
        xds_host=host,
        xds_port=port,
        admin_port=opts.admin_port,
        ratelimit_cluster_type="STATIC" if is_ip(rl_host) else "STRICT_DNS",
        ratelimit_host=rl_host,
        ratelimit_port=rl_port,
    )
    addresses = [(host, port), *(split_host_port(a) for a in opts.more_xds_addresses)]
    if opts.more_ratelimit_addresses and opts.ratelimit_address is None:
        raise ValueError("more rate limit addresses need a first one")
    ratelimit = [(rl_host, rl_port), *(split_host_port(a) for a in opts.more_ratelimit_addresses)]
    return extend(
        text,
        addresses,
        opts.xds_tls,
        opts.admin_address,
        opts.ratelimit_address is None,
        ratelimit if opts.more_ratelimit_addresses else None,
    )
