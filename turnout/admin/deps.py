"""FastAPI dependencies: the store, the proxy status source, auth and the actor.

Everything a handler needs comes from here, so tests and the entry point change
what the app talks to in one place (`create_app`), never in handlers.
"""

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from turnout.admin.auth import token_matches
from turnout.models.freeze import OVERRIDE_HEADER
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


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def require_admin(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Check the bearer token; return who is calling (for now always "admin").

    The expected hash comes from `create_app(admin_token=...)` when given, else from
    the database on every request, so a token rotated by `turnout` takes effect
    without a restart.
    """
    if credentials is None:
        raise _unauthorized("missing bearer token")
    expected: str | None = request.app.state.admin_token_hash or store.admin_token_hash()
    if expected is None or not token_matches(credentials.credentials, expected):
        raise _unauthorized("invalid bearer token")
    return "admin"


def get_actor(principal: Annotated[str, Depends(require_admin)]) -> str:
    """The name written into audit events. Tokens with owners will change this."""
    return principal


ActorDep = Annotated[str, Depends(get_actor)]


def freeze_override(
    principal: Annotated[str, Depends(require_admin)],
    reason: Annotated[
        str | None,
        Header(
            alias=OVERRIDE_HEADER,
            description="Write through an active freeze for this one request; the reason "
            "is audited. Admin only.",
            max_length=1024,
        ),
    ] = None,
) -> str | None:
    """The override reason a write may use to pass a freeze, or None.

    The ONE place that decides who may override a freeze. Every principal is the
    admin today; when tokens get roles (#6) this is where only the admin role keeps
    the right (answer 403 for others).
    """
    if reason is None or not reason.strip():
        return None
    _ = principal
    return reason.strip()


OverrideDep = Annotated[str | None, Depends(freeze_override)]
