"""The node-group book on a fake clock: grace, cap with idle-first eviction, and the
per-certificate bound."""

import pytest

from turnout.xds.groups import GroupBook, TooManyGroups
from turnout.xds.translate import NodeGroup


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def g(name: str) -> NodeGroup:
    return NodeGroup(group=name)


def test_an_idle_group_is_swept_once_its_grace_is_over() -> None:
    clock = Clock()
    book = GroupBook(max_groups=10, max_per_identity=10, grace_seconds=30, clock=clock)
    book.join(g("a"), None)
    book.join(g("a"), None)
    book.leave(g("a"), None)
    assert book.sweep() == ([], None)  # one stream is still there
    book.leave(g("a"), None)
    clock.now = 29
    assert book.sweep() == ([], 1)
    clock.now = 30
    assert book.sweep() == ([g("a")], None)
    assert len(book) == 0


def test_a_group_that_is_joined_again_is_not_idle() -> None:
    clock = Clock()
    book = GroupBook(max_groups=10, max_per_identity=10, grace_seconds=30, clock=clock)
    book.join(g("a"), None)
    book.leave(g("a"), None)
    book.join(g("a"), None)
    clock.now = 100
    assert book.sweep() == ([], None)


def test_at_the_cap_the_longest_idle_group_goes_first_and_live_ones_refuse() -> None:
    clock = Clock()
    book = GroupBook(max_groups=2, max_per_identity=10, grace_seconds=30, clock=clock)
    book.join(g("a"), None)
    book.join(g("b"), None)
    with pytest.raises(TooManyGroups, match="2 node groups have live streams"):
        book.join(g("c"), None)
    book.leave(g("b"), None)
    clock.now = 1
    book.leave(g("a"), None)
    assert book.join(g("c"), None) == [g("b")]  # idle longest
    assert book.join(g("d"), None) == [g("a")]
    assert g("c") in book and g("d") in book


def test_one_identity_holds_streams_in_a_bounded_number_of_groups() -> None:
    book = GroupBook(max_groups=100, max_per_identity=2, grace_seconds=30)
    book.join(g("a"), "cert-1")
    book.join(g("b"), "cert-1")
    book.join(g("a"), "cert-1")  # a group it already holds is fine
    with pytest.raises(TooManyGroups, match="client certificate"):
        book.join(g("c"), "cert-1")
    book.join(g("c"), "cert-2")  # another certificate is not held back
    book.leave(g("b"), "cert-1")
    book.join(g("c"), "cert-1")  # it left b: room again
