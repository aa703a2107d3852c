"""Settings, read once from the environment and an optional `.env` file, validated at start.

The names and defaults of the original utility are kept; every invalid value is refused
with one line that names the variable and what is allowed. Secrets are `SecretStr` and
URLs that may carry a password are only ever shown through `redact_url`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError

REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")
SENTINEL_PORT = 26379

# Bounds that Redis (expiry times, stream ids) and the clock (datetime arithmetic) can hold,
# far past any real need: a value outside them is a typo, refused at start, not on every check.
MAX_USD = 1e9  # as the client's answers: beyond it is not money
YEAR_H = 8760.0
MIN_INTERVAL_MIN = 1 / 60  # one second: beat sends faster than a check can run below that
MAX_INTERVAL_MIN = 7 * 24 * 60.0
MAX_RETENTION_DAYS = 3650.0  # ten years: the stream's trim point stays well after 1970
MAX_ATTEMPTS = 20

# What each setting allows, for the one-line refusal.
_ALLOWED = {
    "openrouter_base_url": "an http:// or https:// URL, e.g. https://openrouter.ai/api/v1",
    "openrouter_base_url:credentials": (
        "a URL without a user name or password (the key goes in OPENROUTER_API_KEY), "
        "e.g. https://openrouter.ai/api/v1"
    ),
    "redis_url": (
        "a redis://, rediss:// or unix:// URL, e.g. redis://localhost:6379/0, or Sentinels "
        "as sentinel://[:PASSWORD@]host:26379[;sentinel://host2:26379...]/0"
    ),
    "celery_broker_url": (
        "a broker URL such as redis://localhost:6379/0, or Sentinels with the password and "
        "the db on the first: sentinel://:PASSWORD@host:26379/1;sentinel://host2:26379/1"
    ),
    "celery_result_backend": (
        "a result backend URL such as redis://localhost:6379/0, or Sentinels with the password "
        "and the db on the first: sentinel://:PASSWORD@host:26379/1;sentinel://host2:26379/1"
    ),
    "credit_warning_threshold": "a number of dollars from 0 to 1000000000, e.g. 10",
    "credit_critical_threshold": "a number of dollars >= 0 and below CREDIT_WARNING_THRESHOLD",
    "credit_check_interval_minutes": (
        "a number of minutes from 0.0167 (1 s) to 10080 (a week), e.g. 30"
    ),
    "credit_alert_cooldown_hours": "a number of hours from 0 to 8760 (a year), e.g. 1",
    "credit_initial_balance": (
        "a number of dollars from 0 to 1000000000, or empty to leave it unset"
    ),
    "credit_recovery_margin": "a fraction between 0 and 1, e.g. 0.1",
    "credit_unknown_after_failures": "a whole number from 1 to 1000, e.g. 3",
    "credit_history_retention_days": "a number of days > 0 and up to 3650 (ten years), e.g. 90",
    "credit_redis_prefix": "letters, digits, '_', '-' or '.', e.g. openrouter",
    "credit_http_timeout_s": "a number of seconds > 0 and up to 600, e.g. 10",
    "credit_alert_retry_attempts": "a whole number from 1 to 20, e.g. 4",
    "credit_alert_retry_s": "a number of seconds from 0 to 120 (the first retry's wait), e.g. 2",
    "credit_key_warning_percent": "a percent between 0 and 100, e.g. 20",
    "credit_key_critical_percent": "a percent between 0 and 100, below CREDIT_KEY_WARNING_PERCENT",
    "credit_burn_window_hours": "a number of hours > 0 and up to 8760 (a year), e.g. 24",
    "credit_runway_warning_hours": (
        "a number of hours from 0 (runway alerts off) to 8760 (a year), e.g. 48"
    ),
    "credit_inhibit_when_account_critical": "true or false (false: key and runway alerts go out "
    "while the account is critical too)",
    "credit_retry_attempts": "a whole number from 1 to 20, e.g. 4",
    "credit_retry_budget_s": "a number of seconds > 0 and up to 3600, e.g. 30",
    "credit_beat_scheduler": "file (the default) or redbeat (RedBeat in Redis: HA beat)",
    "credit_visibility_timeout_s": "a number of seconds from 1 to 86400 (a day), e.g. 300",
    "credit_redis_sentinel_master": "the name the Sentinels monitor the master by, e.g. mymaster",
    "credit_redis_sentinel_password": "the Sentinels' own password (their requirepass), or empty",
    "credit_spike_window_minutes": "a number of minutes > 0 and up to 10080 (a week), e.g. 60",
    "credit_spike_factor": "a number from 0 (spike alerts off) to 1000, e.g. 5",
    "credit_spike_min_usd": "a number of dollars from 0 to 1000000000, e.g. 1.00",
    "credit_runway_min_span_minutes": "a number of minutes from 0 to 525600 (a year), e.g. 60",
    "credit_report_hour_utc": "a whole hour from 0 to 23, or empty for no scheduled report",
    "openrouter_api_key": "the key as OpenRouter shows it once (sk-or-v1-...), without spaces",
    "openrouter_management_key": "a management key (sk-or-v1-...) without spaces, or empty",
    "credit_web_auth": "user:password, both non-empty, for the web page's basic auth",
    "credit_web_metrics_public": "true or false (/metrics without CREDIT_WEB_AUTH)",
}
_SECRET_FIELDS = {
    "openrouter_api_key",
    "openrouter_management_key",
    "credit_alert_urls",
    "credit_web_auth",
    "credit_redis_sentinel_password",
}
_URL_FIELDS = {"openrouter_base_url", "redis_url", "celery_broker_url", "celery_result_backend"}


@dataclass(frozen=True)
class SentinelUrl:
    """A `sentinel://` REDIS_URL: where the Sentinels listen, and the master's db and login."""

    hosts: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = None  # the master's (and replicas'), not the Sentinels'

    def normalized(self) -> str:
        """The URL as kombu and Celery read it: the login and db on every Sentinel."""
        login = ""
        if self.password is not None or self.username is not None:
            login = f"{self.username or ''}:{self.password or ''}@"
        return ";".join(f"sentinel://{login}{host}:{port}/{self.db}" for host, port in self.hosts)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """`sentinel://[user:password@]host[:port][/db]` parts joined by `;`; ValueError if not."""
    hosts: list[tuple[str, int]] = []
    logins: set[tuple[str | None, str | None]] = set()
    dbs: set[int] = set()
    for chunk in url.split(";"):
        parts = urlsplit(chunk.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError("not a sentinel URL")
        port = parts.port or SENTINEL_PORT  # raises on a non-numeric port
        hosts.append((parts.hostname, port))
        if parts.username is not None or parts.password is not None:
            user = unquote(parts.username) if parts.username else None
            logins.add((user, unquote(parts.password) if parts.password else None))
        if parts.path.strip("/"):
            dbs.add(int(parts.path.strip("/")))  # raises on a non-numeric db
    if len(logins) > 1 or len(dbs) > 1:
        raise ValueError("the Sentinels disagree on the login or the db")
    username, password = next(iter(logins), (None, None))
    return SentinelUrl(tuple(hosts), next(iter(dbs), 0), username, password)


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, safe to print (each part of a Sentinel list)."""
    if ";" in url:
        return ";".join(redact_url(part) for part in url.split(";"))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _DotEnvUnlessEmptied(PydanticBaseSettingsSource):
    """The `.env` values, less those whose variable the environment sets to empty."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._dotenv = dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the .env source whole

    def __call__(self) -> dict[str, Any]:
        emptied = {name.lower() for name, value in os.environ.items() if not value}
        return {k: v for k, v in self._dotenv().items() if k.lower() not in emptied}


class Settings(BaseSettings):
    """Every setting of credit_tasks; build one with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    openrouter_api_key: SecretStr | None = None
    openrouter_management_key: SecretStr | None = None
    # URLs may carry a password: kept out of repr, shown only through redact_url
    openrouter_base_url: str = Field("https://openrouter.ai/api/v1", repr=False)
    redis_url: str = Field("redis://localhost:6379/0", repr=False)
    celery_broker_url: str | None = Field(None, repr=False)
    celery_result_backend: str | None = Field(None, repr=False)

    credit_warning_threshold: float = Field(10.0, ge=0, le=MAX_USD)
    credit_critical_threshold: float = Field(5.0, ge=0, le=MAX_USD)
    credit_check_interval_minutes: float = Field(30, ge=MIN_INTERVAL_MIN, le=MAX_INTERVAL_MIN)
    credit_alert_cooldown_hours: float = Field(1, ge=0, le=YEAR_H)
    credit_initial_balance: float | None = Field(None, ge=0, le=MAX_USD)
    credit_recovery_margin: float = Field(0.1, ge=0, le=1)
    credit_unknown_after_failures: int = Field(3, ge=1, le=1000)
    credit_history_retention_days: float = Field(90, gt=0, le=MAX_RETENTION_DAYS)
    credit_redis_prefix: str = Field("openrouter", pattern=r"^[A-Za-z0-9_.\-]+$")

    credit_alert_urls: SecretStr | None = None
    credit_alert_retry_attempts: int = Field(4, ge=1, le=MAX_ATTEMPTS)
    credit_alert_retry_s: float = Field(2.0, ge=0, le=120)
    credit_key_warning_percent: float = Field(20.0, ge=0, le=100)
    credit_key_critical_percent: float = Field(5.0, ge=0, le=100)
    credit_burn_window_hours: float = Field(24.0, gt=0, le=YEAR_H)
    credit_runway_warning_hours: float = Field(48.0, ge=0, le=YEAR_H)
    # while the account is critical or out of money, its alert stands for the keys' and runway's
    credit_inhibit_when_account_critical: bool = True
    # a runway projected from a few minutes of history is a burst, not a pace
    credit_runway_min_span_minutes: float = Field(60.0, ge=0, le=YEAR_H * 60)
    credit_spike_window_minutes: float = Field(60.0, gt=0, le=MAX_INTERVAL_MIN)
    credit_spike_factor: float = Field(5.0, ge=0, le=1000)  # 0: no spike alerts
    credit_spike_min_usd: float = Field(1.0, ge=0, le=MAX_USD)
    credit_report_hour_utc: int | None = Field(None, ge=0, le=23)

    credit_http_timeout_s: float = Field(10.0, gt=0, le=600)
    credit_retry_attempts: int = Field(4, ge=1, le=MAX_ATTEMPTS)
    credit_retry_budget_s: float = Field(30.0, gt=0, le=3600)

    # "redbeat" keeps the schedule and a leader lock in Redis, so standby beats can run
    credit_beat_scheduler: Literal["file", "redbeat"] = "file"
    flower_basic_auth: SecretStr | None = None  # user:password[,user:password] for Flower
    # how long an unacknowledged task waits before the Redis broker gives it to another worker
    credit_visibility_timeout_s: float = Field(300.0, ge=1, le=86400)
    # with REDIS_URL=sentinel://...: the master's name, and the Sentinels' own password
    credit_redis_sentinel_master: str = Field("mymaster", pattern=r"^[A-Za-z0-9_.\-]+$")
    credit_redis_sentinel_password: SecretStr | None = None
    # the web face: basic auth for all but /healthz, and /metrics left open when asked
    credit_web_auth: SecretStr | None = None
    credit_web_metrics_public: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # an empty variable unsets its setting: .env must not fill it back in
        dotenv = _DotEnvUnlessEmptied(settings_cls, dotenv_settings)
        return init_settings, env_settings, dotenv, file_secret_settings

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a finite number")
        return value

    @field_validator("openrouter_api_key", "openrouter_management_key", mode="after")
    @classmethod
    def _header_safe_key(cls, value: SecretStr | None) -> SecretStr | None:
        # a key goes into an HTTP header: a stray space or newline from .env would otherwise
        # look like an OpenRouter outage, and a non-ASCII character would crash the request
        if value is None:
            return None
        key = value.get_secret_value().strip()
        if not key:
            return None
        if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
            raise ValueError("not a key")
        return SecretStr(key)

    @field_validator("credit_web_auth", mode="after")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, _, password = value.get_secret_value().partition(":")
            if not user or not password:
                raise ValueError("not user:password")
        return value

    @field_validator("openrouter_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL")
        # httpx would send them as Basic auth instead of the Bearer key: every check would fail
        if "@" in parts.netloc:
            raise ValueError("credentials")
        return value.rstrip("/")

    @field_validator("redis_url", "celery_broker_url", "celery_result_backend")
    @classmethod
    def _redis_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if is_sentinel(value):
            found = parse_sentinel_url(value)
            # Celery reads CELERY_* itself, and kombu and Celery take the login and the db from
            # the first Sentinel only (REDIS_URL is passed on with them on every Sentinel)
            first = parse_sentinel_url(value.split(";")[0])
            if info.field_name != "redis_url" and first != replace(found, hosts=first.hosts):
                raise ValueError("login or db not on the first Sentinel")
            return value
        parts = urlsplit(value)
        if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
            raise ValueError("not a redis URL")
        try:
            parts.port  # noqa: B018  (raises on a non-numeric port)
        except ValueError as exc:
            raise ValueError("bad port") from exc
        return value

    @model_validator(mode="after")
    def _critical_below_warning(self) -> Settings:
        if self.credit_critical_threshold >= self.credit_warning_threshold:
            raise ValueError("critical_not_below_warning")
        if self.credit_key_critical_percent >= self.credit_key_warning_percent:
            raise ValueError("key_percents_inverted")
        return self

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def result_backend(self) -> str:
        return self.celery_result_backend or self.redis_url

    @property
    def sentinel(self) -> SentinelUrl | None:
        """REDIS_URL's Sentinels, when it names Sentinels rather than a Redis."""
        return parse_sentinel_url(self.redis_url) if is_sentinel(self.redis_url) else None

    def sentinel_options(self) -> dict[str, Any]:
        """What a client gives the Sentinels themselves: their password and short timeouts."""
        options: dict[str, Any] = {"socket_connect_timeout": 3, "socket_timeout": 5}
        if self.credit_redis_sentinel_password is not None:
            options["password"] = self.credit_redis_sentinel_password.get_secret_value()
        return options

    @property
    def cooldown_s(self) -> float:
        return self.credit_alert_cooldown_hours * 3600

    @property
    def check_interval_s(self) -> float:
        return self.credit_check_interval_minutes * 60

    @property
    def retention_s(self) -> float:
        return self.credit_history_retention_days * 86400

    def require_api_key(self) -> SecretStr:
        """The API key, or a ConfigError that says how to set it."""
        if self.openrouter_api_key is None:
            raise ConfigError(
                "OPENROUTER_API_KEY is not set: export it or put it in .env "
                "(or run `make demo` to try the monitor without a key)"
            )
        return self.openrouter_api_key


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel:")


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(part) for part in err.get("loc", ())]
    if not loc and "critical_not_below_warning" in str(err.get("msg", "")):
        return (
            "CREDIT_CRITICAL_THRESHOLD must be below CREDIT_WARNING_THRESHOLD: "
            "lower it or raise the warning threshold"
        )
    if not loc and "key_percents_inverted" in str(err.get("msg", "")):
        return (
            "CREDIT_KEY_CRITICAL_PERCENT must be below CREDIT_KEY_WARNING_PERCENT: "
            "lower it or raise the warning percent"
        )
    field = loc[0] if loc else "?"
    name = field.upper()
    value = err.get("input")
    allowed = _ALLOWED.get(field, "a valid value")
    if field == "openrouter_base_url" and "credentials" in str(err.get("msg", "")):
        # the user name may be a secret as much as the password: neither is shown
        value = urlunsplit(urlsplit(str(value))._replace(netloc=f"***@{_host(str(value))}"))
        allowed = _ALLOWED["openrouter_base_url:credentials"]
    if field in _SECRET_FIELDS:
        shown = ""
    elif field in _URL_FIELDS and isinstance(value, str):
        shown = f"={_safe_redact(value)!r}"
    else:
        shown = f"={value!r}"
    return f"{name}{shown} is invalid: set it to {allowed}"


def _host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]


def _safe_redact(url: str) -> str:
    try:
        return redact_url(url)
    except ValueError:  # too malformed to parse: show nothing rather than a password
        return "<unparseable URL>"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and `.env`), overridden by keyword arguments."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
