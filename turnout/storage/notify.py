"""The NOTIFY half of the cross-process change feed (the LISTEN half is `pg_feed`).

Kept apart from `pg_feed` so that the store can import it without a cycle.
"""

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "turnout"


def notify_in_transaction(session: Session, revision: int) -> None:
    """Queue a NOTIFY for `revision`; PostgreSQL delivers it only if the
    transaction commits, so listeners never hear of a revision that was rolled back."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, :r)"), {"c": CHANNEL, "r": str(revision)})
