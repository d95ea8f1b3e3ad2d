"""`GET /proxies`: what each connected Envoy runs, as the xDS side reports it."""

from fastapi import APIRouter

from turnout.admin.deps import ProxyStatusDep
from turnout.models.proxy_status import ProxyStatus

router = APIRouter(tags=["proxies"])


@router.get("/proxies", response_model=list[ProxyStatus], summary="List connected proxies")
def list_proxies(proxy_status: ProxyStatusDep) -> list[ProxyStatus]:
    """Per proxy: the versions sent and acknowledged per resource type, and the last
    rejection (NACK) with Envoy's message, so a bad change is visible here."""
    return proxy_status.proxies()
