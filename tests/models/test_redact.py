"""`redact`: every shape of credential Turnout may show, log or store, hidden."""

import json

from turnout.models.redact import REDACTED, redact, redact_text
from turnout.storage.keystore import generate_key

PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n"
    "-----END PRIVATE KEY-----\n"
)


def test_api_key_auth_credentials_in_json() -> None:
    imported = "imported-key-0123456789"
    config = {
        "name": "envoy.filters.http.api_key_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
            "credentials": [
                {"key": generate_key(), "client": "acme"},
                {"key": imported, "client": "globex"},
            ],
            "key_sources": [{"header": "x-api-key"}],
        },
    }
    out = redact(config)
    creds = out["typed_config"]["credentials"]
    assert [c["key"] for c in creds] == [REDACTED, REDACTED]
    assert [c["client"] for c in creds] == ["acme", "globex"]  # who, not the secret
    assert out["typed_config"]["key_sources"] == [{"header": "x-api-key"}]
    assert imported not in json.dumps(out)
    assert config["typed_config"]["credentials"][1]["key"] == imported  # a copy


def test_keys_in_envoy_rejection_text() -> None:
    key, imported = generate_key(), "Imported.Key_0123456789"
    messages = [
        f'Proto constraint validation failed: credentials {{\n  key: "{imported}"\n'
        '  client: "a"\n}}',
        f'{{"credentials": [{{"key": "{imported}", "client": "a"}}]}}',
        f"duplicate credential key={imported}, client=a",
        f"unexpected token {key} in config",
        f"GET /forecast?apikey={imported} rejected",
    ]
    for message in messages:
        out = redact_text(message)
        assert imported not in out and key not in out, out
        assert REDACTED in out
    # The prefix the API shows (8 characters) is not a secret.
    assert redact_text(f"key prefix {key[:8]}") == f"key prefix {key[:8]}"


def test_pem_private_keys_and_tls_fields() -> None:
    assert "MIIEvQ" not in redact_text(f"bad tls: {PEM} end")
    assert "MIIEvQ" not in redact_text(PEM[:60])  # truncated messages too
    tls = {
        "tls_certificates": [
            {
                "certificate_chain": {"inline_string": "-----BEGIN CERTIFICATE-----\nAAA"},
                "private_key": {"inline_bytes": "LS0tLS1CRUdJTiBQUklWQVRF"},
                "password": {"inline_string": "hunter22"},
            }
        ]
    }
    out = redact(tls)["tls_certificates"][0]
    assert out["private_key"] == REDACTED and out["password"] == REDACTED
    assert out["certificate_chain"]["inline_string"].startswith("-----BEGIN CERTIFICATE")


def test_bearer_tokens() -> None:
    out = redact_text("upstream said: Authorization: Bearer abc.DEF_123-xyz")
    assert "abc.DEF" not in out and out.endswith(f"Bearer {REDACTED}")
    assert redact({"headers": {"authorization": "bearer s3cr3t-token"}}) == {
        "headers": {"authorization": f"bearer {REDACTED}"}
    }


def test_nothing_else_changes() -> None:
    config = {
        "name": "orders",
        "connect_timeout": "1s",
        "descriptors": [{"entries": [{"key": "consumer", "value": "acme"}]}],
        "weights": [90, 10],
        "enabled": True,
    }
    assert redact(config) == config
    assert redact_text("cluster orders: endpoint 10.0.0.1:8080 unhealthy") == (
        "cluster orders: endpoint 10.0.0.1:8080 unhealthy"
    )
