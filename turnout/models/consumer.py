"""The Consumer entity.

A consumer is who calls the public API: a name, tags and groups (labels a route's
`auth.allow_groups` refers to). Its API keys are not part of the spec: they live in
`turnout/models/key.py`.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.examples import CONSUMER, schema_examples
from turnout.models.limits import Limits
from turnout.models.schema import Base
from turnout.models.types import Name, Tags

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
