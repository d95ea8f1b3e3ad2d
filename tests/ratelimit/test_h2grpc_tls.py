"""TLS on the lean rate limit transport (`h2tls`, `GrpcH2Server.start(ssl=...)`) with
grpcio's client and certificates from `turnout certs init`: a proxy certificate gets its
answer; no certificate, another CA's certificate or plaintext is refused with a log line
that says why, and so is a TLS client that does not negotiate `h2`. `turnout ratelimit`
refuses incomplete or unreadable TLS options by name."""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from envoy.service.ratelimit.v3.rls_pb2_grpc import RateLimitServiceStub

from turnout import certs
from turnout.cli import main
from turnout.ratelimit.h2grpc import GrpcH2Server
from turnout.ratelimit.h2tls import server_context
from turnout.ratelimit.service import SHOULD_RATE_LIMIT

DEADLINE = 5.0


async def ok(message: bytes) -> bytes:
    return RateLimitResponse(overall_code=RateLimitResponse.OK).SerializeToString()


@pytest.fixture
def ours(tmp_path: Path) -> Path:
    certs.init(tmp_path / "ours", ["envoy-1"], ["localhost"], ["127.0.0.1"])
    return tmp_path / "ours"


@pytest.fixture
async def port(ours: Path) -> AsyncIterator[int]:
    server = GrpcH2Server({SHOULD_RATE_LIMIT: ok})
    context = server_context(ours / "server.pem", ours / "server.key", ours / "ca.pem")
    yield await server.start("127.0.0.1", 0, ssl=context)
    await server.stop(0)


def credentials(ca: Path, client: Path | None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.with_suffix(".key").read_bytes(),
        certificate_chain=client.read_bytes(),
    )


async def call(channel: grpc.aio.Channel) -> RateLimitResponse:
    stub = RateLimitServiceStub(channel)
    return await stub.ShouldRateLimit(RateLimitRequest(domain="d"), timeout=DEADLINE)


async def test_a_proxy_certificate_gets_its_answer_over_tls(ours: Path, port: int) -> None:
    creds = credentials(ours / "ca.pem", ours / "envoy-1.pem")
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        assert (await call(channel)).overall_code == RateLimitResponse.OK


@pytest.mark.parametrize("client", ["no-certificate", "foreign-ca", "plaintext"])
async def test_other_clients_are_refused_and_the_log_says_why(
    ours: Path, port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture, client: str
) -> None:
    certs.init(tmp_path / "foreign", ["envoy-1"], ["localhost"], ["127.0.0.1"])
    target = f"127.0.0.1:{port}"
    if client == "plaintext":
        channel = grpc.aio.insecure_channel(target)
        reason = "did not speak TLS"
    elif client == "foreign-ca":
        creds = credentials(ours / "ca.pem", tmp_path / "foreign" / "envoy-1.pem")
        channel = grpc.aio.secure_channel(target, creds)
        reason = "not signed by the client CA"
    else:
        channel = grpc.aio.secure_channel(target, credentials(ours / "ca.pem", None))
        reason = "presented no client certificate"
    with caplog.at_level(logging.WARNING, logger="turnout.ratelimit"):
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert any(reason in r.getMessage() for r in caplog.records), caplog.text


async def test_a_client_not_negotiating_h2_is_refused(
    ours: Path, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    context = ssl.create_default_context(cafile=ours / "ca.pem")  # no ALPN offered
    context.load_cert_chain(ours / "envoy-1.pem", ours / "envoy-1.key")
    with caplog.at_level(logging.WARNING, logger="turnout.ratelimit"):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        writer.close()
    assert "did not negotiate HTTP/2 over TLS" in caplog.text


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--tls-cert", "{d}/server.pem"], "--tls-cert and --tls-key go together"),
        (["--client-ca", "{d}/ca.pem"], "--client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "{d}/server.pem", "--tls-key", "{d}/nope.key"], "--tls-key: cannot read"),
        (["--tls-cert", "{d}/server.pem", "--tls-key", "{d}/envoy-1.key"], "cannot use"),
    ],
    ids=["cert-alone", "ca-alone", "unreadable", "mismatched-key"],
)
def test_turnout_ratelimit_refuses_bad_tls_options(
    ours: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    argv = ["ratelimit", "--listen", "127.0.0.1:0", *(a.format(d=ours) for a in args)]
    assert main(argv) == 2
    assert error in capsys.readouterr().err
