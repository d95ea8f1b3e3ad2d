"""Storage: everything that talks to the database.

The engine (`db`), the store and its transactions (`store`), the checks that span
entities (`references`), the audit trail and change sets (`audit`, `changes`),
revisions and backups (`revisions`, `backup`), the records kept beside the
declaration in one shape (`records`: API keys in `keystore` and `keycrypt`, admin
tokens in `tokens`, freezes in `freezes`), the PostgreSQL change feed (`notify`, `pg_feed`),
leadership and replica status (`leader`, `replicas`) and the schema migrations.

It imports `turnout.models` (specs and the row declarations beside them), never
`admin` or `xds`.
"""
