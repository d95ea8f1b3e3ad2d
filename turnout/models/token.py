"""Admin tokens with roles: the role ladder, what is given, shown and stored, and
how a token is made, hashed and checked.

    viewer    read everything
    operator  viewer + write the declaration and drive splits
    admin     operator + manage tokens, freeze overrides, restores

Only the sha256 hex of a token is stored (`token_sha256`) or compared, so neither
the database nor a timing side channel reveals the token itself; the token is shown
once, when it is created. Storing them is `turnout/storage/tokens.py`'s.
"""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.schema import Base, UtcDateTime
from turnout.models.types import Name

TOKEN_BYTES = 32
"""256 bits of randomness: a token is unguessable, so a fast hash is enough."""
MAX_LIFETIME_SECONDS = 100 * 365 * 86400
"""The longest lifetime a token may be given; beyond it dates overflow (year 9999)."""


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: "Role") -> bool:
        """Whether a token of this role may do what needs `needed`."""
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class TokenRow(Base):
    __tablename__ = "tokens"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TokenInfo(BaseModel):
    """A token as the admin API lists it: never the token or its hash."""

    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="Owner of the token; audit events name it as the actor.")
    role: Role
    created_at: datetime
    created_by: str = Field(description="Who created the token.")
    expires_at: datetime | None = Field(None, description="After this the token gets 401.")

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


# The answer to `POST /tokens`, the only time `token` is shown. (No docstring: it
# would become the OpenAPI schema's description, which has none.)
class CreatedToken(TokenInfo):
    token: str = Field(description="The bearer token. Shown only in this response.")


class TokenCreate(BaseModel):
    """The body of `POST /tokens`."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Who the token is for (a person or a CI job).")
    role: Role
    expires_in_seconds: int | None = Field(
        None,
        ge=1,
        le=MAX_LIFETIME_SECONDS,
        description="Lifetime, at most 100 years; the token never expires when left out.",
    )


def generate_token() -> str:
    """A new random token, URL-safe, to be shown to the operator once."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The sha256 hex digest under which `token` is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, expected_hash: str) -> bool:
    """Whether `token` hashes to `expected_hash`, compared in constant time."""
    return hmac.compare_digest(hash_token(token), expected_hash.lower())


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """ "90", "90s", "15m", "12h" or "30d" as a positive timedelta."""
    text = text.strip().lower()
    unit = text[-1] if text and text[-1] in _UNITS else "s"
    number = text[:-1] if text and text[-1] in _UNITS else text
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"expected a duration such as 3600, 15m, 12h or 30d, got {text!r}")
    seconds = int(number) * _UNITS[unit]
    if seconds > MAX_LIFETIME_SECONDS:
        raise ValueError(f"at most 100 years ({MAX_LIFETIME_SECONDS} seconds), got {text!r}")
    return timedelta(seconds=seconds)
