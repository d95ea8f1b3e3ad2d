"""Per-stream budgets on a fake clock: the work budget that slows a flooding stream,
and the NACK log budget; `check_request` on the bounds it names."""

import pytest
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from turnout.xds.limits import (
    MAX_NAMES_PER_SUBSCRIPTION,
    TokenBucket,
    check_request,
)
from turnout.xds.snapshot import ENDPOINT_TYPE
from turnout.xds.stream import ProtocolError, StreamState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stream_within_its_budget_is_never_slowed() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=100, burst=1000, clock=clock)
    for _ in range(10):
        assert bucket.take(100) == 0
    clock.now = 1
    assert bucket.take(100) == 0  # refilled 100


def test_past_its_budget_a_stream_waits_in_proportion_to_its_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=100, burst=1000, clock=clock)
    assert bucket.take(1000) == 0
    assert bucket.take(500) == pytest.approx(5.0)
    clock.now = 5
    assert bucket.take(1) == pytest.approx(0.01)


def test_check_request_counts_work_and_names_the_bound() -> None:
    state = StreamState()
    assert check_request(state, DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=["a"])) == 2
    too_many = [str(i) for i in range(MAX_NAMES_PER_SUBSCRIPTION + 1)]
    with pytest.raises(ProtocolError, match="resource_names"):
        check_request(state, DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=too_many))
    with pytest.raises(ProtocolError, match="initial_resource_versions"):
        check_request(
            StreamState(delta=True),
            DeltaDiscoveryRequest(
                type_url=ENDPOINT_TYPE, initial_resource_versions={n: "v" for n in too_many}
            ),
        )
    with pytest.raises(ProtocolError, match="is not one Turnout serves"):
        check_request(state, DiscoveryRequest(type_url="type.googleapis.com/x.Y"))
