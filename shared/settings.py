"""The one place that reads the environment: a frozen :class:`Settings`, validated at start.

Every variable is prefixed ``SIGMABATCH_``. A bad value raises :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.errors import ConfigError

NEW_YORK = ZoneInfo("America/New_York")

DEFAULT_DATABASE_URL = "sqlite:///var/sigmabatch.db"
DEFAULT_ARTIFACTS = "var/artifacts"
PROVIDER_KINDS = ("synthetic", "file", "yfinance", "polygon", "fmp", "failing")

#: Every variable this module reads, with a one-line meaning (shown by ``sigmabatch --help``).
VARIABLES: dict[str, str] = {
    "SIGMABATCH_DATABASE_URL": f"SQLAlchemy URL (default {DEFAULT_DATABASE_URL}; postgresql+psycopg://… in production)",
    "SIGMABATCH_ARTIFACTS": f"artifact location: a folder (default {DEFAULT_ARTIFACTS}) or s3://bucket/prefix",
    "SIGMABATCH_S3_ENDPOINT_URL": "S3 endpoint for s3:// artifacts (empty = AWS default)",
    "SIGMABATCH_PROVIDER": "market-data provider: synthetic (default), file:PATH, yfinance, polygon, fmp",
    "SIGMABATCH_SYNTHETIC_SYMBOLS": "number of synthetic stocks besides the factor ETFs (default 40)",
    "SIGMABATCH_SYNTHETIC_SEED": "seed of the synthetic market (default 7)",
    "SIGMABATCH_PROFILE_MAX_AGE_DAYS": "refresh company profiles older than this many days (default 3)",
    "SIGMABATCH_DEFAULT_SESSIONS": "sessions of snapshots to build on an empty database (default 30)",
    "SIGMABATCH_NOW": "override the clock (ISO datetime, New York time if naive) for tests and replays",
    "SIGMABATCH_LOG_FORMAT": "log line format: text (default) or json",
    "SIGMABATCH_LOG_LEVEL": "log level (default INFO)",
    "SIGMABATCH_LOCK_TIMEOUT": "seconds to wait for the batch lock before exiting with code 4 (default 0)",
}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :meth:`from_env`; tests may construct it directly."""

    database_url: str = DEFAULT_DATABASE_URL
    artifacts: str = DEFAULT_ARTIFACTS
    s3_endpoint_url: str | None = None
    provider: str = "synthetic"
    synthetic_symbols: int = 40
    synthetic_seed: int = 7
    profile_max_age_days: int = 3
    default_sessions: int = 30
    now: datetime | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    lock_timeout: int = 0
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        database_url = env.get("SIGMABATCH_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
        if "://" not in database_url:
            raise ConfigError(
                f"SIGMABATCH_DATABASE_URL={database_url!r} is not a database URL "
                "(expected e.g. sqlite:///var/sigmabatch.db or postgresql+psycopg://user@host/db)"
            )
        if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
            database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
        artifacts = env.get("SIGMABATCH_ARTIFACTS", "").strip() or DEFAULT_ARTIFACTS
        if artifacts.startswith("s3://") and len(artifacts) <= len("s3://"):
            raise ConfigError("SIGMABATCH_ARTIFACTS='s3://' needs a bucket: s3://bucket/prefix")
        if "://" in artifacts and not artifacts.startswith("s3://"):
            raise ConfigError(f"SIGMABATCH_ARTIFACTS={artifacts!r}: only a folder or s3://bucket/prefix is supported")
        provider = env.get("SIGMABATCH_PROVIDER", "").strip() or "synthetic"
        validate_provider(provider, "SIGMABATCH_PROVIDER")
        log_format = env.get("SIGMABATCH_LOG_FORMAT", "").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise ConfigError(f"SIGMABATCH_LOG_FORMAT={log_format!r} must be text or json")
        log_level = env.get("SIGMABATCH_LOG_LEVEL", "").strip().upper() or "INFO"
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"SIGMABATCH_LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING or ERROR")
        now = None
        raw_now = env.get("SIGMABATCH_NOW", "").strip()
        if raw_now:
            try:
                now = datetime.fromisoformat(raw_now)
            except ValueError:
                raise ConfigError(f"SIGMABATCH_NOW={raw_now!r} is not an ISO datetime") from None
            if now.tzinfo is None:
                now = now.replace(tzinfo=NEW_YORK)
        return cls(
            database_url=database_url,
            artifacts=artifacts,
            s3_endpoint_url=env.get("SIGMABATCH_S3_ENDPOINT_URL", "").strip() or None,
            provider=provider,
            synthetic_symbols=_int(env, "SIGMABATCH_SYNTHETIC_SYMBOLS", 40, minimum=1),
            synthetic_seed=_int(env, "SIGMABATCH_SYNTHETIC_SEED", 7),
            profile_max_age_days=_int(env, "SIGMABATCH_PROFILE_MAX_AGE_DAYS", 3),
            default_sessions=_int(env, "SIGMABATCH_DEFAULT_SESSIONS", 30, minimum=1),
            now=now,
            log_format=log_format,
            log_level=log_level,
            lock_timeout=_int(env, "SIGMABATCH_LOCK_TIMEOUT", 0),
            extra={k: v for k, v in env.items() if k.endswith("_API_KEY")},
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (validated like the environment)."""
        if "provider" in changes and changes["provider"] is not None:
            validate_provider(str(changes["provider"]), "--provider")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def current_time(self) -> datetime:
        """Now in New York time (or the SIGMABATCH_NOW override)."""
        return (self.now or datetime.now(tz=NEW_YORK)).astimezone(NEW_YORK)

    @property
    def artifacts_are_s3(self) -> bool:
        return self.artifacts.startswith("s3://")

    @property
    def artifacts_path(self) -> Path:
        if self.artifacts_are_s3:
            raise ConfigError("SIGMABATCH_ARTIFACTS is an s3:// location, not a folder")
        return Path(self.artifacts)


def validate_provider(value: str, source: str) -> None:
    """Check a provider spec such as ``synthetic``, ``file:/path/prices.csv`` or ``yfinance``."""
    kind, _, arg = value.partition(":")
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"{source}={value!r}: unknown provider {kind!r} (choose from {', '.join(PROVIDER_KINDS)})")
    if kind == "file" and not arg:
        raise ConfigError(f"{source}={value!r}: the file provider needs a path, e.g. file:data/prices.csv")
