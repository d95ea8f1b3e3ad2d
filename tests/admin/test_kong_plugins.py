"""Kong plugins and consumers → Turnout fields (`turnout/admin/kong/plugins.py`)."""

from turnout.admin.kong import KongImport, convert
from turnout.admin.kong import plugins as kong_plugins
from turnout.admin.kong.transform import request_transformer


def test_key_auth_defaults_read_header_and_query() -> None:
    out = KongImport()
    auth = kong_plugins.key_auth({}, "r", out)
    assert auth == {
        "required": True,
        "key_sources": [{"header": "apikey"}, {"query": "apikey"}],
        "kong_consumer_headers": True,
    }
    assert any("hide_credentials=false" in line for line in out.not_mapped)


def test_key_auth_header_only_and_anonymous() -> None:
    out = KongImport()
    conf = {"key_names": ["X-Key"], "key_in_query": False, "hide_credentials": True}
    assert kong_plugins.key_auth(conf, "r", out) == {
        "required": True,
        "key_sources": [{"header": "x-key"}],
        "kong_consumer_headers": True,
    }
    assert out.not_mapped == []
    assert kong_plugins.key_auth({"anonymous": "guest"}, "r", out) is None


def test_rate_limiting_windows_and_limit_by() -> None:
    out = KongImport()
    conf = {"second": 5, "minute": 100, "hour": 1000, "day": 10000, "month": 99999, "year": 1}
    assert kong_plugins.rate_limiting(conf, "r", True, out) == {
        "burst": [{"requests": 5, "per": "second"}, {"requests": 100, "per": "minute"}],
        "quota": [
            {"requests": 1000, "per": "hour"},
            {"requests": 10000, "per": "day"},
            {"requests": 99999, "per": "month"},
        ],
    }
    assert any("year=1" in line for line in out.not_mapped)
    assert kong_plugins.rate_limiting({"second": 1, "limit_by": "ip"}, "r", True, out) is None
    assert kong_plugins.rate_limiting({"second": 1}, "r", False, out) is None


def test_request_transformer_headers_only() -> None:
    out = KongImport()
    conf = {
        "remove": {"headers": ["X-Old"], "querystring": ["q"]},
        "rename": {"headers": ["a:b"]},
        "replace": {"headers": ["x-tier:gold"]},
        "add": {"headers": ["x-from:kong", "x-tpl:$(headers.host)"], "body": ["k:v"]},
        "append": {"headers": ["x-more:1"]},
    }
    # Kong's order and semantics: replace only if sent, add only if absent, append.
    assert request_transformer(conf, "r", out, {}) == (
        {
            "add_if_absent": {"x-from": "kong"},
            "add": {"x-more": "1"},
            "replace": {"x-tier": "gold"},
            "remove": ["x-old"],
        },
        {},
    )
    joined = "\n".join(out.not_mapped)
    for part in ("remove.querystring", "rename.headers", "add.body", "add 'x-tpl'"):
        assert part in joined


def test_most_specific_plugin_wins_and_keys_stay_out_of_the_report() -> None:
    secret = "a-very-secret-key-1234"
    doc = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "s",
                "url": "http://127.0.0.1:1",
                "plugins": [{"name": "key-auth", "config": {"key_in_query": False}}],
                "routes": [
                    {"name": "a", "paths": ["/a"]},
                    {
                        "name": "b",
                        "paths": ["/b"],
                        "plugins": [{"name": "rate-limiting", "config": {"second": 2}}],
                    },
                ],
            }
        ],
        "plugins": [{"name": "rate-limiting", "config": {"minute": 60}}],
        "consumers": [{"username": "u", "keyauth_credentials": [{"key": secret}, {"key": "tiny"}]}],
    }
    out = convert(doc)
    routes = out.target["route"]
    assert routes["a"].limits.burst[0].per == "minute"  # type: ignore[union-attr]
    assert routes["b"].limits.burst[0].per == "second"  # type: ignore[union-attr]
    assert routes["b"].auth is not None and routes["a"].auth is not None
    assert out.keys == {"u": [secret]}
    report = "\n".join(out.imported + out.not_mapped) + repr(out)
    assert secret not in report and "tiny" not in report
