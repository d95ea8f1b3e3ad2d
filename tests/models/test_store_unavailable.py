"""An unreachable database is `StoreUnavailable`, with the driver error as cause."""

from pathlib import Path

import pytest

from turnout.models.errors import StoreUnavailable
from turnout.storage.store import Store


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/turnout",  # nothing listens on port 1
        "sqlite:///{tmp}/missing-dir/turnout.db",
    ],
    ids=["postgresql-refused", "sqlite-no-directory"],
)
def test_unreachable(url: str, tmp_path: Path) -> None:
    store = Store(url.format(tmp=tmp_path))
    try:
        with pytest.raises(StoreUnavailable) as info:
            store.revision()
        assert info.value.__cause__ is not None
        with pytest.raises(StoreUnavailable):
            store.upgrade()
    finally:
        store.close()


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        Store("mysql://localhost/turnout")
