"""`turnout certs init` output, and the bootstrap's replica and mTLS variants."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from turnout import certs
from turnout.cli import main
from turnout.testing.processes import envoy_binary


def test_certs_init(tmp_path: Path) -> None:
    certs.init(tmp_path, ["envoy-1"], ["localhost"], ["127.0.0.1"])
    ca = certs.load(tmp_path, "ca")
    leaf = certs.load(tmp_path, "envoy-1")
    server = certs.load(tmp_path, "server")
    assert isinstance(leaf.key.curve, ec.SECP256R1)
    assert oct(os.stat(tmp_path / "envoy-1.key").st_mode & 0o777) == "0o600"
    ca.cert.public_key().verify(  # type: ignore[union-attr, call-arg]
        leaf.cert.signature,
        leaf.cert.tbs_certificate_bytes,
        ec.ECDSA(leaf.cert.signature_hash_algorithm),  # type: ignore[arg-type]
    )
    lifetime = leaf.cert.not_valid_after_utc - leaf.cert.not_valid_before_utc
    assert 364 <= lifetime.days <= 366
    sans = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://turnout/node/envoy-1"
    ]
    usage = server.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    # A second run keeps the CA and adds a proxy.
    certs.init(tmp_path, ["envoy-2"], ["localhost"], ["127.0.0.1"])
    assert certs.load(tmp_path, "ca").cert == ca.cert
    assert (tmp_path / "envoy-2.pem").exists()


def _bootstrap(tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "bootstrap.yaml"
    assert main(["bootstrap", "--node-id", "n1", "-o", str(out), *args]) == 0
    return yaml.safe_load(out.read_text())


def _xds_cluster(bootstrap: dict, name: str = "_turnout_xds") -> dict:  # type: ignore[type-arg]
    return next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == name)


def test_bootstrap_lists_every_replica_with_mtls(tmp_path: Path) -> None:
    certs.init(tmp_path, ["n1"], ["localhost"], ["127.0.0.1"])
    boot = _bootstrap(
        tmp_path,
        "--xds-address", "turnout-1:18000",
        "--xds-address", "turnout-2:18000",
        "--xds-ca", str(tmp_path / "ca.pem"),
        "--client-cert", str(tmp_path / "n1.pem"),
        "--client-key", str(tmp_path / "n1.key"),
    )  # fmt: skip
    cluster = _xds_cluster(boot)
    assert cluster["type"] == "STRICT_DNS"
    # The rate limit service is serve itself here: every replica answers it too.
    for name in ("_turnout_xds", "_turnout_ratelimit"):
        hosts = [
            e["endpoint"]["address"]["socket_address"]["address"]
            for e in _xds_cluster(boot, name)["load_assignment"]["endpoints"][0]["lb_endpoints"]
        ]
        assert hosts == ["turnout-1", "turnout-2"], name
    tls = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["validation_context"]["trusted_ca"]["filename"] == str(tmp_path / "ca.pem")
    assert [
        m["matcher"]["exact"] for m in tls["validation_context"]["match_typed_subject_alt_names"]
    ] == [
        "turnout-1",
        "turnout-2",
    ]
    # Envoy itself accepts it.
    path = tmp_path / "bootstrap.yaml"
    result = subprocess.run(
        [
            envoy_binary(),
            "--mode",
            "validate",
            "-c",
            str(path),
            "--base-id",
            str(os.getpid() % 1000 + 7000),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_plain_bootstrap_unchanged(tmp_path: Path) -> None:
    boot = _bootstrap(tmp_path)
    cluster = _xds_cluster(boot)
    assert cluster["type"] == "STATIC" and "transport_socket" not in cluster
    assert "transport_socket" not in _xds_cluster(boot, "_turnout_ratelimit")


@pytest.mark.parametrize(
    ("ratelimit_address", "san"),
    [(None, ("IP_ADDRESS", "127.0.0.1")), ("rl.internal:18081", ("DNS", "rl.internal"))],
    ids=["xds-port", "ratelimit-address"],
)
def test_mtls_covers_the_rate_limit_cluster(
    tmp_path: Path, ratelimit_address: str | None, san: tuple[str, str]
) -> None:
    """With TLS files (and nothing else), the rate limit calls go over mTLS too: the
    same client certificate and CA, the rate limit host as the expected SAN."""
    certs.init(tmp_path, ["n1"], ["localhost"], ["127.0.0.1"])
    extra = ["--ratelimit-address", ratelimit_address] if ratelimit_address else []
    boot = _bootstrap(
        tmp_path,
        "--xds-ca", str(tmp_path / "ca.pem"),
        "--client-cert", str(tmp_path / "n1.pem"),
        "--client-key", str(tmp_path / "n1.key"),
        *extra,
    )  # fmt: skip
    socket = _xds_cluster(boot, "_turnout_ratelimit")["transport_socket"]
    context = socket["typed_config"]
    tls = context["common_tls_context"]
    assert tls["alpn_protocols"] == ["h2"]
    assert tls["tls_certificates"] == [
        {
            "certificate_chain": {"filename": str(tmp_path / "n1.pem")},
            "private_key": {"filename": str(tmp_path / "n1.key")},
        }
    ]
    assert tls["validation_context"]["trusted_ca"]["filename"] == str(tmp_path / "ca.pem")
    assert [
        (m["san_type"], m["matcher"]["exact"])
        for m in tls["validation_context"]["match_typed_subject_alt_names"]
    ] == [san]
    assert context.get("sni") == (None if san[0] == "IP_ADDRESS" else san[1])


def test_bootstrap_tls_options_go_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bootstrap", "--node-id", "n1", "--xds-ca", "ca.pem"]) == 2
    assert "go together" in capsys.readouterr().err
