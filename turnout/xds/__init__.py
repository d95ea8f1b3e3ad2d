"""The Envoy side: translation, snapshot cache, ADS server and proxy status.

`xds` reads the declaration through `models` and never imports `admin`.
"""
