"""Explain refused TLS handshakes on the xDS port in Turnout's own log.

gRPC checks client certificates in its C core, before any Python code runs, and
reports a refusal only as a raw line on stderr ("Handshake failed ...
CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"). The classic
failure this hides is a new cluster's proxy, with certificates from its own CA,
pointed at an old control plane. This module taps file descriptor 2: every line
is passed through unchanged, and a handshake failure also produces a WARNING on
the `turnout.xds` logger that names the reason in plain words.
"""

import logging
import os
import re
import sys
import threading

log = logging.getLogger("turnout.xds")

_HANDSHAKE = re.compile(r"Handshake failed with (?:fatal )?error (?P<err>.*)")

_REASONS = [
    (
        "unable to get local issuer certificate",
        "the proxy's client certificate is not signed by the CA in --xds-client-ca "
        "(a certificate from another cluster's CA?)",
    ),
    ("certificate has expired", "the proxy's client certificate has expired"),
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "the proxy presented no client certificate"),
    ("self signed certificate", "the proxy's client certificate is self-signed"),
    ("self-signed certificate", "the proxy's client certificate is self-signed"),
]


def explain(line: str) -> str | None:
    """The plain-words reason for a gRPC handshake failure line, or None."""
    match = _HANDSHAKE.search(line)
    if match is None:
        return None
    err = match.group("err").strip()
    for needle, reason in _REASONS:
        if needle.lower() in err.lower():
            return f"{reason} [{err}]"
    return f"TLS handshake failed [{err}]"


_installed = False


def install() -> None:
    """Start the stderr tap (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.stderr.flush()
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    threading.Thread(target=_pump, args=(read_fd, original), daemon=True, name="stderr-tap").start()


def _pump(read_fd: int, out_fd: int) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            os.write(out_fd, chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                reason = explain(raw.decode(errors="replace"))
                if reason is not None:
                    log.warning("xDS client refused during the TLS handshake: %s", reason)
