"""Prometheus metrics of the xDS side (the admin API serves them at `/metrics`)."""

from prometheus_client import Counter, Gauge, Histogram

CONNECTED_PROXIES = Gauge("turnout_connected_proxies", "ADS streams open now.", ["xds"])
PUSHES = Counter("turnout_xds_pushes_total", "xDS responses sent.", ["type_url"])
PUSH_DURATION = Histogram(
    "turnout_xds_push_duration_seconds",
    "Time to build and write one xDS response on a stream.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
COMMIT_TO_ACK = Histogram(
    "turnout_xds_commit_to_ack_seconds",
    "Time from a revision's commit to a proxy acknowledging all of it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NACKS = Counter("turnout_xds_nacks_total", "Responses rejected by proxies.", ["type_url"])
STALE_NONCES = Counter(
    "turnout_xds_stale_nonces_total", "Requests whose nonce was not the latest sent."
)
RESENDS_SUPPRESSED = Counter(
    "turnout_xds_resends_suppressed_total",
    "Rejected versions not sent again (a naive server would resend each at once).",
)
QUARANTINED = Gauge(
    "turnout_xds_quarantined_resources",
    "Entities proxies rejected and are held on an old version of (or without), summed "
    "over streams; GET /proxies names them.",
    ["type_url"],
)
QUARANTINED_ENTITY = Gauge(
    "turnout_xds_quarantined_entity",
    "Streams holding back this entity after a NACK. Bounded: only names Turnout sent "
    "are quarantined, and a series goes when no stream holds its entity any more.",
    ["type_url", "kind", "name"],
)
QUARANTINES = Counter(
    "turnout_xds_quarantines_total",
    "Entities quarantined after a NACK (kind: service, route, listener, ...).",
    ["type_url", "kind"],
)
RELOADS = Counter("turnout_declaration_reloads_total", "Declarations loaded and translated.")
GROUPS = Gauge(
    "turnout_xds_node_groups", "Node groups translated: with streams, or idle in their grace."
)
GROUPS_REFUSED = Counter(
    "turnout_xds_node_groups_refused_total", "Streams refused because of the node group bounds."
)
STREAMS_REFUSED = Counter(
    "turnout_xds_streams_refused_total", "ADS streams closed with an error status.", ["code"]
)
NACK_LOGS_SUPPRESSED = Counter(
    "turnout_xds_nack_logs_suppressed_total", "NACK log lines left out by the per-stream limit."
)
LRS_REPORTS_REFUSED = Counter(
    "turnout_lrs_refused_total",
    "Load reports (or their cluster entries) not counted, by reason.",
    ["reason"],
)
