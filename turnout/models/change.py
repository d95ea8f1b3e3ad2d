"""What a commit changed, and how commits are heard: the vocabulary between storage
(which writes and publishes them, `turnout.storage.changes`, `turnout.storage.feed`)
and everything that follows a change (the snapshot cache, key expiry, the dashboard).
Pure data and one Protocol, so `xds` depends on `models` alone.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    """One entity written in a transaction, as its audit event will record it."""

    action: Action
    kind: str
    name: str
    before: dict[str, Any] | None
    """The stored entity before the write (JSON); None on create."""
    after: BaseModel | None
    """The spec written; None on delete."""
    keys: int = 0
    """API keys deleted with it (a consumer's); shown in the summary."""

    @property
    def after_json(self) -> dict[str, Any] | None:
        return self.after.model_dump(mode="json") if self.after is not None else None

    def summary(self) -> str:
        text = f"{self.action.value} {self.kind} {self.name}"
        if self.keys:
            text += f" ({self.keys} API key{'s' if self.keys != 1 else ''})"
        return text


@dataclass(frozen=True)
class Commit:
    """A committed revision, as a feed delivers it."""

    revision: int
    changes: tuple[Change, ...] | None = None
    """Every entity the revision changed, when this process committed it; None when
    the commit was heard of (another process, the poll): read the audit log."""
    followed: bool = False
    """Other writes of this process were under way when it committed (waiting for the
    write lock, say): more commits are coming, so followers coalesce it with them."""


Listener = Callable[[Commit], None]
Unsubscribe = Callable[[], None]


class ChangeFeed(Protocol):
    """Where commits are heard. `subscribe` works before `start` and after `stop`."""

    def subscribe(self, listener: Listener) -> Unsubscribe:
        """Call `listener(commit)` after each commit; returns the unsubscribe function.

        Listeners run in the thread that heard the commit (a writer's, a feed's), so
        they must be quick and thread-safe (e.g. `loop.call_soon_threadsafe`). Commits
        of this process arrive once each, possibly out of order when two writers
        commit close together; a bare revision arrives only when it is newer than
        every one delivered before. An exception in a listener is logged and affects
        neither the write nor the other listeners.
        """
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...
