"""Who is calling, and whether their role allows the request.

Two kinds of bearer token are accepted:
- the bootstrap admin token (TURNOUT_ADMIN_TOKEN, or the one generated on first
  start): role admin, actor "admin";
- a token from `POST /tokens` / `turnout token create`: its own role, and its
  name as the actor written into audit events.

The role a request needs follows from its method: reads need viewer, writes
need operator. Routers that need more (tokens, freeze overrides, restores)
add `Depends(require_role(Role.ADMIN))`.
"""

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from turnout.admin.auth import hash_token, token_matches
from turnout.models.store import Store
from turnout.models.tokens import Role, TokenStore

BOOTSTRAP_ACTOR = "admin"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    name: str
    """The token's owner, as audit events name it."""
    role: Role


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate(request: Request, store: Store, token: str) -> Principal:
    """The principal behind `token`, or 401 (unknown or expired token)."""
    expected: str | None = request.app.state.admin_token_hash or store.admin_token_hash()
    if expected is not None and token_matches(token, expected):
        return Principal(BOOTSTRAP_ACTOR, Role.ADMIN)
    info = TokenStore(store).lookup(hash_token(token))
    if info is None:
        raise unauthorized("invalid bearer token")
    if info.expired():
        raise unauthorized(f"token {info.name!r} expired at {info.expires_at:%Y-%m-%dT%H:%M:%SZ}")
    return Principal(info.name, info.role)


def forbidden(principal: Principal, needed: Role, what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN,
        detail=f"token {principal.name!r} has role {principal.role.value}; "
        f"{what} needs role {needed.value} or higher",
    )


def role_for_method(method: str) -> Role:
    return Role.VIEWER if method.upper() in READ_METHODS else Role.OPERATOR


def require_role(needed: Role) -> Callable[..., Principal]:
    """A dependency that lets only `needed` or higher through (403 otherwise)."""
    from turnout.admin.deps import PrincipalDep  # deps imports this module

    def check(request: Request, principal: PrincipalDep) -> Principal:
        if not principal.role.allows(needed):
            raise forbidden(principal, needed, f"{request.method} {request.url.path}")
        return principal

    return check
