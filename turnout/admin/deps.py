"""FastAPI dependencies: the store, the proxy status source, auth and the actor.

Everything a handler needs comes from here, so tests and the entry point change
what the app talks to in one place (`create_app`), never in handlers.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from turnout.admin.principal import (
    Principal,
    authenticate,
    forbidden,
    role_for_method,
    unauthorized,
)
from turnout.models.proxy_status import ProxyStatusSource
from turnout.models.store import Store

_bearer = HTTPBearer(
    auto_error=False,
    description="The admin token: TURNOUT_ADMIN_TOKEN, or the one printed on first start.",
)


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_proxy_status(request: Request) -> ProxyStatusSource:
    return request.app.state.proxy_status


StoreDep = Annotated[Store, Depends(get_store)]
ProxyStatusDep = Annotated[ProxyStatusSource, Depends(get_proxy_status)]


def get_principal(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Check the bearer token (bootstrap admin token or a role token); 401 otherwise.

    The bootstrap hash comes from `create_app(admin_token=...)` when given, else
    from the database on every request, so rotation needs no restart.
    """
    if credentials is None:
        raise unauthorized("missing bearer token")
    return authenticate(request, store, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(request: Request, principal: PrincipalDep) -> str:
    """Authenticate, then check the role the method needs (read: viewer, write:
    operator); 403 names the role that is missing. Returns the caller's name."""
    needed = role_for_method(request.method)
    if not principal.role.allows(needed):
        raise forbidden(principal, needed, f"{request.method} {request.url.path}")
    return principal.name


def get_actor(principal: PrincipalDep) -> str:
    """The name written into audit events: the token's owner."""
    return principal.name


ActorDep = Annotated[str, Depends(get_actor)]
