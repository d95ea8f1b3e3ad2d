"""Turnout's rate limit service: fleet-wide quotas for Envoy's `ratelimit` filter.

    counters.py  fixed-window counters in Redis
    service.py   the `envoy.service.ratelimit.v3.RateLimitService` servicer (grpc.aio)
    h2grpc.py    the lean HTTP/2 transport for unary gRPC calls (h2wire.py: its constants)
    h2tls.py     TLS for that transport: server context, handshake, refusal log lines
    main.py      `turnout ratelimit`

Runs inside `turnout serve` (on the xDS port) or alone as `turnout ratelimit`. It
needs no declaration: each descriptor carries its limit (`quota=<N>/<window>`, see
`turnout/xds/translate/ratelimit.py`).
"""
