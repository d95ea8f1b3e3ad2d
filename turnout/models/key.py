"""A consumer's API keys: what is given, what is shown, what translation sees, how stored.

Keys are not part of the consumer's spec: they are generated (or imported) through
`POST /consumers/{name}/keys`, stored encrypted (`turnout/storage/keycrypt.py`) and
never shown again after creation; only an id and a short prefix are. Keys live in
their own table so adding or revoking one writes one row, and the declaration
carries them decrypted as `ApiKey` for translation. Storing and reading them is
`turnout/storage/keystore.py`'s.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.examples import KEY, schema_examples
from turnout.models.schema import Base, UtcDateTime

KEY_PATTERN = r"^[A-Za-z0-9._~+=-]{16,256}$"
"""Characters a key may use: safe in a header, a query parameter and a path segment."""
KEY_PREFIX_LENGTH = 8
"""How many leading characters of a key are kept in clear to recognise it."""


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
