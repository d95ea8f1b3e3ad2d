"""The xDS allow-list ties certificate names to node ids / clusters; refusals explained."""

import pytest
import yaml

from turnout.xds.handshake_log import explain
from turnout.xds.identity import AllowList, IdentityRefused, cert_names

SAME_NAME = AllowList.parse(yaml.safe_load('- names: ["*"]\n  node_ids: ["{name}"]'))
EDGE = AllowList.parse([{"names": ["edge-*"], "node_clusters": ["edge"]}])


def test_cert_names_from_grpc_auth_context() -> None:
    context = {
        "x509_common_name": [b"envoy-1"],
        "x509_subject_alternative_name": [b"spiffe://turnout/node/envoy-1", b"envoy-1.local"],
    }
    assert cert_names(context) == ["envoy-1", "spiffe://turnout/node/envoy-1", "envoy-1.local"]
    assert cert_names({}) == []


def test_node_id_must_equal_a_certificate_name() -> None:
    SAME_NAME.check(["envoy-1"], "envoy-1", "default")
    with pytest.raises(IdentityRefused, match="may not claim node 'envoy-2'"):
        SAME_NAME.check(["envoy-1"], "envoy-2", "default")
    with pytest.raises(IdentityRefused, match="no client certificate"):
        SAME_NAME.check([], "envoy-1", "default")


def test_cluster_rule() -> None:
    EDGE.check(["edge-7"], "anything", "edge")
    with pytest.raises(IdentityRefused, match="cluster 'billing'"):
        EDGE.check(["edge-7"], "anything", "billing")
    with pytest.raises(IdentityRefused):
        EDGE.check(["core-1"], "anything", "edge")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"names": ["x"]}, "list of rules"),
        ([{"node_ids": ["x"]}], "non-empty 'names'"),
        ([{"names": ["x"], "nodes": ["y"]}], "unknown keys"),
    ],
)
def test_bad_allow_list(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AllowList.parse(data)


def test_handshake_failures_explained() -> None:
    line = (
        "I1126 ssl_transport_security.cc:2563] Handshake failed with error SSL_ERROR_SSL: "
        "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: "
        "unable to get local issuer certificate"
    )
    reason = explain(line)
    assert reason is not None and "not signed by the CA in --xds-client-ca" in reason
    assert explain(
        "Handshake failed with fatal error SSL_ERROR_SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE"
    ) == (
        "the proxy presented no client certificate "
        "[SSL_ERROR_SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE]"
    )
    assert explain("an unrelated line") is None
