"""`create_app`: the admin API wired to a store and a proxy status source.

The entry point owns configuration (environment, token generation); this module
only assembles routers, auth and error handling around what it is given.
"""

from fastapi import APIRouter, Depends, FastAPI

from turnout.admin.api import (
    config,
    consumer_keys,
    freezes,
    plans,
    proxies,
    revisions,
    system,
    tokens,
)
from turnout.admin.api.entities import entity_router
from turnout.admin.deps import get_principal
from turnout.admin.errors import AUTHENTICATED, install_error_handlers
from turnout.admin.guard import AuthGuard
from turnout.admin.roles import check_rules
from turnout.admin.ui.live import MAX_CLIENTS
from turnout.admin.ui.router import mount_ui
from turnout.admin.write_gate import WriteGate
from turnout.admin.write_log import WriteLog
from turnout.models.change import ChangeFeed
from turnout.models.entities import ENTITIES
from turnout.models.load_stats import LoadStatsSource
from turnout.models.proxy_status import ProxyStatusSource
from turnout.models.token import hash_token
from turnout.ratelimit.usage import QuotaReader
from turnout.storage.store import Store

DESCRIPTION = """\
Declare services, routes, splits and consumers (with their API keys); Turnout turns
them into Envoy configuration.

Every endpoint except `GET /healthz` and `GET /metrics` needs
`Authorization: Bearer <token>`: the bootstrap admin token, or a token from
`POST /tokens` whose role allows the call (viewer: reads; operator: also writes the
declaration, drives plans, declares freezes, revokes keys; admin: also creates keys,
manages tokens, lifts and overrides freezes, restores revisions and `POST /config`).
The token is checked before the body is read: 401, then 403 naming the missing
role, then 422. Credentials are never shown again after creation (proxy configs and
rejections show them as "[redacted]").
Every write answers with header `X-Turnout-Revision`: the global revision it
produced, which `GET /proxies` shows each proxy reaching. A rejected request
(401, 403, 404, 409, 422, 423) changes nothing. While a freeze covers an entity,
writes to it get 423; an admin may pass one request through with header
`X-Turnout-Override-Reason: <why>`, which is audited.
"""


def create_app(
    store: Store,
    proxy_status: ProxyStatusSource,
    admin_token: str | None = None,
    load_stats: LoadStatsSource | None = None,
    quota_usage: QuotaReader | None = None,
    ui_event_streams: int = MAX_CLIENTS,
    feed: ChangeFeed | None = None,
) -> FastAPI:
    """The admin app.

    `admin_token` (from TURNOUT_ADMIN_TOKEN) wins when given; otherwise requests are
    checked against the hash stored with `Store.set_admin_token_hash`. `quota_usage`
    reads the quota counters for the dashboard's Consumers page (None: no Redis);
    `ui_event_streams` bounds the dashboard's open event streams. `feed` wakes
    the dashboard's pages (`turnout serve`'s feed; the store's own commits if omitted).
    """
    app = FastAPI(title="Turnout admin API", description=DESCRIPTION, version="0.1.0")
    app.state.store = store
    app.state.proxy_status = proxy_status
    app.state.admin_token_hash = hash_token(admin_token) if admin_token else None
    app.state.load_stats = load_stats
    app.state.quota_usage = quota_usage
    app.state.feed = feed if feed is not None else store.commits

    def include(router: APIRouter) -> None:
        # The guard has already checked token and role; `get_principal` documents the
        # scheme, AUTHENTICATED the answers (401/403/503) every operation can give; each
        # operation adds its own kind's (turnout/admin/errors.py).
        app.include_router(router, dependencies=[Depends(get_principal)], responses=AUTHENTICATED)

    app.include_router(system.health_router)
    include(plans.router)  # before /splits/{name}: see plans
    for ent in ENTITIES.values():
        include(entity_router(ent))
    for router in (
        consumer_keys.router,
        proxies.router,
        system.router,
        freezes.router,
        revisions.router,
        config.router,
        tokens.router,
    ):
        include(router)
    mount_ui(app, ui_event_streams)
    install_error_handlers(app)
    # The last added runs first: a request is authenticated before it may queue as a write.
    app.add_middleware(WriteGate)
    app.add_middleware(WriteLog)
    app.add_middleware(AuthGuard)
    check_rules(app.openapi())
    return app
