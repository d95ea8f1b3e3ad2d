"""`WriteLog`: one structured log line per admin write, whatever its outcome.

Sits inside `AuthGuard` (the principal is known) and outside `WriteGate` (a write
refused with 503 while queueing is logged too). Reads only the request line and the
answer's status and `X-Turnout-Revision`; the body is never read, so no secret in
it reaches the log.
"""

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from turnout.admin.api.entities import REVISION_HEADER
from turnout.admin.guard import PRINCIPAL_STATE

log = logging.getLogger("turnout.admin.writes")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_ENTITY_CHARS = 200
"""The path is the client's: bounded, and escaped so `%0A` cannot forge a log line."""


def _entity(path: str) -> str:
    return path.strip("/")[:MAX_ENTITY_CHARS].encode("unicode_escape").decode("ascii")


class WriteLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer: dict[str, object] = {"status": 500, "revision": None}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["revision"] = MutableHeaders(raw=message["headers"]).get(REVISION_HEADER)
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            principal = scope.get("state", {}).get(PRINCIPAL_STATE)
            fields = {
                "actor": principal.name if principal is not None else None,
                "action": scope["method"],
                "entity": _entity(scope["path"]),
                "revision": int(answer["revision"]) if answer["revision"] else None,
                "outcome": answer["status"],
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            log.info(
                "admin write %s",
                " ".join(f"{k}={v}" for k, v in fields.items()),
                extra={"fields": fields},
            )
