"""`AuthGuard`: every request's token and role are checked before anything else.

An ASGI middleware rather than a FastAPI dependency because FastAPI parses the
body before dependencies run: a malformed body without a token would get 422
and tell an anonymous caller about the schema. Here the order is fixed:

    public path (roles.PUBLIC_PATHS)  -> served
    the dashboard (UI_PREFIX)         -> served; it checks its session cookie itself
    no or bad token                   -> 401 (on every other path, known or not)
    role below the route's rule       -> 403 naming the role needed
    override header without admin     -> 403
    otherwise                         -> the route (body parsed, 422, 404, ...)

The principal is left in the request state for the handlers (`deps.py`).
"""

from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from turnout.admin.errors import ERROR_STATUS, error_body
from turnout.admin.principal import (
    Principal,
    authenticate,
    bootstrap_admin,
    forbidden,
    unauthorized,
)
from turnout.admin.roles import OVERRIDE_ROLE, PUBLIC_PATHS, needs_override_role, rule_for
from turnout.models.freeze import OVERRIDE_HEADER

PRINCIPAL_STATE = "principal"
UI_PREFIX = "/ui"
"""The dashboard (turnout/admin/ui): cookie sessions instead of bearer tokens."""


class AuthGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or _is_ui(path):
            await self.app(scope, receive, send)
            return
        try:
            principal = _bootstrap_admin(scope)
            if principal is None:  # a token to look up in the database
                principal = await run_in_threadpool(_authenticate, scope)
            _authorize(scope, principal)
        except HTTPException as exc:
            await _answer(exc.status_code, {"detail": exc.detail}, exc.headers)(
                scope, receive, send
            )
            return
        except tuple(ERROR_STATUS) as exc:  # the database is down: 503, not 500
            status = next(ERROR_STATUS[c] for c in type(exc).__mro__ if c in ERROR_STATUS)
            await _answer(status, error_body(exc))(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self.app(scope, receive, send)


def _is_ui(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def _answer(status: int, body: dict[str, Any], headers: Any = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _bootstrap_admin(scope: Scope) -> Principal | None:
    """The admin, if the app was given its token and this is it: a hash compare on
    the loop, no thread hop (issue 17). None for anything else, which
    `_authenticate` answers in the thread pool as before."""
    expected = scope["app"].state.admin_token_hash
    if expected is None:
        return None  # the hash lives in the database
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return bootstrap_admin(expected, token.strip())


def _authenticate(scope: Scope) -> Principal:
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing bearer token")
    state = scope["app"].state
    return authenticate(state.admin_token_hash, state.store, token.strip())


def _authorize(scope: Scope, principal: Principal) -> None:
    rule = rule_for(scope["method"], scope["path"])
    if rule is not None and not principal.role.allows(rule.role):
        raise forbidden(principal, rule.role, rule.what)
    if needs_override_role(Headers(scope=scope)) and not principal.role.allows(OVERRIDE_ROLE):
        raise forbidden(principal, OVERRIDE_ROLE, f"overriding a freeze ({OVERRIDE_HEADER})")
