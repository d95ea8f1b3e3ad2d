"""Staged plans on splits: the schema, and every transition as a pure function.

A plan moves traffic from a split's baseline service to the target being
introduced through `steps` (percent of traffic on the target), holding each step
for `hold_seconds` while the target's health meets `criteria`. Both the operator
endpoints (`/splits/{name}/advance|pause|resume|promote|rollback`) and the
controller (`turnout/controller.py`) change a plan only through `transition`, and
write the result as an ordinary split update: one revision, one audit event with
the actor and the reason.

The plan's progress (`PlanState`) is stored on the split itself, so it is part of
every revision, survives restarts and is restored with the rest.

Weights: the target gets `round(percent * 100)` out of 10 000, the baseline the
rest; at 100 % the baseline's weight is 0 (no traffic at all, its cluster stays).
"""

import itertools
import math
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from turnout.models.errors import Conflict
from turnout.models.load_stats import Load

WEIGHT_SCALE = 10_000
"""Weights of a split under a plan add up to this: percent x 100."""


class PlanCriteria(BaseModel):
    """When a step counts as healthy. Judged over the current step only."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate: Annotated[
        float, Field(ge=0, le=1, description="Ceiling on the target's 5xx share (0.05 = 5 %).")
    ] = 0.05
    max_ratio_vs_baseline: Annotated[
        float | None,
        Field(
            gt=0,
            description="Ceiling on target error rate / baseline error rate; checked only "
            "while the baseline has errors and enough requests. null: not checked.",
        ),
    ] = 2.0
    min_requests: Annotated[
        int, Field(ge=1, description="Requests the target must serve before any judgement.")
    ] = 100


class SplitPlan(BaseModel):
    """Move traffic from `baseline` to `target` step by step."""

    model_config = ConfigDict(extra="forbid")

    target: Annotated[str, Field(description="The service being introduced.")]
    baseline: Annotated[str, Field(description="The service traffic moves away from.")]
    steps: Annotated[
        list[float],
        Field(min_length=1, max_length=32, description="Percent on the target at each step."),
    ] = [1, 10, 50, 100]
    hold_seconds: Annotated[
        float, Field(gt=0, le=7 * 86400, description="How long each step holds.")
    ] = 300
    criteria: PlanCriteria = PlanCriteria()

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError("each step is a percent above 0 and at most 100")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("steps must increase")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100 (all traffic on the target)")
        return steps


class PlanStatus(StrEnum):
    PENDING = "pending"
    """Declared, not started: the split's weights are as written."""
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


class PlanState(BaseModel):
    """Where a plan stands; written by the plan endpoints and the controller."""

    model_config = ConfigDict(extra="forbid")

    status: PlanStatus = PlanStatus.PENDING
    step: Annotated[int, Field(ge=-1, description="Index into steps; -1 before the first.")] = -1
    step_started_at: datetime | None = None
    reason: Annotated[str | None, Field(description="Why the last transition happened.")] = None


class PlanAction(StrEnum):
    ADVANCE = "advance"
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class PlanError(Conflict):
    """A transition that makes no sense in the plan's state (HTTP 409)."""


def percent(plan: SplitPlan, state: PlanState) -> float:
    """The target's share the state stands for."""
    if state.status is PlanStatus.ROLLED_BACK or state.step < 0:
        return 0.0
    return plan.steps[state.step]


def weights(plan: SplitPlan, pct: float) -> dict[str, int]:
    target = round(pct * WEIGHT_SCALE / 100)
    return {plan.target: target, plan.baseline: WEIGHT_SCALE - target}


