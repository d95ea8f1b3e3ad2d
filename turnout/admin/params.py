"""Bounds of path and query parameters, so an out-of-range number is a 422 naming
the parameter instead of a database overflow (500)."""

DB_INT_MAX = 2**63 - 1
"""The largest revision or id a column holds (BIGINT; SQLite's INTEGER too)."""
