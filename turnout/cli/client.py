"""The admin API client of the CLI, and how its errors become exit codes.

Every API command goes through `Api`: one httpx client with the bearer token, a
timeout, and one place that turns an error answer into a clear message (status,
detail, field, freeze) and an exit code. The server decides everything (roles,
freezes, validation); the CLI only shows its answer.
"""

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import click
import httpx

from turnout.settings import DEFAULT_TIMEOUT_S

EXIT_OK = 0
EXIT_FAILED = 1
"""The operation failed: the API refused it (404, 409, 422, 5xx), or a file is unreadable."""
EXIT_USAGE = 2
"""A usage or configuration error; for `turnout diff`: there are changes."""
EXIT_FROZEN = 3
"""The API answered 423: a freeze covers the change; nothing changed."""
EXIT_UNAUTHORIZED = 4
"""The API answered 401 or 403: no token, a wrong one, or a role that may not do this."""
EXIT_UNREACHABLE = 5
"""The server did not answer (connection refused, timeout, TLS failure)."""

EXIT_CODES_HELP = """\b
exit codes:
  0  success
  1  the operation failed (the API refused it: 404, 409, 422, 5xx; a conflict, a
     refused or unreadable backup, a demo that did not start)
  2  a usage or configuration error (bad option or value, invalid settings,
     a declarative file that does not parse); for `turnout diff`: there are changes
     (`diff` answers 0 no change, 2 changes, 1 an error, as decK's --non-zero-exit-code)
  3  refused by a freeze (the API answered 423; nothing changed)
  4  not authorised (401/403: no token, a wrong token, or a role too low)
  5  the server could not be reached"""


class CliError(click.ClickException):
    """An error the CLI prints as `turnout: <message>` and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"turnout: {self.format_message()}", err=True)


def _status_exit(status: int) -> int:
    if status == 423:
        return EXIT_FROZEN
    if status in (401, 403):
        return EXIT_UNAUTHORIZED
    return EXIT_FAILED


def _location(loc: list[Any]) -> str:
    # "body" is where every 422 of a write is; the field path is what a reader needs.
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def describe_error(status: int, body: Any) -> str:
    """`423 Locked: <detail>` plus one line per field (422), the field (409), the freeze."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    lines = [f"{status} {phrase}"]
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        lines[0] += ": invalid request"
        for item in detail:
            if isinstance(item, dict):
                lines.append(f"  {_location(item.get('loc', []))}: {item.get('msg', item)}")
            else:
                lines.append(f"  {item}")
    elif detail:
        lines[0] += f": {detail}"
    if isinstance(body, dict):
        if body.get("field"):
            lines.append(f"  field: {body['field']}")
        freeze = body.get("freeze")
        if isinstance(freeze, dict):
            lines.append(
                f"  freeze {freeze.get('id')}: {freeze.get('reason', '')} "
                f"(lift it with `turnout freeze end {freeze.get('id')}`; a rollback always "
                "goes through)"
            )
    return "\n".join(lines)


class ApiError(CliError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(describe_error(status, body), _status_exit(status))
        self.status = status
        self.body = body


@dataclass
class Answer:
    status: int
    body: Any
    headers: httpx.Headers

    @property
    def revision(self) -> int | None:
        value = self.headers.get("X-Turnout-Revision")
        return int(value) if value and value.isdigit() else None

    @property
    def revision_note(self) -> str:
        """` (revision N)` for a message, or nothing when the answer names none."""
        return f" (revision {self.revision})" if self.revision is not None else ""


class Api:
    """The admin API at `server`, called with `token`."""

    def __init__(self, server: str, token: str | None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request; an error answer raises `ApiError`, no answer `CliError` (exit 5)."""
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the admin API at {self.server}: {exc or type(exc).__name__}",
                EXIT_UNREACHABLE,
            ) from None
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return Answer(response.status_code, body, response.headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params).body
