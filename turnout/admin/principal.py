"""Who is calling: a bearer token turned into a `Principal`, or a 401/403 answer.

Two kinds of bearer token are accepted:
- the bootstrap admin token (TURNOUT_ADMIN_TOKEN, or the one generated on first
  start): role admin, actor "admin";
- a token from `POST /tokens` / `turnout token create`: its own role, and its
  name as the actor written into audit events.

What each role may call is not decided here but in `turnout/admin/roles.py`.
"""

from dataclasses import dataclass

from fastapi import HTTPException, status

from turnout.models.token import Role, hash_token, token_matches
from turnout.storage.store import Store

BOOTSTRAP_ACTOR = "admin"


@dataclass(frozen=True)
class Principal:
    name: str
    """The token's owner, as audit events name it."""
    role: Role


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def bootstrap_admin(expected_hash: str | None, token: str) -> Principal | None:
    """The admin, if `token` is the bootstrap admin token (sha256 hex `expected_hash`)."""
    if expected_hash is not None and token_matches(token, expected_hash):
        return Principal(BOOTSTRAP_ACTOR, Role.ADMIN)
    return None


def authenticate(bootstrap_hash: str | None, store: Store, token: str) -> Principal:
    """The principal behind `token`, or 401 (unknown or expired token).

    `bootstrap_hash` comes from `create_app(admin_token=...)` when given, else from
    the database on every request, so rotation needs no restart.
    """
    admin = bootstrap_admin(bootstrap_hash or store.admin_token_hash(), token)
    if admin is not None:
        return admin
    info = store.tokens.lookup(hash_token(token))
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
