"""The DELETE answer the routers of records (API keys, tokens, freezes) share.

Each is a `turnout.storage.records.Records`, so revoking a key, revoking a token and
lifting a freeze are one handler body: delete, answer 204. Only a key's delete is a
declaration change, so only it names the revision it produced (header
`X-Turnout-Revision`, as entity writes do); a token's or a freeze's leaves the
revision as it was and answers without it.
"""

from typing import Any, TypeVar

from fastapi import Response

from turnout.admin.api.entities import REVISION_HEADER
from turnout.storage.records import Records

NameT = TypeVar("NameT")


def delete_record(
    records: Records[Any, Any, Any, NameT], name: NameT, actor: str, *, revision_header: bool
) -> Response:
    """Delete record `name` and answer 204 (with the revision, for a declaration change)."""
    revision = records.delete(name, actor)
    headers = {REVISION_HEADER: str(revision)} if revision_header else None
    return Response(status_code=204, headers=headers)
