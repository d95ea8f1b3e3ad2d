"""FastAPI dependencies: the store, the proxy status source, auth and the actor.

Everything a handler needs comes from here, so tests and the entry point change
what the app talks to in one place (`create_app`), never in handlers. They are
`async def` because none of them blocks: FastAPI would run a plain `def` in its
thread pool, one hop per dependency on every request (issue 17).
"""

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from turnout.admin.guard import PRINCIPAL_STATE
from turnout.admin.principal import Principal, unauthorized
from turnout.models.freeze import OVERRIDE_HEADER
from turnout.models.proxy_status import ProxyStatusSource
from turnout.storage.store import Store

_bearer = HTTPBearer(
    auto_error=False,
    description="The admin token: TURNOUT_ADMIN_TOKEN, or the one printed on first start.",
)


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_proxy_status(request: Request) -> ProxyStatusSource:
    return request.app.state.proxy_status


StoreDep = Annotated[Store, Depends(get_store)]
ProxyStatusDep = Annotated[ProxyStatusSource, Depends(get_proxy_status)]


async def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, as `AuthGuard` authenticated and authorized it before the body was
    read. `_credentials` is only there so the OpenAPI document shows the scheme."""
    principal = getattr(request.state, PRINCIPAL_STATE, None)
    if not isinstance(principal, Principal):  # the app was assembled without the guard
        raise unauthorized("missing bearer token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_actor(principal: PrincipalDep) -> str:
    """The name written into audit events: the token's owner."""
    return principal.name


ActorDep = Annotated[str, Depends(get_actor)]


async def freeze_override(
    _principal: PrincipalDep,
    reason: Annotated[
        str | None,
        Header(
            alias=OVERRIDE_HEADER,
            description="Write through an active freeze for this one request; the reason "
            "is audited. Admin role only.",
            max_length=1024,
        ),
    ] = None,
) -> str | None:
    """The override reason a write may use to pass a freeze, or None. Who may send
    it is a rule of `turnout/admin/roles.py`, checked before the handler runs."""
    if reason is None or not reason.strip():
        return None
    return reason.strip()


OverrideDep = Annotated[str | None, Depends(freeze_override)]
