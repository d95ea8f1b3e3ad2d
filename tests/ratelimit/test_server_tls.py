"""TLS on the rate limit port (`RateLimitServer` with `server_credentials`) with grpcio's
client and certificates from `turnout certs init`: a proxy certificate gets its answer;
no certificate, another CA's certificate or plaintext is refused; with an allow-list,
only the certificates it names may call (PERMISSION_DENIED otherwise). `turnout
ratelimit` refuses incomplete or unusable TLS options by name."""

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from envoy.service.ratelimit.v3.rls_pb2_grpc import RateLimitServiceStub

from turnout import certs
from turnout.cli import main
from turnout.ratelimit.callers import load_allow_list
from turnout.ratelimit.server import RateLimitServer, server_credentials
from turnout.ratelimit.service import FailureMode, RateLimitService

DEADLINE = 5.0


@pytest.fixture
def ours(tmp_path: Path) -> Path:
    certs.init(tmp_path / "ours", ["envoy-1", "billing-1"], ["localhost"], ["127.0.0.1"])
    return tmp_path / "ours"


def start(ours: Path, allow_list: Path | None = None) -> Iterator[str]:
    server = RateLimitServer(
        RateLimitService(None, FailureMode.OPEN),
        allow=load_allow_list(allow_list) if allow_list else None,
    )
    creds = server_credentials(ours / "server.pem", ours / "server.key", ours / "ca.pem")
    port = server.start("127.0.0.1:0", creds)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


@pytest.fixture
def address(ours: Path) -> Iterator[str]:
    yield from start(ours)


def credentials(ca: Path, client: Path | None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.with_suffix(".key").read_bytes(),
        certificate_chain=client.read_bytes(),
    )


def call(channel: grpc.Channel) -> RateLimitResponse:
    return RateLimitServiceStub(channel).ShouldRateLimit(
        RateLimitRequest(domain="d"), timeout=DEADLINE
    )


def test_a_proxy_certificate_gets_its_answer_over_tls(ours: Path, address: str) -> None:
    with grpc.secure_channel(address, credentials(ours / "ca.pem", ours / "envoy-1.pem")) as ch:
        assert call(ch).overall_code == RateLimitResponse.OK


@pytest.mark.parametrize("client", ["no-certificate", "foreign-ca", "plaintext"])
def test_other_clients_are_refused(ours: Path, address: str, tmp_path: Path, client: str) -> None:
    certs.init(tmp_path / "foreign", ["envoy-1"], ["localhost"], ["127.0.0.1"])
    if client == "plaintext":
        channel = grpc.insecure_channel(address)
    elif client == "foreign-ca":
        foreign = credentials(ours / "ca.pem", tmp_path / "foreign" / "envoy-1.pem")
        channel = grpc.secure_channel(address, foreign)
    else:
        channel = grpc.secure_channel(address, credentials(ours / "ca.pem", None))
    with channel, pytest.raises(grpc.RpcError) as caught:
        call(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_allow_list_admits_only_the_names_it_lists(ours: Path, tmp_path: Path) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text('- names: ["envoy-*"]\n')
    for address in start(ours, allow):
        good = credentials(ours / "ca.pem", ours / "envoy-1.pem")
        with grpc.secure_channel(address, good) as channel:
            assert call(channel).overall_code == RateLimitResponse.OK
        other = credentials(ours / "ca.pem", ours / "billing-1.pem")
        with grpc.secure_channel(address, other) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                call(channel)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "billing-1" in caught.value.details()


def test_an_allow_list_with_node_rules_is_refused(tmp_path: Path) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text('- names: ["*"]\n  node_ids: ["{name}"]\n')
    with pytest.raises(ValueError, match="claims no node"):
        load_allow_list(allow)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--tls-cert", "{d}/server.pem"], "--tls-cert and --tls-key go together"),
        (["--client-ca", "{d}/ca.pem"], "--client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "{d}/server.pem", "--tls-key", "{d}/nope.key"], "--tls-key: cannot read"),
        (["--tls-cert", "{d}/server.pem", "--tls-key", "{d}/envoy-1.key"], "cannot use"),
        (["--tls-cert", "{d}/server.pem", "--tls-key", "{d}/server.key",
          "--client-allow-list", "{d}/ca.pem"], "--client-allow-list needs --client-ca"),
        (["--workers", "0"], "--workers: expected 1 or more"),
        (["--workers", "many"], "--workers: expected 1 or more"),
        (["--workers", "2", "--listen", "127.0.0.1:0"], "--workers needs a fixed port"),
    ],
    ids=["cert-alone", "ca-alone", "unreadable", "mismatched-key", "allow-list-alone",
         "no-workers", "workers-not-a-number", "workers-port-0"],
)  # fmt: skip
def test_turnout_ratelimit_refuses_bad_options(
    ours: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    argv = ["ratelimit", "--listen", "127.0.0.1:0", *(a.format(d=ours) for a in args)]
    assert main(argv) == 2
    assert error in capsys.readouterr().err
