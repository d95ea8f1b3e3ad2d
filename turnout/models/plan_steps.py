"""Taking one plan step on a stored split: shared by the plan endpoints and the controller.

The transition is computed from the split as read INSIDE the write transaction
(`Store.modify`), so a controller step and an operator's pause cannot overwrite
each other. A rollback is exempt from freezes: returning traffic to the baseline
must always be possible.
"""

from datetime import datetime

from pydantic import BaseModel

from turnout.models.freeze import now
from turnout.models.plan import PlanAction, PlanError, PlanState, percent, transition, weights
from turnout.models.split import SplitSpec, SplitTarget
from turnout.models.store import Store

CONTROLLER_ACTOR = "controller"


def step_split(
    store: Store,
    name: str,
    action: PlanAction,
    actor: str,
    reason: str,
    *,
    at: datetime | None = None,
    expect: PlanState | None = None,
    override_reason: str | None = None,
) -> tuple[SplitSpec, int]:
    """Apply `action` to split `name`'s plan; the new split and its revision.

    `expect` (the controller's): refuse with `PlanError` if the plan moved since it
    was judged, so a decision is never applied to a state it was not made on.
    """
    at = at or now()

    def change(current: BaseModel) -> BaseModel:
        assert isinstance(current, SplitSpec)
        if current.plan is None:
            raise PlanError(f"split {name!r} has no plan")
        state = current.plan_state or PlanState()
        if expect is not None and state != expect:
            raise PlanError(f"split {name!r}'s plan changed meanwhile")
        new_state = transition(current.plan, state, action, at, reason)
        update: dict[str, object] = {"plan_state": new_state}
        if action not in (PlanAction.PAUSE, PlanAction.RESUME):
            split = weights(current.plan, percent(current.plan, new_state))
            update["targets"] = [SplitTarget(service=s, weight=w) for s, w in sorted(split.items())]
        return SplitSpec.model_validate({**current.model_dump(), **update})

    spec, revision = store.modify(
        "split",
        name,
        change,
        actor,
        reason=f"{action.value}: {reason}",
        override_reason=override_reason,
        freeze_exempt=action is PlanAction.ROLLBACK,
    )
    assert isinstance(spec, SplitSpec)
    return spec, revision
