"""`turnout ratelimit` attacked as HTTP/2 servers are attacked, with raw frames (the `h2`
package as the attacking client) while a legitimate grpcio caller keeps calling.

Each case runs against a fresh `turnout ratelimit` process on real Redis, is bounded in
time, and asserts that the service's RSS grew by less than RSS_LIMIT and that every
legitimate call during the attack was answered within its deadline. Cases: rapid reset,
CONTINUATION flood, SETTINGS and PING floods from a reading attacker, a zero window,
large bodies that never end, many idle half-preface connections, and descriptor and
hits_addend abuse.
"""

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
import redis
from envoy.extensions.common.ratelimit.v3.ratelimit_pb2 import RateLimitDescriptor
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from envoy.service.ratelimit.v3.rls_pb2_grpc import RateLimitServiceStub

from turnout.ratelimit.service import SHOULD_RATE_LIMIT
from turnout.testing.processes import free_port, turnout_command, wait_for

RSS_LIMIT = 40 * 2**20
"""Growth of the service's resident memory an attack may cause."""
IDLE_CONNECTIONS = 2_000
IDLE_RSS_LIMIT = IDLE_CONNECTIONS * 32 * 1024
"""While IDLE_CONNECTIONS idle connections are open: grpcio keeps about 18 KiB for each
(measured), and holds at most MAX_CONNECTIONS of them, each for at most 5 s."""
DEADLINE = 2.0
"""Each legitimate call's deadline."""
ATTACK_SECONDS = 4.0
MIN_CALLS = 10

FRAME_HEADER_LEN = 9
HEADERS, CONTINUATION, SETTINGS, PING, GOAWAY = 0x1, 0x9, 0x4, 0x6, 0x7
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


GOAWAY_FRAME = bytes((GOAWAY, 0)) + bytes(4)  # type, flags, stream 0 (after the length)


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def quota_request(consumer: str = "legit", quota: str = "1000000/day") -> RateLimitRequest:
    entries = {"route": "api", "consumer": consumer, "quota": quota}
    return RateLimitRequest(
        domain="turnout",
        descriptors=[
            RateLimitDescriptor(
                entries=[RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries.items()]
            )
        ],
    )


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    baseline_rss: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def grown(self) -> int:
        return rss(self.proc.pid) - self.baseline_rss


