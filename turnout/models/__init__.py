"""The declaration: what operators declared and how it is validated.

Entity specs, their row declarations and the shared types, and the same for the
records kept beside the declaration (API keys `key`, admin tokens `token`, freezes
`freeze`): the ground floor that every other package may import. `models` knows
nothing of Envoy, HTTP or how rows are queried, and imports no other Turnout
package. `turnout.storage` keeps the declaration in the database; `admin` writes
through it, `xds` reads a `Declaration` from it and listens to its change feed.
"""
