"""The dashboard's routes under /ui: sign-in, four pages, their live events, writes.

Auth is by session cookie (sessions.py), not bearer: `AuthGuard` leaves /ui to
this module. Every write needs the session's CSRF token (header X-CSRF-Token),
is allowed by the role the API's own table (`roles.rule_for`) gives the
equivalent API call, and runs the API's code path: a freeze answers 423, the
audit actor is the token's name, errors are the API's JSON bodies.
"""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from turnout.admin.api.plans import load_stats_source
from turnout.admin.principal import Principal, authenticate, forbidden
from turnout.admin.roles import rule_for
from turnout.admin.ui import views
from turnout.admin.ui.live import MAX_CLIENTS, EventHub
from turnout.admin.ui.sessions import COOKIE, Session, Sessions
from turnout.models.freeze import FreezeCreate, FreezeScope, now
from turnout.models.plan import PlanAction
from turnout.models.token import Role
from turnout.storage.plan_steps import step_split

CSRF_HEADER = "X-CSRF-Token"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGES = {
    "board": "/ui/",
    "fleet": "/ui/fleet",
    "history": "/ui/history",
    "consumers": "/ui/consumers",
}


def mount_ui(app: FastAPI, event_streams: int = MAX_CLIENTS) -> None:
    """Serve the dashboard from `app`, with its own sessions and at most
    `event_streams` event streams open at once."""
    app.state.ui_sessions = Sessions()
    app.state.ui_events = EventHub(event_streams)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")


def sessions(request: Request) -> Sessions:
    return request.app.state.ui_sessions  # type: ignore[no-any-return]


def _signed_in(request: Request) -> tuple[Session, Principal] | None:
    session = sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    state = request.app.state
    try:
        return session, authenticate(state.admin_token_hash, state.store, session.token)
    except HTTPException:  # revoked or expired since sign-in
        return None


def _writer(request: Request, method: str, api_path: str) -> Principal:
    """The principal allowed to make this write, or 401/403 (CSRF, role)."""
    found = _signed_in(request)
    if found is None:
        raise HTTPException(401, "not signed in")
    session, principal = found
    if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, f"missing or wrong {CSRF_HEADER}")
    rule = rule_for(method, api_path)
    if rule is None or not principal.role.allows(rule.role):
        raise forbidden(principal, rule.role if rule else Role.ADMIN, f"{method} {api_path}")
    return principal


async def _page(request: Request, page: str, build: Any) -> Response:
    found = _signed_in(request)
    if found is None:
        return RedirectResponse("/ui/login", status_code=303)
    session, principal = found
    state = request.app.state
    data, freezes = await run_in_threadpool(
        lambda: (build(state), views.active_freezes(state.store))
    )
    return templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "pages": PAGES,
            "principal": principal,
            "can_write": principal.role.allows(Role.OPERATOR),
            "is_admin": principal.role.allows(Role.ADMIN),
            "csrf": session.csrf,
            "freezes": freezes,
            "fragment": request.headers.get("X-Fragment") == "1",
            "now": now(),
            **data,
        },
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, error: str | None = None) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": error, "page": "login"})


@router.post("/login")
def login(request: Request, token: Annotated[str, Form(max_length=512)]) -> Response:
    state = request.app.state
    try:
        authenticate(state.admin_token_hash, state.store, token.strip())
    except HTTPException:
        return RedirectResponse("/ui/login?error=invalid+token", status_code=303)
    sid, _session = sessions(request).start(token.strip())
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=int(sessions(request).ttl),
        path="/ui",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    found = _signed_in(request)
    if found is not None and found[0].csrf_matches(request.headers.get(CSRF_HEADER)):
        sessions(request).end(request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/", response_class=HTMLResponse)
async def board_page(request: Request) -> Response:
    return await _page(
        request, "board", lambda s: {"rows": views.board(s.store, load_stats_source(request))}
    )


@router.get("/fleet", response_class=HTMLResponse)
async def fleet_page(request: Request) -> Response:
    return await _page(
        request,
        "fleet",
        lambda s: {"proxies": views.fleet(s.proxy_status), "latest": s.store.revision()},
    )


@router.get("/history", response_class=HTMLResponse)
async def history_page(
    request: Request,
    a: Annotated[int | None, Query(ge=0)] = None,
    b: Annotated[int | None, Query(ge=0)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    audit_filter = {"actor": actor or None, "kind": kind or None, "name": name or None}
    return await _page(
        request,
        "history",
        lambda s: views.history(s.store, s.proxy_status, a, b, audit_filter),
    )


@router.get("/consumers", response_class=HTMLResponse)
async def consumers_page(request: Request) -> Response:
    return await _page(
        request,
        "consumers",
        lambda s: {
            "consumers": views.consumers(s.store, s.quota_usage),
            "counted": s.quota_usage is not None,
        },
    )


@router.get("/events")
async def events(request: Request) -> Response:
    if _signed_in(request) is None:
        raise HTTPException(401, "not signed in")
    hub: EventHub = request.app.state.ui_events
    stream = hub.open(request.app.state.feed)
    if stream is None:
        raise HTTPException(
            503,
            f"too many dashboard event streams (at most {hub.max_clients})",
            headers={"Retry-After": "5"},
        )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


@router.post("/splits/{name}/{action}")
def plan_action(name: str, action: PlanAction, request: Request) -> dict[str, Any]:
    principal = _writer(request, "POST", f"/splits/{name}/{action.value}")
    reason = f"{action.value} by {principal.name} (dashboard)"
    _split, revision = step_split(request.app.state.store, name, action, principal.name, reason)
    return {"revision": revision}


@router.post("/freezes")
def create_freeze(
    request: Request,
    reason: Annotated[str, Form(min_length=1, max_length=1024)],
    minutes: Annotated[int, Form(ge=1, le=7 * 24 * 60)] = 60,
) -> dict[str, Any]:
    principal = _writer(request, "POST", "/freezes")
    body = FreezeCreate(
        reason=reason, scope=FreezeScope(all=True), ends_at=now() + timedelta(minutes=minutes)
    )
    freeze, _revision = request.app.state.store.freezes.create(body, principal.name)
    return {"id": freeze.id}


@router.post("/freezes/{freeze_id}/lift")
def lift_freeze(freeze_id: int, request: Request) -> dict[str, Any]:
    principal = _writer(request, "DELETE", f"/freezes/{freeze_id}")
    request.app.state.store.freezes.delete(freeze_id, principal.name)
    return {"lifted": freeze_id}


@router.post("/revisions/{n}/restore")
def restore(n: int, request: Request) -> dict[str, Any]:
    principal = _writer(request, "POST", f"/revisions/{n}/restore")
    result = request.app.state.store.restore_revision(
        n, principal.name, reason=f"restore revision {n} (dashboard)"
    )
    return {"revision": result.revision}
