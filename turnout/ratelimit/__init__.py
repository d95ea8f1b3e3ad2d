"""Turnout's rate limit service: fleet-wide quotas for Envoy's `ratelimit` filter.

    service.py   deciding: `envoy.service.ratelimit.v3.RateLimitService`, no transport
    counters.py  fixed-window counters in Redis (asyncio, for the xDS port)
    batch.py     the same counters for threads: concurrent calls share one pipeline
    server.py    the service's own port: grpcio's sync server, its limits and TLS
    callers.py   the allow-list of caller certificate names
    main.py      `turnout ratelimit`; workers.py: `--workers N` on one port

Runs inside `turnout serve` (on the xDS port, and on `--ratelimit-listen`) or alone
as `turnout ratelimit`. It needs no declaration: each descriptor carries its limit
(`quota=<N>/<window>`, see `turnout/xds/translate/ratelimit.py`).
"""
