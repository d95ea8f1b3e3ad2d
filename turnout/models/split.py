"""The Split entity: a route's traffic divided between services by weight."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.examples import SPLIT, schema_examples
from turnout.models.plan import PlanState, SplitPlan
from turnout.models.regex import compile_checked, cookie_pair_regex
from turnout.models.schema import Base
from turnout.models.types import (
    CookieName,
    HeaderName,
    Name,
    Tags,
    Weight,
    cookie_value,
    header_value,
)


class SplitTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Annotated[str, Field(description="Name of a service.")]
    weight: Weight


class SplitPin(BaseModel):
    """Requests carrying `header` (or cookie `cookie`) equal to `value` go to `service`.

    The feature flag of a migration: test the new backend in production with
    chosen requests before any random traffic (its weight may be 0).

    `consumer` pins an authenticated consumer (the route needs `auth` with
    `required: true`): the pin matches the route's `auth.consumer_header`, which
    `api_key_auth` sets from the key, and Envoy matches the route again after
    authentication (`turnout/xds/translate/split.py`), so a client forging that
    header is not pinned.
    """

    model_config = ConfigDict(extra="forbid")

    header: Annotated[HeaderName | None, Field(description="Header name.")] = None
    cookie: Annotated[CookieName | None, Field(description="Cookie name.")] = None
    consumer: Annotated[
        Name | None, Field(description="An authenticated consumer (the route needs `auth`).")
    ] = None
    value: Annotated[
        str | None,
        Field(min_length=1, max_length=256, description="Header or cookie value."),
    ] = None
    service: Annotated[str, Field(description="One of the split's target services.")]

    @model_validator(mode="after")
    def _one_source(self) -> "SplitPin":
        given = [self.header is not None, self.cookie is not None, self.consumer is not None]
        if sum(given) != 1:
            raise ValueError("a pin matches one of: a header, a cookie or a consumer")
        if (self.value is None) != (self.consumer is not None):
            raise ValueError("a header or cookie pin needs `value`; a consumer pin has none")
        if self.header is not None and self.value is not None:
            header_value(self.value)
        if self.cookie is not None and self.value is not None:
            cookie_value(self.value)
            # Envoy matches a cookie pin with a regex (split.py), which must stay
            # within its program size limit: long names and values do not fit.
            compile_checked(cookie_pair_regex(self.cookie, self.value), "cookie pin regex")
        return self


class SplitSticky(BaseModel):
    """Keep each client on one target: hash a header's, a cookie's or the consumer's value.

    `consumer: true` hashes the consumer name the route's `auth` forwards upstream
    (`auth.consumer_header`): the router computes the hash when it forwards, after
    the key was checked, so the value is the authenticated consumer, not a header
    a client could choose. It needs the split's route to have `auth`.
    """

    model_config = ConfigDict(extra="forbid")

    header: HeaderName | None = None
    cookie: CookieName | None = None
    consumer: Annotated[
        bool, Field(description="Hash the authenticated consumer (the route needs `auth`).")
    ] = False

    @model_validator(mode="after")
    def _one_source(self) -> "SplitSticky":
        given = [self.header is not None, self.cookie is not None, self.consumer]
        if sum(given) != 1:
            raise ValueError("stickiness hashes one of: a header, a cookie or the consumer")
        return self


class SplitSpec(BaseModel):
    """While a split exists for a route, the route's traffic follows the split.

    Weights are relative integers; 0 means no traffic at all, not "a little".
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(SPLIT))

    name: Name
    route: Annotated[str, Field(description="Name of the route whose traffic is split.")]
    targets: Annotated[list[SplitTarget], Field(min_length=1, max_length=16)]
    tags: Tags
    pins: Annotated[
        list[SplitPin],
        Field(max_length=32, description="Requests sent to a target whatever the weights."),
    ] = []
    sticky: Annotated[
        SplitSticky | None,
        Field(description="Hash-based split: a client keeps its target while weights hold."),
    ] = None
    plan: Annotated[
        SplitPlan | None,
        Field(description="A staged plan moving traffic from baseline to target."),
    ] = None
    plan_state: Annotated[
        PlanState | None,
        Field(description="Where the plan stands; set by the plan endpoints and the controller."),
    ] = None

    @model_validator(mode="after")
    def _weights(self) -> "SplitSpec":
        services = [t.service for t in self.targets]
        if len(set(services)) != len(services):
            raise ValueError("targets must name each service once")
        if not any(t.weight > 0 for t in self.targets):
            raise ValueError("at least one target needs a weight above 0")
        for i, pin in enumerate(self.pins):
            if pin.service not in services:
                raise ValueError(f"pins[{i}].service {pin.service!r} is not one of the targets")
        if self.plan is not None:
            plan = self.plan
            if plan.target == plan.baseline or set(services) != {plan.target, plan.baseline}:
                raise ValueError(
                    "a split with a plan has exactly two targets: plan.baseline and plan.target"
                )
        elif self.plan_state is not None:
            raise ValueError("plan_state needs a plan")
        return self


class SplitRow(Base):
    """How a `SplitSpec` is stored. `targets` is a JSON list of `{service, weight}`.

    `route` is unique: a route has at most one split. Target services are
    checked by the store, since a JSON list cannot carry a foreign key.
    """

    __tablename__ = "splits"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    route: Mapped[str] = mapped_column(String(128), ForeignKey("routes.name"), unique=True)
    targets: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    pins: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    sticky: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    plan: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    plan_state: Mapped[dict[str, object] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
