"""Errors raised by the declaration layer.

    TurnoutError
     ├── NotFound          an entity named in a request does not exist
     ├── Conflict          a duplicate name, or a reference to or from another entity
     ├── StoreUnavailable  the database cannot be reached
     └── NotConfigured     a feature needs a setting that is missing (TURNOUT_SECRET_KEY)

Schema problems are pydantic's `ValidationError`; each surface maps these classes
to its own wire codes in exactly one table (`turnout/admin/errors.py`).
"""


class TurnoutError(Exception):
    """Base of every error Turnout raises on purpose."""


class NotFound(TurnoutError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} does not exist")
        self.kind = kind
        self.name = name


class Conflict(TurnoutError):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StoreUnavailable(TurnoutError):
    """The database is unreachable; nothing was written."""


class NotConfigured(TurnoutError):
    """A feature was used that needs a setting the process was started without."""
