"""`turnout serve` production options: incomplete or missing TLS files are named."""

from pathlib import Path

import pytest

from turnout.cli import main, parse
from turnout.serve_production import options_from_params


def _opts(*args: str) -> object:
    return options_from_params(parse(["serve", *args]).params)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--admin-tls-cert", "x.pem"], "--admin-tls-cert and --admin-tls-key go together"),
        (["--xds-tls-key", "x.key"], "--xds-tls-cert and --xds-tls-key go together"),
        (["--xds-client-ca", "ca.pem"], "--xds-client-ca needs --xds-tls-cert"),
        (["--export-static-listener", "nope"], "expected HOST:PORT"),
    ],
)
def test_bad_combinations(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _opts(*args)


def test_missing_file_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "server.pem"
    code = main(["serve", "--xds-tls-cert", str(missing), "--xds-tls-key", str(missing)])
    assert code == 2
    assert f"no such file: {missing}" in capsys.readouterr().err


def test_defaults() -> None:
    opts = _opts("--replica-id", "r1")
    assert opts.replica_id == "r1" and opts.export_static_node_clusters == ("default",)  # type: ignore[attr-defined]
