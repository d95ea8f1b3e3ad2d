"""`GET /proxies`: what each connected Envoy runs, as the xDS side reports it.

Everything served here goes through `redact`: the config sent to a proxy carries
every API key (the api_key_auth ECDS config), and Envoy's rejection text can quote
it; keys are shown once, at creation, and nowhere else.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from turnout.admin.deps import ProxyStatusDep
from turnout.admin.errors import LOOKUP
from turnout.models.errors import NotFound
from turnout.models.proxy_status import ProxyStatus
from turnout.models.redact import redact

router = APIRouter(tags=["proxies"])

NodeId = Annotated[
    str,
    Path(
        description="The proxy's node id (its bootstrap's `node.id`).",
        openapi_examples={"envoy": {"summary": "A proxy", "value": "envoy-1"}},
    ),
]


def redacted_status(proxy: ProxyStatus) -> ProxyStatus:
    # Every string, not only `last_nack`: whatever text the xDS side adds later
    # (quarantine reasons quoting Envoy) is covered too.
    return ProxyStatus.model_validate(redact(proxy.model_dump(mode="json")))


@router.get("/proxies", response_model=list[ProxyStatus], summary="List connected proxies")
def list_proxies(proxy_status: ProxyStatusDep) -> list[ProxyStatus]:
    """Per proxy: the versions sent and acknowledged per resource type, and the last
    rejection (NACK) with Envoy's message, so a bad change is visible here."""
    return [redacted_status(p) for p in proxy_status.proxies()]


@router.get(
    "/proxies/{node_id}", response_model=ProxyStatus, summary="One proxy's status", responses=LOOKUP
)
def get_proxy(node_id: NodeId, proxy_status: ProxyStatusDep) -> ProxyStatus:
    """The state per resource type (SYNCED, STALE, NACKED with Envoy's message) and the
    revision the proxy runs. With several streams under one node id, the newest."""
    matching = [p for p in proxy_status.proxies() if p.node_id == node_id]
    if not matching:
        raise NotFound("proxy", node_id)
    return redacted_status(max(matching, key=lambda p: p.connected_since))


@router.get(
    "/proxies/{node_id}/config",
    summary="The resources Turnout last sent a proxy",
    responses=LOOKUP,
)
def get_proxy_config(node_id: NodeId, proxy_status: ProxyStatusDep) -> dict[str, Any]:
    """Every resource last sent to the proxy, as Envoy JSON, by type URL, with
    credentials (API keys, private keys, tokens) shown as "[redacted]"."""
    config = proxy_status.proxy_config(node_id)
    if config is None:
        raise NotFound("proxy", node_id)
    redacted: dict[str, Any] = redact(config)
    return redacted
