"""The plan controller: advances healthy staged splits and rolls back failing ones.

Runs inside `turnout serve`. Every `tick` it reads the splits with a running plan
and judges the target over the current step, from the load reports Envoy sends
(`LoadStatsSource`):

- unhealthy (error rate above the ceiling, or too far above the baseline's, with
  at least `min_requests` served) → rollback at once, whatever the hold;
- healthy and the hold has passed → advance one step;
- otherwise (too few requests yet, or hold not over) → wait.

A failure is thus acted on within one load-report interval plus one tick of the
errors reaching the proxies' reports, well inside "one hold + one interval".

Each decision is an ordinary split write through `step_split`, with actor
"controller" and the verdict as the reason, so it is a revision and an audit
event like any operator's. The controller keeps no state of its own: the plan's
progress lives on the split, so a restarted Turnout carries on where it was.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from turnout.models.errors import TurnoutError
from turnout.models.freeze import now
from turnout.models.load_stats import LoadStatsSource
from turnout.models.plan import PlanAction, PlanState, PlanStatus, judge, next_due
from turnout.models.split import SplitSpec
from turnout.storage.plan_steps import CONTROLLER_ACTOR, step_split
from turnout.storage.store import Store

log = logging.getLogger(__name__)

DEFAULT_TICK_SECONDS = 0.25


class PlanController:
    def __init__(
        self,
        store: Store,
        load_stats: LoadStatsSource,
        tick: float = DEFAULT_TICK_SECONDS,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store = store
        self._load = load_stats
        self._tick = tick
        self._is_leader = is_leader
        """Plans advance on one replica only: the one holding the leader lock."""

    async def run(self) -> None:
        while True:
            try:
                if self._is_leader():
                    await asyncio.to_thread(self.tick_once)
            except TurnoutError as exc:  # e.g. the database is briefly unavailable
                log.warning("plan controller: %s", exc)
            await asyncio.sleep(self._tick)

    def tick_once(self, at: datetime | None = None) -> list[tuple[str, PlanAction, str]]:
        """Judge every running plan once; returns the steps taken (split, action, why)."""
        fixed = at is not None
        at = at or now()
        taken = []
        for split in self._store.list("split"):
            assert isinstance(split, SplitSpec)
            decision = self._decide(split, at)
            if decision is None:
                continue
            action, reason = decision
            # The step starts when it is written (step_split reads the clock under the
            # write lock), not when the tick began: judging takes time, and the next
            # hold must not look shorter in the audit log than it is.
            try:
                step_split(
                    self._store, split.name, action, CONTROLLER_ACTOR, reason,
                    at=at if fixed else None, expect=split.plan_state,
                )  # fmt: skip
            except TurnoutError as exc:
                # e.g. frozen: retried every tick, so keep the log quiet
                log.debug("plan controller: %s %s skipped: %s", action, split.name, exc)
                continue
            log.info("plan controller: %s %s: %s", action.value, split.name, reason)
            taken.append((split.name, action, reason))
        return taken

    def _decide(self, split: SplitSpec, at: datetime) -> tuple[PlanAction, str] | None:
        plan, state = split.plan, split.plan_state or PlanState()
        if plan is None or state.status is not PlanStatus.RUNNING:
            return None
        since = state.step_started_at or at
        target = self._load.window(plan.target, since)
        baseline = self._load.window(plan.baseline, since)
        verdict = judge(plan.criteria, target, baseline)
        if verdict.healthy is False:
            return PlanAction.ROLLBACK, verdict.reason
        due = next_due(plan, state)
        if verdict.healthy and due is not None and at >= due:
            return PlanAction.ADVANCE, f"held {plan.hold_seconds:g}s; {verdict.reason}"
        return None
