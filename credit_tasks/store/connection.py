"""The connection: `connect` (one Redis, or the master the Sentinels name), and the base of
every part of the store: its client, keys and retention, and Redis errors translated, here
and only here, into a `StoreError` with a line that says what to do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, Self, TypeVar
from urllib.parse import urlsplit

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from ..errors import StoreError
from ..keyspace import Keyspace
from ..settings import Settings, is_sentinel, parse_sentinel_url, redact_url

P = ParamSpec("P")
T = TypeVar("T")

_TIMEOUTS: dict[str, Any] = {
    "socket_connect_timeout": 3,
    "socket_timeout": 5,
    "health_check_interval": 30,
}


def connect(
    url: str,
    *,
    sentinel_master: str = "mymaster",
    sentinel_options: dict[str, Any] | None = None,
    **options: Any,
) -> redis.Redis:
    """A Redis client for `url` with short timeouts, so an outage fails fast.

    For a `sentinel://` URL, the master the Sentinels name (redis-py's own Sentinel client):
    after a failover the next command finds the new master. `sentinel_options` go to the
    Sentinels themselves (their password, their timeouts).
    """
    options = _TIMEOUTS | {"decode_responses": True} | options
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    where = parse_sentinel_url(url)
    if sentinel_options is None:
        sentinel_options = {k: options[k] for k in ("socket_connect_timeout", "socket_timeout")}
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(where.hosts),
        sentinel_kwargs=sentinel_options,
        db=where.db,
        username=where.username,
        password=where.password,
        **options,
    )
    client: redis.Redis = sentinels.master_for(sentinel_master)  # type: ignore[no-untyped-call]
    return client


def translated(method: Callable[P, T]) -> Callable[P, T]:
    """A store method whose Redis errors come out as the store's `StoreError` line."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            store = args[0]
            assert isinstance(store, Connection)
            raise store._error(exc) from None

    return wrapper


class Connection:
    """The client, the key names and the retention each part of the store writes with."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keyspace,
        *,
        retention_s: float,
        url: str = "redis://",
        sentinel_master: str = "mymaster",
    ) -> None:
        # Any: redis-py's types cannot tell that decode_responses gives str
        self.redis: Any = client
        self.keys = keys
        self.retention_s = retention_s
        self._replicated = is_sentinel(url)
        self._master = sentinel_master
        # without the query: redis-py also takes ?password=..., which redact_url leaves alone
        self._where = redact_url(url).split("?", 1)[0]
        self._has_password = any(
            urlsplit(part).password is not None or "password=" in urlsplit(part).query
            for part in url.split(";")
        )
        self._register_scripts(client)

    def _register_scripts(self, client: redis.Redis) -> None:
        """Register the Lua scripts of each part: a part with scripts extends this."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            connect(
                settings.redis_url,
                sentinel_master=settings.credit_redis_sentinel_master,
                sentinel_options=settings.sentinel_options(),
            ),
            Keyspace(settings.credit_redis_prefix),
            retention_s=settings.retention_s,
            url=settings.redis_url,
            sentinel_master=settings.credit_redis_sentinel_master,
        )

    def close(self) -> None:
        self.redis.close()

    def _error(self, exc: redis.RedisError) -> StoreError:
        if isinstance(exc, MasterNotFoundError):
            # its text lists every Sentinel's client at length: say what it means instead
            if "AuthenticationError" in str(exc):
                return StoreError(
                    f"the Sentinels of {self._where} refused their password: set "
                    "CREDIT_REDIS_SENTINEL_PASSWORD to the Sentinels' requirepass"
                )
            return StoreError(
                f"no Sentinel of {self._where} names a master for {self._master!r} (a failover "
                "in progress, or Sentinels down?): check CREDIT_REDIS_SENTINEL_MASTER and the "
                "Sentinels"
            )
        if isinstance(exc, redis.AuthenticationError):
            if not self._has_password:  # NOAUTH: the URL carries no password at all
                return StoreError(
                    f"Redis at {self._where} requires a password: put it in REDIS_URL "
                    "as redis://:PASSWORD@host:port/db"
                )
            return StoreError(f"Redis at {self._where} refused the password: fix it in REDIS_URL")
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            # "Error 111 connecting to host:6379. Connection refused." -> "Connection refused"
            reason = str(exc).rstrip(".").split(". ")[-1] or type(exc).__name__
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                return StoreError(
                    f"Redis at {self._where} sent a TLS certificate that does not verify "
                    f"({reason}): add ?ssl_ca_certs=/path/to/ca.pem to REDIS_URL"
                )
            return StoreError(
                f"Redis at {self._where} is unreachable ({reason}): start redis-server "
                "or set REDIS_URL"
            )
        return StoreError(f"Redis at {self._where} refused a command ({exc}): check the server")

    @translated
    def ping(self) -> None:
        self.redis.ping()

    @translated
    def eviction_warning(self) -> str | None:
        """One line when this Redis may evict what the monitor keeps; None when it may not,
        or when it will not say (CONFIG refused, as on some managed services).

        Asked once at start (worker, `check`) and by `status`, never on every check.
        """
        try:
            policy = self.redis.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.ResponseError:
            return None
        if not policy or policy == "noeviction":
            return None
        return (
            f"Redis at {self._where} has maxmemory-policy {policy}: it may evict the alert "
            "state, so alerts repeat and resolutions are lost; use the 'noeviction' policy or "
            "give credit_tasks a Redis instance or db of its own"
        )
