"""What one stream's client holds, by type URL: the resources sent to it (what it
holds if it accepted everything) and those it acknowledged, and the clusters the
route configurations of each refer to. `stream.py` records into it; the
make-before-break ordering and the quarantine read it. No I/O.
"""

from collections.abc import Iterable, Mapping

from turnout.xds.snapshot import TYPE_ORDER, PackedResource


class Holdings:
    """One stream's record of what its client was sent and accepted."""

    __slots__ = ("acked", "route_refs_acked", "route_refs_sent", "sent")

    def __init__(self) -> None:
        self.sent: dict[str, dict[str, PackedResource]] = {t: {} for t in TYPE_ORDER}
        """What the client holds if it accepted everything: for `GET /proxies/{id}/config`
        and to keep the clusters and endpoints its routes still use."""
        self.acked: dict[str, dict[str, PackedResource]] = {t: {} for t in TYPE_ORDER}
        """What the client accepted: the versions a quarantined resource falls back to."""
        self.route_refs_sent: dict[str, frozenset[str]] = {}
        self.route_refs_acked: dict[str, frozenset[str]] = {}

    def on_sent(
        self,
        type_url: str,
        resources: Mapping[str, PackedResource],
        removed: Iterable[str],
        route_refs: Mapping[str, frozenset[str]] | None,
        delta: bool,
    ) -> None:
        """Record a response sent; `route_refs` only for the routes type."""
        removed = tuple(removed)
        held = self.sent[type_url]
        if not delta:
            held.clear()  # SotW: the response replaces everything of the type
        held.update(resources)
        for name in removed:
            held.pop(name, None)
        if route_refs is None:
            return
        if not delta:
            self.route_refs_sent = {}
        self.route_refs_sent.update(route_refs)
        for name in removed:
            self.route_refs_sent.pop(name, None)

    def on_ack(self, type_url: str, routes: bool) -> None:
        """The client accepted everything of the type sent so far."""
        self.acked[type_url] = dict(self.sent[type_url])
        if routes:
            self.route_refs_acked = dict(self.route_refs_sent)

    def route_refs(self) -> list[frozenset[str]]:
        """The clusters of every route configuration acknowledged or in flight."""
        return [*self.route_refs_acked.values(), *self.route_refs_sent.values()]

    def fall_back(self, type_url: str, names: Iterable[str]) -> None:
        """The client kept its accepted version of each of `names` (or has none)."""
        held, acked = self.sent[type_url], self.acked[type_url]
        for name in names:
            if name in acked:
                held[name] = acked[name]
            else:
                held.pop(name, None)

    def resources_sent(self) -> dict[str, list[PackedResource]]:
        """By type URL, what the client holds if it accepted everything sent."""
        return {t: list(r.values()) for t, r in self.sent.items() if r}