def transition(
    plan: SplitPlan, state: PlanState, action: PlanAction, at: datetime, reason: str
) -> PlanState:
    """The state after `action`, or `PlanError` when it does not apply."""
    s = state.status
    last = len(plan.steps) - 1
    if action is PlanAction.ROLLBACK:
        return PlanState(status=PlanStatus.ROLLED_BACK, step=-1, step_started_at=at, reason=reason)
    if action is PlanAction.PROMOTE:
        return PlanState(status=PlanStatus.COMPLETED, step=last, step_started_at=at, reason=reason)
    if action is PlanAction.PAUSE:
        if s is not PlanStatus.RUNNING:
            raise PlanError(f"only a running plan can be paused; this one is {s.value}")
        return state.model_copy(update={"status": PlanStatus.PAUSED, "reason": reason})
    if action is PlanAction.RESUME:
        if s is not PlanStatus.PAUSED:
            raise PlanError(f"only a paused plan can be resumed; this one is {s.value}")
        # The hold starts again: figures from before the pause say nothing now.
        return PlanState(
            status=PlanStatus.RUNNING, step=state.step, step_started_at=at, reason=reason
        )
    # ADVANCE: start (from pending or rolled back), move one step on, or finish
    # after the last step (100 %) held.
    if s is PlanStatus.COMPLETED:
        raise PlanError("the plan is completed")
    if s in (PlanStatus.PENDING, PlanStatus.ROLLED_BACK):
        return PlanState(status=PlanStatus.RUNNING, step=0, step_started_at=at, reason=reason)
    if state.step >= last:
        return PlanState(status=PlanStatus.COMPLETED, step=last, step_started_at=at, reason=reason)
    return PlanState(status=s, step=state.step + 1, step_started_at=at, reason=reason)


def next_due(plan: SplitPlan, state: PlanState) -> datetime | None:
    """When the controller may take the next step, or finish after the last (if healthy)."""
    if state.status is not PlanStatus.RUNNING or state.step_started_at is None:
        return None
    return state.step_started_at + timedelta(seconds=plan.hold_seconds)


class Verdict(BaseModel):
    healthy: bool | None = Field(description="null: not enough requests to judge yet.")
    reason: str


def judge(criteria: PlanCriteria, target: Load, baseline: Load) -> Verdict:
    """Judge the target's figures of the current step against the criteria."""
    if target.requests < criteria.min_requests:
        return Verdict(
            healthy=None,
            reason=f"{target.requests} of {criteria.min_requests} requests needed to judge",
        )
    rate = target.error_rate
    if rate > criteria.max_error_rate:
        return Verdict(
            healthy=False,
            reason=f"target error rate {rate:.1%} above the ceiling "
            f"{criteria.max_error_rate:.1%} ({target.errors}/{target.requests})",
        )
    ratio = criteria.max_ratio_vs_baseline
    base = baseline.error_rate
    judged = ratio is not None and baseline.requests >= criteria.min_requests and base > 0
    if judged and rate > ratio * base:  # type: ignore[operator]
        return Verdict(
            healthy=False,
            reason=f"target error rate {rate:.1%} above {ratio}x the baseline's {base:.1%}",
        )
    return Verdict(healthy=True, reason=f"target error rate {rate:.1%} within criteria")


def waiting(
    plan: SplitPlan,
    state: PlanState,
    target: Load,
    baseline: Load,
    at: datetime,
    freezes: list[int],
) -> str | None:
    """Why a running plan has not taken its next step yet, or None when nothing holds it.

    `freezes` are the ids of the active freezes covering the split: they hold every
    step but a rollback. Nothing is said for a plan that is not running, or whose
    target is unhealthy (the controller rolls it back at its next tick).
    """
    if state.status is not PlanStatus.RUNNING:
        return None
    if judge(plan.criteria, target, baseline).healthy is False:
        return None
    reasons = []
    if target.requests < plan.criteria.min_requests:
        reasons.append(f"{target.requests}/{plan.criteria.min_requests} target requests")
    due = next_due(plan, state)
    if due is not None and at < due:
        reasons.append(f"hold: {math.ceil((due - at).total_seconds())} s left")
    if freezes:
        reasons.append("held by freeze " + ", ".join(map(str, freezes)))
    return "; ".join(reasons) or None
