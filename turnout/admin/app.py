"""`create_app`: the admin API wired to a store and a proxy status source.

The entry point owns configuration (environment, token generation); this module
only assembles routers, auth and error handling around what it is given.
"""

from fastapi import Depends, FastAPI

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
from turnout.admin.auth import hash_token
from turnout.admin.deps import require_admin
from turnout.admin.errors import install_error_handlers
from turnout.admin.write_gate import WriteGate
from turnout.models.entities import ENTITIES
from turnout.models.load_stats import LoadStatsSource
from turnout.models.proxy_status import ProxyStatusSource
from turnout.models.store import Store

DESCRIPTION = """\
Declare services, routes, splits and consumers (with their API keys); Turnout turns
them into Envoy configuration.

Every endpoint except `GET /healthz` needs `Authorization: Bearer <token>`: the
bootstrap admin token, or a token from `POST /tokens` whose role allows the call
(viewer: reads; operator: also writes; admin: also `/tokens`). 403 names the
missing role.
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
) -> FastAPI:
    """The admin app.

    `admin_token` (from TURNOUT_ADMIN_TOKEN) wins when given; otherwise requests are
    checked against the hash stored with `Store.set_admin_token_hash`.
    """
    app = FastAPI(title="Turnout admin API", description=DESCRIPTION, version="0.1.0")
    app.state.store = store
    app.state.proxy_status = proxy_status
    app.state.admin_token_hash = hash_token(admin_token) if admin_token else None
    app.state.load_stats = load_stats

    authed = [Depends(require_admin)]
    app.include_router(system.health_router)
    app.include_router(plans.router, dependencies=authed)  # before /splits/{name}: see plans
    for ent in ENTITIES.values():
        app.include_router(entity_router(ent), dependencies=authed)
    app.include_router(consumer_keys.router, dependencies=authed)
    app.include_router(proxies.router, dependencies=authed)
    app.include_router(system.router, dependencies=authed)
    for router in (freezes.router, revisions.router, config.router):
        app.include_router(router, dependencies=authed)
    app.include_router(tokens.router, dependencies=authed)
    install_error_handlers(app)
    app.add_middleware(WriteGate)
    return app
