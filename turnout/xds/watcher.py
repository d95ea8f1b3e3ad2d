"""The seam between the ADS servicer and the cache (go-control-plane's `ConfigWatcher`).

The servicer sees the cache only through `ConfigWatcher`: a stream joins its node
group, asks to be woken when the cache holds a new revision, and reads the group's
current snapshot when woken. `SnapshotCache` is the one in production; a test can
hand the servicer any object with these methods and drive it without a gRPC server.
"""

import asyncio
from collections.abc import Callable
from typing import Protocol

from turnout.xds.snapshot import Snapshot
from turnout.xds.translate import ListenerOptions


class ConfigWatcher(Protocol):
    def join(self, key: ListenerOptions, identity: str | None = None) -> None:
        """A stream of group `key` started; raise `TooManyGroups` if it may not."""
        ...

    def leave(self, key: ListenerOptions, identity: str | None = None) -> None:
        """A stream that joined `key` ended."""
        ...

    def watch(self, wake: asyncio.Event) -> Callable[[], None]:
        """Set `wake` whenever there is a new revision; returns the undo."""
        ...

    def snapshot(self, key: ListenerOptions) -> Snapshot | None:
        """The group's current snapshot, or None while it is not built yet."""
        ...

    def commit_time(self, revision: int) -> float | None:
        """`time.monotonic()` when `revision` was committed, if known."""
        ...
