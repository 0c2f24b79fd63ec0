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
#: The provider kinds users choose from (and error messages list).
PUBLIC_PROVIDER_KINDS = ("synthetic", "file", "yfinance", "polygon", "fmp")
#: Also accepted: ``failing`` (every call fails; for outage tests and drills, not listed anywhere a user reads).
PROVIDER_KINDS = (*PUBLIC_PROVIDER_KINDS, "failing")

#: Every variable this module reads, with a one-line meaning (shown by ``sigmabatch --help``).
VARIABLES: dict[str, str] = {
    "SIGMABATCH_DATABASE_URL": f"SQLAlchemy URL (default {DEFAULT_DATABASE_URL}; postgresql+psycopg://… in production)",
    "SIGMABATCH_ARTIFACTS": f"artifact location: a folder (default {DEFAULT_ARTIFACTS}) or s3://bucket/prefix",
    "SIGMABATCH_S3_ENDPOINT_URL": "S3 endpoint for s3:// artifacts (empty = AWS default)",
    "SIGMABATCH_PROVIDER": "market-data provider: synthetic (default), file:PATH, yfinance, polygon, fmp",
    "SIGMABATCH_SYNTHETIC_SYMBOLS": "number of synthetic stocks besides the factor ETFs (default 40)",
    "SIGMABATCH_SYNTHETIC_SEED": "seed of the synthetic market (default 7)",
    "SIGMABATCH_PROFILE_MAX_AGE_DAYS": "refresh company profiles older than this many days (default 3)",
    "SIGMABATCH_DEFAULT_SESSIONS": "the demo portfolios' lots are entered this many sessions before the last "
                                   "completed session; the first run builds this + 1 sessions (default 30: 31)",
    "SIGMABATCH_NOW": "override the clock (ISO datetime, New York time if naive) for tests and replays",
    "SIGMABATCH_LOG_FORMAT": "log line format: text (default) or json",
    "SIGMABATCH_LOG_LEVEL": "log level (default INFO)",
    "SIGMABATCH_LOCK_TIMEOUT": "seconds to wait for the batch lock before exiting with code 4 (default 0)",
    "SIGMABATCH_LOCK_LEASE": "seconds without a heartbeat after which a run's batch lock may be taken over and "
                             "the run marked abandoned (default 300; holders renew it every quarter of that)",
    "SIGMABATCH_MIN_COVERAGE": "percent of held symbols and factor ETFs that need a usable (not stale) close on "
                               "every session; below it the run is partial, exit 3 (default 100)",
    "SIGMABATCH_CHUNK_PORTFOLIO_DATES": "portfolio x session pairs a risk step (6a-6d) computes and writes at once; "
                                        "longer backfills go in chunks of sessions; pnl-snapshots books chunks of portfolios of that many "
                                        "pairs (default 20000)",
    "SIGMABATCH_CHUNK_SYMBOL_DATES": "symbol x session pairs symbol-factors and symbol-metrics compute and write at once (longer "
                                     "backfills go in chunks of sessions) and market-data fetches and snapshots "
                                     "at once (more go in chunks of symbols; default 250000)",
    "SIGMABATCH_SHARD_POSITIONS": "target positions per portfolio shard: plan splits the portfolio steps (P&L, market "
                                  "values, risk, stress) into ceil(positions / this) shards run side by side "
                                  "(default 250000: up to the L book in one shard)",
    "SIGMABATCH_SHARDS": "fixed number of portfolio shards (default 0: from SIGMABATCH_SHARD_POSITIONS)",
    "SIGMABATCH_PAIRWISE_SESSIONS": "pairwise correlation matrices are kept for the latest this many sessions "
                                    "(counted back from the last completed session; default 1)",
    "SIGMABATCH_RETAIN_SESSIONS": "keep the other large dated result tables (symbol betas, volatility and metrics, "
                                  "factor exposures, stress results, correlation summaries and clusters) for the "
                                  "latest this many sessions; record-run deletes older ones (default 0 = keep all)",
    "SIGMABATCH_PROVIDER_CHAIN": "price fallback order for the network providers (default yfinance,polygon,fmp)",
    "SIGMABATCH_HTTP_TIMEOUT": "seconds allowed for each provider HTTP call (default 10)",
    "SIGMABATCH_HTTP_RETRIES": "tries per provider call on 429/5xx/timeouts/connection errors (default 3)",
    "SIGMABATCH_HTTP_BACKOFF": "base seconds of the exponential backoff with jitter between tries (default 0.5)",
    "SIGMABATCH_RATE_LIMITS": "requests per minute per provider (default yfinance=120,polygon=5,fmp=300,fred=120)",
    "SIGMABATCH_BATCH_SIZE": "tickers per provider batch (default 50)",
    "SIGMABATCH_YAHOO_URL": "Yahoo Finance base URL override (tests: a loopback server)",
    "SIGMABATCH_POLYGON_URL": "Polygon REST base URL override (default https://api.polygon.io)",
    "SIGMABATCH_FMP_URL": "Financial Modeling Prep base URL override (default https://financialmodelingprep.com)",
    "SIGMABATCH_FRED_URL": "FRED API root override (default https://api.stlouisfed.org/fred)",
    "POLYGON_API_KEY / FMP_API_KEY / FRED_API_KEY": "provider API keys; a provider without its key is disabled",
}