@pytest.fixture
def service(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    env = {**os.environ, "TURNOUT_REDIS_URL": redis_url, "TURNOUT_REDIS_PREFIX": redis_prefix}
    log_path = tmp_path / "ratelimit.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*turnout_command(), "ratelimit", "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    svc = Service(proc, "127.0.0.1", port)
    try:
        with grpc.insecure_channel(svc.address) as channel:
            stub = RateLimitServiceStub(channel)

            def answers() -> bool:
                try:
                    stub.ShouldRateLimit(quota_request(), timeout=0.5)
                    return True
                except grpc.RpcError:
                    return False

            wait_for(answers, 20, "turnout ratelimit answering")
            for _ in range(200):  # warm: threads, pipelines, allocator
                stub.ShouldRateLimit(quota_request(), timeout=DEADLINE)
        svc.baseline_rss = rss(proc.pid)
        yield svc
        assert proc.poll() is None, log_path.read_text()
        print(f"service RSS grew by {svc.grown() / 2**20:.1f} MiB")
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Caller:
    """A legitimate caller: one call every 20 ms on its own connection, each with DEADLINE."""

    address: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "Caller":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = RateLimitServiceStub(channel)
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    response = stub.ShouldRateLimit(quota_request(), timeout=DEADLINE)
                    assert response.overall_code == RateLimitResponse.OK
                    self.latencies.append(time.monotonic() - start)
                except grpc.RpcError as exc:
                    self.failures.append(f"{exc.code()}: {exc.details()}")
                self._stop.wait(0.02)

    def __exit__(self, *exc: object) -> None:
        # At least MIN_CALLS calls, for an attack the server cut off at once.
        wait_for(
            lambda: len(self.latencies) + len(self.failures) >= MIN_CALLS, 20, "legitimate calls"
        )
        self._stop.set()
        assert self._thread is not None
        self._thread.join(DEADLINE + 5)

    def check(self, minimum: int = MIN_CALLS) -> None:
        assert not self.failures, self.failures[:5]
        assert len(self.latencies) >= minimum, f"only {len(self.latencies)} legitimate calls"


class Attacker:
    """One raw HTTP/2 connection driven by `h2` (its checks relaxed where the attack
    needs frames a polite client would not send)."""

    def __init__(self, service: Service, **settings: int) -> None:
        self.sock = socket.create_connection((service.host, service.port), timeout=DEADLINE)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(
                {getattr(h2.settings.SettingCodes, k): v for k, v in settings.items()}
            )
        self.sock.sendall(self.conn.data_to_send())
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        """The server closed the connection (or reset it)."""
        self.stalled = False
        """A send did not complete within DEADLINE: the server stopped reading."""

    def headers(self, stream_id: int, end_stream: bool = False) -> None:
        self.conn.send_headers(
            stream_id,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", SHOULD_RATE_LIMIT),
                (":authority", "ratelimit"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
            end_stream=end_stream,
        )

    def send(self, data: bytes | None = None) -> bool:
        """Send `data` (or what h2 has queued); False once the server closed."""
        self.sock.settimeout(DEADLINE)
        try:
            self.sock.sendall(data if data is not None else self.conn.data_to_send())
            return True
        except TimeoutError:
            self.stalled = True
            return False
        except OSError:
            self.closed = True
            return False

    def read(self, timeout: float = 0.0) -> None:
        """Read what the server sent (without blocking past `timeout`)."""
        try:
            while True:
                self.sock.settimeout(timeout or 1e-6)  # `send` sets its own
                data = self.sock.recv(1 << 16)
                if not data:
                    self.closed = True
                    return
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    events = []
                for event in events:
                    if isinstance(event, h2.events.ConnectionTerminated):
                        self.goaway = event
                self.send()
        except (TimeoutError, BlockingIOError):
            return
        except OSError:
            self.closed = True

    def close(self) -> None:
        self.sock.close()


def attack_for(seconds: float, step: Callable[[], bool]) -> None:
    """Run `step` until it returns False or `seconds` passed."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and step():
        pass


def test_rapid_reset_is_bounded(service: Service) -> None:
    """Streams opened and reset at once (CVE-2023-44487), as fast as one client can."""
    attacker = Attacker(service)
    stream_id = 1

    def step() -> bool:
        nonlocal stream_id
        for _ in range(100):
            attacker.headers(stream_id)
            attacker.conn.reset_stream(stream_id)
            stream_id += 2
        attacker.read()
        return attacker.send() and attacker.goaway is None and not attacker.closed

    with Caller(service.address) as caller:
        attack_for(ATTACK_SECONDS, step)
        attacker.read(0.5)
    attacker.close()
    caller.check()
    assert service.grown() < RSS_LIMIT
    streams = (stream_id - 1) // 2
    print(
        f"rapid reset: {streams} streams, GOAWAY {attacker.goaway}, closed {attacker.closed}, "
        f"stalled {attacker.stalled}"
    )
    # The server stopped it (GOAWAY, closed, stopped reading) or let it run.
    assert streams > 1_000 or attacker.goaway or attacker.closed or attacker.stalled


def hpack_length(value: int) -> bytes:
    """An HPACK string length (7-bit prefix, no Huffman)."""
    if value < 127:
        return bytes((value,))
    out, value = bytearray((127,)), value - 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes((*out, value))


@pytest.mark.parametrize("shape", ["many-headers", "one-huge-header"])
def test_a_continuation_flood_is_not_held(service: Service, shape: str) -> None:
    """A header block that never ends (CVE-2024-27316): HEADERS without END_HEADERS,
    then CONTINUATION frames, up to 64 MiB: many 16 KB literal headers, or one header
    whose value is announced as 64 MiB long. The server must not keep what it read:
    it closes the connection, or reads on without holding the block."""
    attacker = Attacker(service)
    attacker.read(0.3)  # settings exchanged: nothing of ours may interrupt the block
    if shape == "many-headers":
        block = b"\x00\x01x" + hpack_length(15_990) + b"a" * 15_990
    else:
        block = b"\x00\x01x" + hpack_length(64 * 2**20) + b"a" * 15_990
    first = frame(HEADERS, 0, 1, block)
    sent = len(first)
    attacker.send(first)
    chunk = frame(CONTINUATION, 0, 1, block if shape == "many-headers" else b"a" * 16_000)
    answer = bytearray()

    def step() -> bool:
        nonlocal sent
        if sent >= 64 * 2**20 or not attacker.send(chunk):
            return False
        sent += len(chunk)
        attacker.sock.settimeout(1e-6)  # raw reads: h2 would answer, inside the block
        try:
            data = attacker.sock.recv(1 << 16)
            if not data:
                attacker.closed = True
            answer.extend(data)
        except (TimeoutError, BlockingIOError):
            pass
        except OSError:
            attacker.closed = True
        return not attacker.closed

    with Caller(service.address) as caller:
        attack_for(ATTACK_SECONDS * 2, step)
    attacker.close()
    caller.check()
    goaway = GOAWAY_FRAME in bytes(answer)
    grown = service.grown()
    print(
        f"CONTINUATION flood ({shape}): {sent} bytes sent, closed {attacker.closed}, "
        f"GOAWAY {goaway}, RSS +{grown / 2**20:.1f} MiB"
    )
    assert not attacker.stalled, f"the server stopped reading after {sent} bytes, but kept it open"
    assert grown < RSS_LIMIT


@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_settings_and_ping_floods_from_a_reading_attacker(service: Service, kind: str) -> None:
    """Control frames as fast as one client can send them, reading every answer."""
    attacker = Attacker(service)
    payload = frame(SETTINGS, 0, 0, b"") if kind == "settings" else frame(PING, 0, 0, b"8bytes!!")
    burst = payload * 200
    frames = 0

    def step() -> bool:
        nonlocal frames
        if not attacker.send(burst):
            return False
        frames += 200
        attacker.read()
        return not attacker.closed and attacker.goaway is None

    with Caller(service.address) as caller:
        attack_for(ATTACK_SECONDS, step)
        attacker.read(0.5)
    attacker.close()
    caller.check()
    assert service.grown() < RSS_LIMIT
    if kind == "ping":  # keepalive enforcement
        assert attacker.goaway is not None, f"{frames} PINGs and no GOAWAY"
        assert b"too_many_pings" in (attacker.goaway.additional_data or b"")
    print(f"{kind} flood: {frames} frames, GOAWAY {attacker.goaway}, closed {attacker.closed}")


def test_a_zero_window_client_holds_no_more_than_its_streams(service: Service) -> None:
    """A client that never opens its window: every answer is stuck in the server."""
    attacker = Attacker(service, INITIAL_WINDOW_SIZE=0)
    body = quota_request("zero").SerializeToString()
    message = b"\x00" + len(body).to_bytes(4, "big") + body
    opened = 0
    with Caller(service.address) as caller:
        for stream_id in range(1, 2 * 1_000, 2):  # far more than the streams allowed
            try:
                attacker.headers(stream_id)
                attacker.conn.send_data(stream_id, message, end_stream=True)
            except h2.exceptions.TooManyStreamsError:
                break
            except h2.exceptions.FlowControlError:  # the server's window is shut too
                attacker.send()
                attacker.read(0.05)
                continue
            if not attacker.send():
                break
            opened += 1
        end = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < end and not attacker.closed:
            # Read frames but never acknowledge DATA: no WINDOW_UPDATE is sent.
            try:
                attacker.sock.settimeout(0.1)
                if not attacker.sock.recv(1 << 16):
                    break
            except TimeoutError:
                pass
    attacker.close()
    caller.check()
    assert opened >= 1
    assert service.grown() < RSS_LIMIT


def test_large_bodies_that_never_end_are_refused(service: Service) -> None:
    """50 streams each announcing a 3.9 MiB message and sending all the window allows,
    without END_STREAM."""
    attackers = [Attacker(service) for _ in range(5)]
    header = b"\x00" + (3_900_000).to_bytes(4, "big")
    with Caller(service.address) as caller:
        for attacker in attackers:
            for stream_id in range(1, 21, 2):
                attacker.headers(stream_id)
                try:
                    attacker.conn.send_data(stream_id, header + b"x" * 16_000)
                except (h2.exceptions.FlowControlError, h2.exceptions.StreamClosedError):
                    continue
            attacker.send()

        def step() -> bool:
            for attacker in attackers:
                for stream_id in range(1, 21, 2):
                    for _ in range(16):  # up to 256 KB per stream per round
                        try:
                            window = attacker.conn.local_flow_control_window(stream_id)
                            if window <= 0:
                                break
                            attacker.conn.send_data(stream_id, b"x" * min(window, 16_000))
                        except (h2.exceptions.FlowControlError, h2.exceptions.StreamClosedError):
                            break
                    if not attacker.send():
                        break
                attacker.read()
            return True

        attack_for(ATTACK_SECONDS, step)
        grown = service.grown()
    for attacker in attackers:
        attacker.close()
    caller.check()
    print(f"unending bodies: RSS +{grown / 2**20:.1f} MiB")
    assert grown < RSS_LIMIT


def test_many_idle_half_preface_connections_are_dropped(service: Service) -> None:
    """Connections that send half the HTTP/2 preface and then nothing: accepted quickly,
    dropped by the handshake timeout, and the legitimate caller keeps going."""
    socks = []
    with Caller(service.address) as caller:
        start = time.monotonic()
        for _ in range(IDLE_CONNECTIONS):
            sock = socket.create_connection((service.host, service.port), timeout=DEADLINE)
            sock.sendall(b"PRI * HTTP/2.0\r\n")
            socks.append(sock)
        opened = time.monotonic() - start
        grown = service.grown()

        def all_closed() -> bool:
            for sock in socks:
                sock.settimeout(1e-6)
                try:
                    if sock.recv(1 << 10):
                        continue
                except (TimeoutError, BlockingIOError):
                    return False
                except OSError:
                    pass
            return True

        wait_for(all_closed, 30, "the idle connections dropped")
        dropped = time.monotonic() - start
    for sock in socks:
        sock.close()
    caller.check()
    assert grown < IDLE_RSS_LIMIT
    assert opened < 3, f"{IDLE_CONNECTIONS} connections took {opened:.1f} s to open"
    print(f"idle connections: opened in {opened:.2f} s, all dropped after {dropped:.1f} s")


@pytest.mark.parametrize("abuse", ["45000-descriptors", "2000-descriptors", "hits-addend-4e9"])
def test_descriptor_and_hits_addend_abuse_creates_no_keys(
    service: Service, redis_url: str, redis_prefix: str, abuse: str
) -> None:
    count = {"45000-descriptors": 45_000, "2000-descriptors": 2_000}.get(abuse, 1)
    request = RateLimitRequest(
        domain="turnout",
        hits_addend=4_000_000_000 if abuse == "hits-addend-4e9" else 0,
        descriptors=[
            RateLimitDescriptor(
                entries=[
                    RateLimitDescriptor.Entry(key="consumer", value=f"c{i}"),
                    RateLimitDescriptor.Entry(key="quota", value="5/day"),
                ]
            )
            for i in range(count)
        ],
    )
    client = redis.Redis.from_url(redis_url)
    before = set(client.scan_iter(match=f"{redis_prefix}*"))
    with Caller(service.address) as caller, grpc.insecure_channel(service.address) as channel:
        for _ in range(20):
            with pytest.raises(grpc.RpcError) as caught:
                RateLimitServiceStub(channel).ShouldRateLimit(request, timeout=DEADLINE)
            assert caught.value.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,  # counted and refused
                grpc.StatusCode.RESOURCE_EXHAUSTED,  # larger than a request may be
            ), caught.value
    caller.check(minimum=1)
    try:
        assert set(client.scan_iter(match=f"{redis_prefix}*")) == before
    finally:
        client.close()
    assert service.grown() < RSS_LIMIT
