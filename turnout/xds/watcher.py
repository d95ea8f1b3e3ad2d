"""The seam between the ADS servicer and the cache (go-control-plane's `ConfigWatcher`).

The servicer sees the cache only through `ConfigWatcher`: a stream joins its node
group, asks to be woken when the cache holds a new revision, and reads the group's
current snapshot when woken. `SnapshotCache` is the one in production; a test can
hand the servicer any object with these methods and drive it without a gRPC server.
"""

import asyncio
from collections.abc import Callable
from typing import Protocol

from turnout.xds.groups import NodeGroup
from turnout.xds.snapshot import Snapshot


class ConfigWatcher(Protocol):
    def join(self, node_group: NodeGroup, identity: str | None = None) -> None:
        """A stream of group `node_group` started; raise `TooManyGroups` if it may not."""
        ...

    def leave(self, node_group: NodeGroup, identity: str | None = None) -> None:
        """A stream that joined `node_group` ended."""
        ...

    def watch(self, wake: asyncio.Event) -> Callable[[], None]:
        """Set `wake` whenever there is a new revision; returns the undo."""
        ...

    def snapshot(self, node_group: NodeGroup) -> Snapshot | None:
        """The group's current snapshot, or None while it is not built yet."""
        ...

    def commit_time(self, revision: int) -> float | None:
        """`time.monotonic()` when `revision` was committed, if known."""
        ...
