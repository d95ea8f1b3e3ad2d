"""The operator side: the admin HTTP API over the store.

`admin` imports `models` and never `xds`; what it needs to know about proxies
arrives through `turnout.models.proxy_status.ProxyStatusSource`.
"""
