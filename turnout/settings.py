"""Every TURNOUT_* environment variable and every default, in one place.

The CLI, `turnout serve`, the demo, backups and the database layer all read their
environment through `current()` (or the one-variable helpers below), so a new
variable is added here and nowhere else. The values are read when asked for, not at
import, so a test (or a CI job) that sets a variable sees it take effect.

Precedence everywhere: a command-line option, else the environment variable, else
(for `server`/`token`) the current context of the config file, else the default.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Keep this module free of imports from the rest of turnout: storage and serve code
# import it, and it must not pull the CLI (click, httpx) in with it.

DATABASE_URL_ENV = "TURNOUT_DATABASE_URL"
OLD_SECRET_KEY_ENV = "TURNOUT_OLD_SECRET_KEY"
DEFAULT_DATABASE_URL = "sqlite:///turnout.db"
DEFAULT_ADMIN_LISTEN = "127.0.0.1:8001"
DEFAULT_XDS_LISTEN = "127.0.0.1:18000"
DEFAULT_RATELIMIT_LISTEN = "127.0.0.1:18081"
DEFAULT_REDIS_PREFIX = "turnout:rl:"
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_LOG_FORMAT = "text"
DEFAULT_FAILURE_MODE = "open"
DEFAULT_RATELIMIT_WORKERS = "1"
DEFAULT_TIMEOUT_S = 30.0
"""How long an API call of the CLI waits for an answer."""

VARIABLES: dict[str, str] = {
    "TURNOUT_DATABASE_URL": "database URL (serve, db upgrade, backup/restore/verify, "
    "and dump/diff/apply/token without a server)",
    "TURNOUT_ADMIN_TOKEN": "serve: the admin token (else one is generated and printed once)",
    "TURNOUT_SECRET_KEY": "serve: encrypts consumers' API keys at rest",
    "TURNOUT_OLD_SECRET_KEY": "restore/verify --old-secret-key: the backup's secret",
    "TURNOUT_REDIS_URL": "serve/ratelimit: Redis for quotas",
    "TURNOUT_REDIS_PREFIX": "serve/ratelimit: Redis key prefix",
    "TURNOUT_RATELIMIT_FAILURE_MODE": "serve/ratelimit: open or closed when Redis is down",
    "TURNOUT_RATELIMIT_WORKERS": "ratelimit: processes on one port",
    "TURNOUT_REPLICA_ID": "serve: this replica's name in shared proxy status",
    "TURNOUT_LOG_LEVEL": "log level",
    "TURNOUT_LOG_FORMAT": "text or json",
    "TURNOUT_SERVER": "API commands: the admin API's URL",
    "TURNOUT_TOKEN": "API commands: the bearer token",
    "TURNOUT_CONTEXT": "API commands: the config file's context to use",
    "TURNOUT_CONFIG": "API commands: the config file (default ~/.config/turnout/config.yaml)",
}
"""Every variable Turnout reads, with what it is for (shown in `turnout --help`)."""


@dataclass(frozen=True)
class Settings:
    """The environment, read once: `None` where a variable is unset or empty."""

    database_url: str
    admin_token: str | None
    secret_key: str | None
    old_secret_key: str | None
    redis_url: str | None
    redis_prefix: str
    ratelimit_failure_mode: str
    ratelimit_workers: str
    replica_id: str | None
    log_level: str
    log_format: str
    server: str | None
    token: str | None
    context: str | None
    config_path: Path


def _get(env: Mapping[str, str], name: str) -> str | None:
    # An empty variable counts as unset (`TURNOUT_SECRET_KEY= turnout serve`).
    return env.get(name) or None


def default_config_path(env: Mapping[str, str]) -> Path:
    if explicit := _get(env, "TURNOUT_CONFIG"):
        return Path(explicit)
    base = _get(env, "XDG_CONFIG_HOME") or str(
        Path(env.get("HOME") or "~").expanduser() / ".config"
    )
    return Path(base) / "turnout" / "config.yaml"


def current(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of this process's environment now (or of `env`)."""
    env = os.environ if env is None else env
    return Settings(
        database_url=_get(env, DATABASE_URL_ENV) or DEFAULT_DATABASE_URL,
        admin_token=_get(env, "TURNOUT_ADMIN_TOKEN"),
        secret_key=_get(env, "TURNOUT_SECRET_KEY"),
        old_secret_key=_get(env, OLD_SECRET_KEY_ENV),
        redis_url=_get(env, "TURNOUT_REDIS_URL"),
        redis_prefix=_get(env, "TURNOUT_REDIS_PREFIX") or DEFAULT_REDIS_PREFIX,
        ratelimit_failure_mode=_get(env, "TURNOUT_RATELIMIT_FAILURE_MODE") or DEFAULT_FAILURE_MODE,
        ratelimit_workers=_get(env, "TURNOUT_RATELIMIT_WORKERS") or DEFAULT_RATELIMIT_WORKERS,
        replica_id=_get(env, "TURNOUT_REPLICA_ID"),
        log_level=_get(env, "TURNOUT_LOG_LEVEL") or DEFAULT_LOG_LEVEL,
        log_format=_get(env, "TURNOUT_LOG_FORMAT") or DEFAULT_LOG_FORMAT,
        server=_get(env, "TURNOUT_SERVER"),
        token=_get(env, "TURNOUT_TOKEN"),
        context=_get(env, "TURNOUT_CONTEXT"),
        config_path=default_config_path(env),
    )


def database_url(arg: str | None = None) -> str:
    """`--database-url`, else TURNOUT_DATABASE_URL, else sqlite:///turnout.db."""
    return arg or current().database_url
