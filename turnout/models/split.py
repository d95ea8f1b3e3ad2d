"""The Split entity: a route's traffic divided between services by weight."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.db import Base
from turnout.models.plan import PlanState, SplitPlan
from turnout.models.types import Name, Tags, Weight


class SplitTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Annotated[str, Field(description="Name of a service.")]
    weight: Weight


class SplitSpec(BaseModel):
    """While a split exists for a route, the route's traffic follows the split.

    Weights are relative integers; 0 means no traffic at all, not "a little".
    """

    model_config = ConfigDict(extra="forbid")

    name: Name
    route: Annotated[str, Field(description="Name of the route whose traffic is split.")]
    targets: Annotated[list[SplitTarget], Field(min_length=1, max_length=16)]
    tags: Tags
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
        if self.plan is not None:
            plan = self.plan
            if plan.target == plan.baseline or set(services) != {plan.target, plan.baseline}:
                raise ValueError(
                    "a split with a plan has exactly two targets: plan.baseline and plan.target"
                )
        elif self.plan_state is not None:
            raise ValueError("plan_state needs a plan")
        return self

    def weight_of(self, service: str) -> int:
        return next((t.weight for t in self.targets if t.service == service), 0)


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
    plan: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    plan_state: Mapped[dict[str, object] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
