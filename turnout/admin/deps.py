"""FastAPI dependencies: the store, the proxy status source, auth and the actor.

Everything a handler needs comes from here, so tests and the entry point change
what the app talks to in one place (`create_app`), never in handlers.
"""

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from turnout.admin.principal import (
    Principal,
    authenticate,
    forbidden,
    role_for_method,
    unauthorized,
)
from turnout.models.freeze import OVERRIDE_HEADER
from turnout.models.proxy_status import ProxyStatusSource
from turnout.models.store import Store
from turnout.models.tokens import Role

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


def freeze_override(
    principal: PrincipalDep,
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
    """The override reason a write may use to pass a freeze, or None.

    The ONE place that decides who may override a freeze: the admin role (403 for
    any other role that sends the header).
    """
    if reason is None or not reason.strip():
        return None
    if not principal.role.allows(Role.ADMIN):
        raise forbidden(principal, Role.ADMIN, f"overriding a freeze ({OVERRIDE_HEADER})")
    return reason.strip()


OverrideDep = Annotated[str | None, Depends(freeze_override)]
