"""Turnout's rate limit service: fleet-wide quotas for Envoy's `ratelimit` filter.

    counters.py  fixed-window counters in Redis
    service.py   the `envoy.service.ratelimit.v3.RateLimitService` servicer (grpc.aio)

Runs inside `turnout serve` (on the xDS port) or alone as `turnout ratelimit`. It
needs no declaration: each descriptor carries its limit (`quota=<N>/<window>`, see
`turnout/xds/translate/ratelimit.py`).
"""
