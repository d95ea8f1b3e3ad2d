"""The declaration: what operators declared, how it is validated and stored.

`models` knows nothing of Envoy or HTTP. `admin` writes through `turnout.storage.store`;
`xds` reads a `Declaration` from it and listens to its change feed.
"""
