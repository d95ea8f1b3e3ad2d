"""What each dashboard page shows, read through the same store and sources as the API.

Pure assembly of plain data for the templates; no HTTP here.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from turnout.admin.api.plans import SplitView, split_view
from turnout.admin.api.proxies import redacted_status
from turnout.models.consumer import ConsumerSpec
from turnout.models.freeze import Freeze, now
from turnout.models.load_stats import LoadStatsSource
from turnout.models.plan import PlanStatus
from turnout.models.proxy_status import ProxyStatus, ProxyStatusSource
from turnout.models.split import SplitSpec
from turnout.ratelimit.usage import QuotaReader
from turnout.storage.revisions import diff
from turnout.storage.store import Store


@dataclass(frozen=True)
class BoardRow:
    split: SplitView
    rolled_back: str | None
    """The reason of the plan's rollback, when it stands rolled back."""


def active_freezes(store: Store) -> list[Freeze]:
    at = now()
    return [f for f in store.freezes.list() if f.active(at)]


def board(store: Store, load_stats: LoadStatsSource) -> list[BoardRow]:
    freezes = store.freezes.list()
    rows = []
    for split in store.list("split"):
        assert isinstance(split, SplitSpec)
        view = split_view(split, load_stats, freezes)
        state = split.plan_state
        rolled = state.reason if state and state.status is PlanStatus.ROLLED_BACK else None
        rows.append(BoardRow(view, rolled))
    return rows


def fleet(proxy_status: ProxyStatusSource) -> list[ProxyStatus]:
    return sorted((redacted_status(p) for p in proxy_status.proxies()), key=lambda p: p.node_id)


def history(
    store: Store,
    proxy_status: ProxyStatusSource,
    a: int | None,
    b: int | None,
    audit_filter: dict[str, str | None],
) -> dict[str, Any]:
    items, revision = store.revision_listing(50, None)
    running: dict[int | None, list[str]] = defaultdict(list)
    for proxy in proxy_status.proxies():
        running[proxy.revision].append(proxy.node_id)
    changes = None
    if a is not None and b is not None:
        changes = {
            kind: d.model_dump()
            for kind, d in diff(store.declaration_at(a), store.declaration_at(b)).items()
        }
    return {
        "revisions": items,
        "revision": revision,
        "running": running,
        "diff": changes,
        "a": a,
        "b": b,
        "audit": store.audit(100, **audit_filter),
        "audit_filter": audit_filter,
    }


def consumers(store: Store, quota_usage: QuotaReader | None) -> list[dict[str, Any]]:
    """Each consumer, its keys, and its quotas' use (one Redis read for the page)."""
    listed = [c for c in store.list("consumer") if isinstance(c, ConsumerSpec)]
    used = quota_usage.used(listed) if quota_usage is not None else {}
    return [
        {"consumer": c, "keys": store.keys.of(c.name).list(), "quota_use": used.get(c.name, [])}
        for c in listed
    ]
