"""Turnout: an Envoy xDS control plane.

    models/   the declaration: specs, rows, the store and its change feed
    admin/    the operator side: FastAPI admin API
    xds/      the Envoy side: translation, snapshot cache, ADS server, proxy status

Dependencies point `admin -> models <- xds`; `serve.py` (the entry point) wires them.
"""
