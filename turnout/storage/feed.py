"""The change feed: how every part of `turnout serve` hears that a revision was committed.

One interface, `ChangeFeed`, whatever carries the news. Every store has a
`LocalFeed` (`Store.commits`): a commit in this process publishes its revision AND
the exact changes it made, so the snapshot cache applies them without reading the
audit log. Commits of other processes are heard as a bare revision
(`Commit.changes` is None), and whoever needs the changes reads them from the
audit log (`Store.load_since`). Two feeds add those, chosen at start-up by
`turnout.serve`:

- `PollingFeed` (SQLite): the local commits plus the revision read every
  `SAFETY_POLL_SECONDS`, for a `turnout apply` run against the same database file.
- `turnout.storage.pg_feed.PgChangeFeed` (PostgreSQL): the local commits plus
  LISTEN/NOTIFY from the other replicas, and the same safety poll for a
  notification lost while reconnecting.

Every subscriber (the cache, key expiry, the dashboard) subscribes to that one feed.
"""

import builtins
import logging
import threading
from abc import ABC, abstractmethod
from typing import Protocol

from turnout.models.change import Commit, Listener, Unsubscribe
from turnout.models.errors import StoreUnavailable

log = logging.getLogger(__name__)

SAFETY_POLL_SECONDS = 1.0
"""How often a feed reads the revision, for commits no notification announced."""


class LocalFeed:
    """The commits of this process, with their changes; also where other feeds
    announce what they heard, so every listener hears everything once."""

    def __init__(self) -> None:
        self._listeners: builtins.list[Listener] = []
        self._lock = threading.RLock()  # a listener may (un)subscribe
        self._newest = 0

    def subscribe(self, listener: Listener) -> Unsubscribe:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def start(self) -> None:
        """Nothing to start: commits are published by the store."""

    def stop(self) -> None:
        """Nothing to stop."""

    def publish(self, commit: Commit) -> None:
        """Deliver `commit`: always when it carries its changes (made here); a bare
        revision only when it is newer than every revision delivered so far."""
        with self._lock:
            if commit.changes is None and commit.revision <= self._newest:
                return
            self._newest = max(self._newest, commit.revision)
            for listener in builtins.list(self._listeners):
                try:
                    listener(commit)
                except Exception:
                    log.exception("change feed listener %r failed", listener)

    def announce(self, revision: int) -> None:
        """A revision committed elsewhere (or not yet seen): its changes are in the audit log."""
        self.publish(Commit(revision))


class RevisionSource(Protocol):
    """What the polling feeds need of the store (`turnout.storage.store.Store`)."""

    @property
    def commits(self) -> LocalFeed: ...

    def revision(self) -> int: ...


def poll_once(store: RevisionSource) -> None:
    """Announce the database's revision, if newer than any heard (the safety poll)."""
    try:
        store.commits.announce(store.revision())
    except StoreUnavailable as exc:
        log.debug("change feed revision check: %s", exc)


class ThreadFeed(ABC):
    """The local commits, plus news of other processes' heard by `_run` in a thread."""

    def __init__(self, store: RevisionSource, name: str) -> None:
        self._store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def subscribe(self, listener: Listener) -> Unsubscribe:
        return self._store.commits.subscribe(listener)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @abstractmethod
    def _run(self) -> None:
        """Hear commits until `_stop` is set (runs in the feed's thread)."""


class PollingFeed(ThreadFeed):
    """This process's commits, and every `interval` the revision from the database.

    For SQLite, where no notification crosses processes: a `turnout apply` or
    `import` against the serving database reaches its proxies within `interval`.
    (A restore with --force to a LOWER revision needs a restart.)
    """

    def __init__(self, store: RevisionSource, interval: float = SAFETY_POLL_SECONDS) -> None:
        super().__init__(store, "change-poll")
        self._interval = interval

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            poll_once(self._store)