NETWORK_PROVIDERS = ("yfinance", "polygon", "fmp")
DEFAULT_PROVIDER_CHAIN = NETWORK_PROVIDERS
DEFAULT_RATE_LIMITS: dict[str, float] = {"yfinance": 120.0, "polygon": 5.0, "fmp": 300.0, "fred": 120.0}


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum or value != value or value == float("inf"):
        raise ConfigError(f"{name}={raw} must be a finite number >= {minimum}")
    return value


def _percent(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value > 100:
        raise ConfigError(f"{name}={value:g} must be a percentage between 0 and 100")
    return value


def parse_provider_chain(raw: str, source: str) -> tuple[str, ...]:
    """``"yfinance, polygon"`` -> ``("yfinance", "polygon")``; names must be network providers, no repeats."""
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
    if not names:
        raise ConfigError(f"{source}={raw!r} is empty (expected e.g. yfinance,polygon,fmp)")
    for n in names:
        if n not in NETWORK_PROVIDERS:
            raise ConfigError(f"{source}={raw!r}: unknown provider {n!r} (choose from {', '.join(NETWORK_PROVIDERS)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}={raw!r} names a provider twice")
    return names


def parse_rate_limits(raw: str, source: str) -> dict[str, float]:
    """``"polygon=5,fmp=300"`` -> defaults updated with those requests-per-minute (0 = unlimited)."""
    limits = dict(DEFAULT_RATE_LIMITS)
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in limits:
            raise ConfigError(f"{source}={raw!r}: expected name=requests_per_minute with name in "
                              f"{', '.join(limits)} (got {part!r})")
        try:
            rate = float(value)
        except ValueError:
            raise ConfigError(f"{source}={raw!r}: {value.strip()!r} is not a number") from None
        if not rate >= 0 or rate == float("inf"):
            raise ConfigError(f"{source}={raw!r}: the rate of {name} must be >= 0 (0 = unlimited)")
        limits[name] = rate
    return limits


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not (raw.startswith("http://") or raw.startswith("https://")):
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL")
    return raw.rstrip("/")


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
    lock_lease: float = 300.0
    min_coverage: float = 100.0
    chunk_portfolio_dates: int = 20_000
    chunk_symbol_dates: int = 250_000
    pairwise_sessions: int = 1
    retain_sessions: int = 0
    shard_positions: int = 250_000
    shards: int = 0
    provider_chain: tuple[str, ...] = DEFAULT_PROVIDER_CHAIN
    http_timeout: float = 10.0
    http_retries: int = 3
    http_backoff: float = 0.5
    rate_limits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS), compare=False)
    batch_size: int = 50
    yahoo_url: str | None = None
    polygon_url: str | None = None
    fmp_url: str | None = None
    fred_url: str | None = None
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
            lock_lease=_float(env, "SIGMABATCH_LOCK_LEASE", 300.0, minimum=1.0),
            min_coverage=_percent(env, "SIGMABATCH_MIN_COVERAGE", 100.0),
            chunk_portfolio_dates=_int(env, "SIGMABATCH_CHUNK_PORTFOLIO_DATES", 20_000, minimum=1),
            chunk_symbol_dates=_int(env, "SIGMABATCH_CHUNK_SYMBOL_DATES", 250_000, minimum=1),
            pairwise_sessions=_int(env, "SIGMABATCH_PAIRWISE_SESSIONS", 1, minimum=1),
            retain_sessions=_int(env, "SIGMABATCH_RETAIN_SESSIONS", 0),
            shard_positions=_int(env, "SIGMABATCH_SHARD_POSITIONS", 250_000, minimum=1),
            shards=_int(env, "SIGMABATCH_SHARDS", 0),
            provider_chain=parse_provider_chain(env.get("SIGMABATCH_PROVIDER_CHAIN", "").strip()
                                                or ",".join(DEFAULT_PROVIDER_CHAIN), "SIGMABATCH_PROVIDER_CHAIN"),
            http_timeout=_float(env, "SIGMABATCH_HTTP_TIMEOUT", 10.0, minimum=0.01),
            http_retries=_int(env, "SIGMABATCH_HTTP_RETRIES", 3, minimum=1),
            http_backoff=_float(env, "SIGMABATCH_HTTP_BACKOFF", 0.5),
            rate_limits=parse_rate_limits(env.get("SIGMABATCH_RATE_LIMITS", ""), "SIGMABATCH_RATE_LIMITS"),
            batch_size=_int(env, "SIGMABATCH_BATCH_SIZE", 50, minimum=1),
            yahoo_url=_url(env, "SIGMABATCH_YAHOO_URL"),
            polygon_url=_url(env, "SIGMABATCH_POLYGON_URL"),
            fmp_url=_url(env, "SIGMABATCH_FMP_URL"),
            fred_url=_url(env, "SIGMABATCH_FRED_URL"),
            extra={k: v for k, v in env.items() if k.endswith("_API_KEY")},
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (validated like the environment)."""
        if "provider" in changes and changes["provider"] is not None:
            validate_provider(str(changes["provider"]), "--provider")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def api_key(self, provider: str) -> str | None:
        """``POLYGON_API_KEY`` etc. from the environment captured at start (``None`` when unset or blank)."""
        value = self.extra.get(f"{provider.upper()}_API_KEY", "").strip()
        return value or None

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
        raise ConfigError(f"{source}={value!r}: unknown provider {kind!r} "
                          f"(choose from {', '.join(PUBLIC_PROVIDER_KINDS[:-1])} or {PUBLIC_PROVIDER_KINDS[-1]}; "
                          "file needs a path: file:PATH)")
    if kind == "file" and not arg:
        raise ConfigError(f"{source}={value!r}: the file provider needs a path, e.g. file:data/prices.csv")
