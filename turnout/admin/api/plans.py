"""Staged plans on splits: `POST /splits/{name}/advance|pause|resume|promote|rollback`,
and `GET /splits/{name}` with the plan's progress and the observed figures.

Mounted before the generic split router, so its `GET /splits/{name}` (the spec
plus `plan_status`) is the one served. Every action is one revision with an
audit event naming the caller and the reason; a rollback is never frozen.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from turnout.admin.api.entities import REVISION_HEADER
from turnout.admin.deps import ActorDep, OverrideDep, StoreDep
from turnout.admin.errors import CHANGE, LOOKUP, documented, errors
from turnout.models import examples
from turnout.models.freeze import Freeze, now
from turnout.models.load_stats import Load, LoadStatsSource, NoLoadStats
from turnout.models.plan import PlanAction, PlanState, next_due, percent, waiting
from turnout.models.split import SplitSpec
from turnout.storage.plan_steps import holding_freezes, step_split

router = APIRouter(prefix="/splits", tags=["splits"])

NamePath = Annotated[
    str,
    Path(
        description="Name of the split.",
        openapi_examples=examples.name_example(examples.SPLIT),
    ),
]


class ObservedLoad(BaseModel):
    requests: int
    errors: int
    error_rate: float


class PlanStatusView(BaseModel):
    percent: float = Field(description="Share of traffic on the target now.")
    next_percent: float | None = Field(description="The next step's share; null at the end.")
    next_step_due: datetime | None = Field(
        description="When the controller takes the next step if the criteria hold."
    )
    window_since: datetime | None = Field(description="Start of the current step.")
    observed: dict[str, ObservedLoad] = Field(
        description="Per target service, over the current step, from the load reports."
    )
    waiting: str | None = Field(
        None,
        description='Why a running plan has not stepped on yet: "4/20 target requests", '
        '"hold: 120 s left", "held by freeze 3" (joined by "; "); null when nothing holds it.',
    )


class SplitView(SplitSpec):
    plan_status: PlanStatusView | None = None


class ActionBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.schema_examples(examples.PLAN_ACTION))

    reason: Annotated[
        str, Field(max_length=1024, description="Recorded in the audit event and plan_state.")
    ] = ""


def load_stats_source(request: Request) -> LoadStatsSource:
    return getattr(request.app.state, "load_stats", None) or NoLoadStats()


def _observed(load: Load) -> ObservedLoad:
    return ObservedLoad(requests=load.requests, errors=load.errors, error_rate=load.error_rate)


def split_view(
    split: SplitSpec, load_stats: LoadStatsSource, freezes: list[Freeze] | None = None
) -> SplitView:
    view = SplitView.model_validate(split.model_dump())
    if split.plan is None:
        return view
    plan, state = split.plan, split.plan_state or PlanState()
    pct = percent(plan, state)
    later = [s for s in plan.steps if s > pct]
    since = state.step_started_at
    at = now()
    loads = {
        service: load_stats.window(service, since) if since else Load()
        for service in (plan.target, plan.baseline)
    }
    view.plan_status = PlanStatusView(
        percent=pct,
        next_percent=later[0] if later else None,
        next_step_due=next_due(plan, state),
        window_since=since,
        observed={
            t.service: _observed(load_stats.window(t.service, since))
            if since
            else ObservedLoad(requests=0, errors=0, error_rate=0.0)
            for t in split.targets
        },
        waiting=waiting(
            plan,
            state,
            loads[plan.target],
            loads[plan.baseline],
            at,
            holding_freezes(freezes or [], split, at),
        ),
    )
    return view


@router.get(
    "/{name}",
    response_model=SplitView,
    summary="Get a split, with its plan's progress",
    description="The split as stored; with a plan, `plan_status`: the share on the target "
    "now, the next step and when it is due, the figures observed over this step and what "
    "holds the plan.",
    responses=LOOKUP,
)
def get_split(name: NamePath, store: StoreDep, request: Request) -> SplitView:
    split = store.get("split", name)
    assert isinstance(split, SplitSpec)
    return split_view(split, load_stats_source(request), store.freezes.list())


def _action_endpoint(action: PlanAction) -> None:
    summaries = {
        PlanAction.ADVANCE: "Start the plan, or move it one step on now",
        PlanAction.PAUSE: "Pause the plan (the controller leaves it alone)",
        PlanAction.RESUME: "Resume a paused plan (the hold starts again)",
        PlanAction.PROMOTE: "Send all traffic to the target now",
        PlanAction.ROLLBACK: "Send all traffic back to the baseline now (never frozen)",
    }

    # A rollback is never frozen (it is the way out): no 423 for it.
    gated = action is not PlanAction.ROLLBACK
    responses = CHANGE if gated else errors(400, 404, 409, 422)

    @router.post(
        f"/{{name}}/{action.value}",
        response_model=SplitView,
        summary=summaries[action],
        description=f"{summaries[action]}. One revision and one audit event naming the "
        "caller and the reason; answers the split with its plan's progress. 409 when the "
        "split has no plan or the action does not apply in the plan's state."
        + ("" if gated else " Goes through any freeze."),
        responses=responses | {409: documented("No plan, or the action does not apply now.")},
        name=f"plan_{action.value}",
    )
    def act(
        name: NamePath,
        response: Response,
        request: Request,
        store: StoreDep,
        actor: ActorDep,
        override: OverrideDep,
        body: Annotated[
            ActionBody | None,
            Body(openapi_examples=examples.openapi_examples(examples.PLAN_ACTION)),
        ] = None,
    ) -> SplitView:
        reason = (body.reason if body else "") or f"{action.value} by {actor}"
        split, revision = step_split(store, name, action, actor, reason, override_reason=override)
        response.headers[REVISION_HEADER] = str(revision)
        return split_view(split, load_stats_source(request), store.freezes.list())


for _action in PlanAction:
    _action_endpoint(_action)
