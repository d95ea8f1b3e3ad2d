"""The Consumer entity and its API keys.

A consumer is who calls the public API: a name, tags and groups (labels a route's
`auth.allow_groups` refers to). Its keys are not part of the spec: they are
generated (or imported) through `POST /consumers/{name}/keys`, stored encrypted
(`turnout/storage/keycrypt.py`) and never shown again after creation; only an id and
a short prefix are. Keys live in their own table so adding or revoking one writes
one row, and the declaration carries them decrypted as `ApiKey` for translation.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.examples import CONSUMER, KEY, schema_examples
from turnout.models.limits import Limits
from turnout.models.schema import Base, UtcDateTime
from turnout.models.types import Name, Tags

KEY_PATTERN = r"^[A-Za-z0-9._~+=-]{16,256}$"
"""Characters a key may use: safe in a header, a query parameter and a path segment."""
KEY_PREFIX_LENGTH = 8
"""How many leading characters of a key are kept in clear to recognise it."""


MAX_KONG_VALUE = 255
"""Characters of a Kong id or custom_id (a header value)."""
KongHeaderValue = Annotated[
    str,
    Field(
        min_length=1,
        # A header value Envoy sends as is: visible ASCII and inner spaces only.
        pattern=r"^[!-~](?:[ -~]*[!-~])?$",
    ),
]


class ConsumerSpec(BaseModel):
    """A caller of the API, authenticated by one of its keys."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(CONSUMER))

    name: Name
    groups: Annotated[
        list[Name],
        Field(
            description="Groups this consumer belongs to; a route may allow whole groups.",
            max_length=32,
        ),
    ] = []
    limits: Annotated[
        Limits | None,
        Field(description="This consumer's plan: quota over all routes, burst per route."),
    ] = None
    kong_id: Annotated[
        KongHeaderValue | None,
        Field(
            description="The consumer's id in Kong, sent upstream as `X-Consumer-ID` on "
            "routes with `auth.kong_consumer_headers` (imported from Kong).",
            max_length=MAX_KONG_VALUE,
        ),
    ] = None
    custom_id: Annotated[
        KongHeaderValue | None,
        Field(
            description="Kong's `custom_id` of the consumer, sent upstream as "
            "`X-Consumer-Custom-ID` on routes with `auth.kong_consumer_headers`.",
            max_length=MAX_KONG_VALUE,
        ),
    ] = None
    tags: Tags

    @field_validator("groups")
    @classmethod
    def _groups(cls, groups: list[str]) -> list[str]:
        if len(set(groups)) != len(groups):
            raise ValueError("groups must not repeat")
        return sorted(groups)


class ConsumerRow(Base):
    """How a `ConsumerSpec` is stored."""

    __tablename__ = "consumers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    groups: Mapped[list[str]] = mapped_column(JSON)
    limits: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True))
    kong_id: Mapped[str | None] = mapped_column(String(MAX_KONG_VALUE), nullable=True)
    custom_id: Mapped[str | None] = mapped_column(String(MAX_KONG_VALUE), nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON)


class KeyCreate(BaseModel):
    """Body of `POST /consumers/{name}/keys`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(KEY))

    key: Annotated[
        str | None,
        Field(
            description="The key to import (migrating from another gateway); 16-256 of "
            "A-Z a-z 0-9 . _ ~ + = -. Omit it to have a strong key generated.",
            pattern=KEY_PATTERN,
        ),
    ] = None
    expires_at: Annotated[
        AwareDatetime | None,
        Field(description="When the key stops working (RFC 3339 with a time zone)."),
    ] = None


class KeyInfo(BaseModel):
    """What is shown about a key after creation: never the key itself."""

    id: Annotated[str, Field(description="Identifier used to revoke the key.")]
    consumer: str
    prefix: Annotated[str, Field(description="The first characters of the key.")]
    created_at: datetime
    expires_at: datetime | None = None


class KeyCreated(KeyInfo):
    """The answer to `POST /consumers/{name}/keys`: the only time `key` is shown."""

    key: Annotated[str, Field(description="The API key. Shown once; store it now.")]


@dataclass(frozen=True)
class ApiKey:
    """A decrypted, unexpired key as translation sees it."""

    id: str
    """The key's id (stable; orders credentials deterministically)."""
    consumer: str
    """Name of the consumer the key authenticates."""
    key: str
    """The key in clear."""


class ConsumerKeyRow(Base):
    """One API key: encrypted, with a keyed hash for duplicate checks.

    `lookup_hash` is HMAC-SHA256 of the key under a key derived from
    TURNOUT_SECRET_KEY, unique across all consumers: a duplicate is found with one
    index lookup instead of decrypting every key.
    """

    __tablename__ = "consumer_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(128), ForeignKey("consumers.name"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
