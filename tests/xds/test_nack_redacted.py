"""Envoy's rejection text can quote the resource it refused, API keys included: what
the stream records (shown by GET /proxies) and logs is redacted."""

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.rpc.status_pb2 import Status

from turnout.storage.keystore import generate_key
from turnout.xds.snapshot import CLUSTER_TYPE, build_snapshot, pack
from turnout.xds.stream import StreamState


def test_nack_message_is_stored_without_the_keys_it_quotes() -> None:
    snap = build_snapshot(1, {CLUSTER_TYPE: [pack(Cluster(name="a"))]}, frozenset({"a"}), {}, None)
    state = StreamState()
    first = DiscoveryRequest(type_url=CLUSTER_TYPE)
    first.node.CopyFrom(Node(id="envoy-1", cluster="default"))
    state.on_request(first)
    response = state.next_response(snap)
    assert response is not None
    state.on_sent(response)

    key, imported = generate_key(), "Imported-Key-0123456789"
    message = (
        f'Proto constraint validation failed: credentials {{ key: "{imported}" client: "acme" }}'
        f", also {key}"
    )
    nack = DiscoveryRequest(type_url=CLUSTER_TYPE, response_nonce=response.nonce)
    nack.error_detail.CopyFrom(Status(code=13, message=message))
    outcome = state.on_request(nack)

    stored = state.subscriptions[CLUSTER_TYPE].last_nack
    assert outcome.nack == stored  # the logged text is the stored text
    assert stored is not None and "Proto constraint validation failed" in stored
    assert imported not in stored and key not in stored
    assert 'client: "acme"' in stored  # who, so the operator can find the consumer
