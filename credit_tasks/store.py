"""The Redis store: current snapshot, monitoring status, timeline, alert state and records.

Redis errors are translated here, and only here, into `StoreError` with a line that says
what to do. Alert decisions are applied in one optimistic transaction (WATCH/MULTI), so
any number of concurrent checks on any number of workers commits each transition once.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.lock import Lock

from .alerts import Alert
from .errors import StoreError
from .history import Point
from .keyspace import ALERTS_LIST_CAP, Keyspace
from .rules import AlertState, AlertType
from .settings import Settings, redact_url

P = ParamSpec("P")
T = TypeVar("T")

Decide = Callable[[dict[str, AlertState]], tuple[dict[str, AlertState], list[Alert]]]
# queues more writes into a decision's transaction; returns the timeline point it added, if any
Writes = Callable[[Any], dict[str, str] | None]
SENDING_TTL_S = 60  # a delivery that crashed frees its claim after this


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def _state(raw: str | None) -> AlertState:
    return AlertState.from_json(json.loads(raw)) if raw else AlertState()


def connect(url: str) -> redis.Redis:
    """A Redis client for `url` with short timeouts, so an outage fails fast."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=30,
    )


class Store:
    """Everything credit_tasks keeps in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keyspace,
        *,
        retention_s: float,
        cooldown_s: float,
        url: str = "redis://",
    ) -> None:
        # Any: redis-py's types cannot tell that decode_responses gives str
        self.redis: Any = client
        self.keys = keys
        self.retention_s = retention_s
        self.cooldown_s = cooldown_s
        # without the query: redis-py also takes ?password=..., which redact_url leaves alone
        self._where = redact_url(url).split("?", 1)[0]
        parts = urlsplit(url)
        self._has_password = parts.password is not None or "password=" in parts.query

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(
            connect(settings.redis_url),
            Keyspace(settings.credit_redis_prefix),
            retention_s=settings.retention_s,
            cooldown_s=settings.cooldown_s,
            url=settings.redis_url,
        )

    def close(self) -> None:
        self.redis.close()

    def _error(self, exc: redis.RedisError) -> StoreError:
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

    @staticmethod
    def _translated(method: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return method(*args, **kwargs)
            except redis.RedisError as exc:
                store = args[0]
                assert isinstance(store, Store)
                raise store._error(exc) from None

        return wrapper

    @_translated
    def ping(self) -> None:
        self.redis.ping()

    @_translated
    def claim_scheduled(self, hold_s: float) -> bool:
        """Claim this interval's scheduled check; False when another claimed it < hold_s ago."""
        hold_ms = max(1, int(hold_s * 1000))
        return bool(self.redis.set(self.keys.scheduled_guard, "1", nx=True, px=hold_ms))

    @contextmanager
    def check_lock(self, timeout_s: float) -> Iterator[bool]:
        """Hold the check lock while the block runs; yields False when another check holds it."""
        lock = Lock(self.redis, self.keys.check_lock, timeout=timeout_s, blocking=False)
        try:
            acquired = lock.acquire()
        except redis.RedisError as exc:
            raise self._error(exc) from None
        try:
            yield acquired
        finally:
            if acquired:
                # expired or Redis gone: the timeout frees it either way
                with suppress(redis.RedisError):
                    lock.release()

    @_translated
    def record_success(
        self,
        snapshot: dict[str, Any],
        status: str,
        now: datetime,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Store the snapshot as current, reset the failure count and add a timeline point."""
        pipe = self.redis.pipeline()
        point = self.queue_success(pipe, snapshot, status, now, extra)
        self._execute(pipe, point)

    def queue_success(
        self,
        pipe: Any,
        snapshot: dict[str, Any],
        status: str,
        now: datetime,
        extra: dict[str, Any] | None = None,
        *,
        unreadable_keys: list[str] | None = None,
    ) -> dict[str, str]:
        """Queue the writes of a successful check on `pipe`; returns the timeline point.

        `unreadable_keys` replaces the stored list of `/keys` items that could not be read
        (comma-joined); None leaves it as the last listing left it.
        """
        current = {k: _text(v) for k, v in (snapshot | (extra or {})).items()} | {"status": status}
        pipe.hset(self.keys.current, mapping=current)
        monitoring: dict[str, object] = {
            "last_check_at": now.isoformat(),
            "last_success_at": now.isoformat(),
            "consecutive_failures": 0,
            "last_error": "",
            "last_status": status,
        }
        if unreadable_keys is not None:
            monitoring["unreadable_keys"] = ",".join(unreadable_keys)
        pipe.hset(self.keys.monitoring_status, mapping=monitoring)
        point = {
            "r": current.get("remaining_usd", ""),
            "u": current.get("usage_usd", ""),
            "s": status,
            "src": current.get("source", ""),
        }
        pipe.xadd(
            self.keys.timeline,
            point,
            id=f"{_ms(now)}-*",
            minid=_ms(now) - int(self.retention_s * 1000),
            approximate=True,
        )
        return point

    def queue_keys(self, pipe: Any, rows: dict[str, dict[str, Any]]) -> None:
        """Queue the replacement of the per-key table (hash -> figures), one key in all."""
        pipe.delete(self.keys.keys_current)
        if rows:
            pipe.hset(
                self.keys.keys_current,
                mapping={h: json.dumps(row) for h, row in rows.items()},
            )

    def _execute(self, pipe: Any, point: dict[str, str] | None) -> list[Any]:
        """Run `pipe`; the first error is raised once every command has had its turn."""
        results: list[Any] = pipe.execute(raise_on_error=False)
        errors = [r for r in results if isinstance(r, redis.ResponseError)]
        late = [e for e in errors if "equal or smaller" in str(e)]
        if late and point is not None:
            # a worker with a clock behind the last point: fall back to the server's time
            self.redis.xadd(self.keys.timeline, point)
        if len(errors) > len(late):
            raise next(e for e in errors if e not in late)
        return results

    @_translated
    def record_failure(self, now: datetime, error: str, status: str | None = None) -> int:
        """Count a failed check; returns how many failed in a row."""
        pipe = self.redis.pipeline()
        pipe.hset(
            self.keys.monitoring_status,
            mapping={"last_check_at": now.isoformat(), "last_error": error},
        )
        pipe.hincrby(self.keys.monitoring_status, "consecutive_failures", 1)
        return int(pipe.execute()[1])

    @_translated
    def set_status(self, status: str) -> None:
        """Mark the current snapshot and the monitoring status with `status`."""
        pipe = self.redis.pipeline()
        pipe.hset(self.keys.current, "status", status)
        pipe.hset(self.keys.monitoring_status, "last_status", status)
        pipe.execute()

    @_translated
    def alert_states(self, subjects: list[str]) -> dict[str, AlertState]:
        """The alert state of each subject, in one round trip."""
        raws = self.redis.hmget(self.keys.alert_state, subjects) if subjects else []
        return {s: _state(raw) for s, raw in zip(subjects, raws, strict=True)}

    @_translated
    def apply(
        self, subjects: list[str], decide: Decide, writes: Writes | None = None
    ) -> list[Alert]:
        """Run `decide` on the subjects' alert states and commit its result atomically.

        `writes` queues more commands (the check's record) into the same transaction, after
        `decide` ran. When another check commits first, everything is decided again on the
        fresh states, so a transition and its alerts are committed exactly once. The round
        trips do not grow with the number of subjects.
        """
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.keys.alert_state)
                    raws = pipe.hmget(self.keys.alert_state, subjects) if subjects else []
                    states = {s: _state(raw) for s, raw in zip(subjects, raws, strict=True)}
                    new_states, alerts = decide(states)
                    pipe.multi()
                    self._queue_decision(pipe, states, new_states, alerts)
                    point = writes(pipe) if writes else None
                    self._execute(pipe, point)
                    return alerts
                except redis.WatchError:
                    continue

    def _queue_decision(
        self,
        pipe: Any,
        states: dict[str, AlertState],
        new_states: dict[str, AlertState],
        alerts: list[Alert],
    ) -> None:
        changed = {
            s: json.dumps(st.to_json()) for s, st in new_states.items() if st != states.get(s)
        }
        if changed:
            pipe.hset(self.keys.alert_state, mapping=changed)
        for alert in alerts:
            self._queue_record(pipe, alert)
            if alert.type is not AlertType.RESOLVED:
                pipe.set(
                    self.keys.alert_last(alert.type.value, alert.subject),
                    alert.id,
                    ex=max(1, int(self.cooldown_s)),
                )

    @_translated
    def keys_table(self) -> list[dict[str, Any]]:
        """The per-key figures of the last check."""
        return [json.loads(v) for v in self.redis.hvals(self.keys.keys_current)]

    def _queue_record(self, pipe: Any, alert: Alert) -> None:
        key = self.keys.alert(alert.id)
        record = {k: _text(v) for k, v in alert.as_dict().items()} | {"delivered_at": ""}
        pipe.hset(key, mapping=record)
        pipe.expire(key, int(self.retention_s))
        pipe.lpush(self.keys.alerts_list, alert.id)
        pipe.ltrim(self.keys.alerts_list, 0, ALERTS_LIST_CAP - 1)

    @_translated
    def deliver(self, alert: dict[str, Any], now: datetime) -> bool:
        """Store (if new) and publish an alert once; False when it was already delivered."""
        alert_id = str(alert["id"])
        key = self.keys.alert(alert_id)
        sending = self.keys.alert_sending(alert_id)
        if not self.redis.set(sending, "1", nx=True, ex=SENDING_TTL_S):
            return False  # another worker is delivering it right now
        try:
            if self.redis.hget(key, "delivered_at"):
                return False
            pipe = self.redis.pipeline()
            if not self.redis.exists(key):
                record = {k: _text(v) for k, v in alert.items()} | {"delivered_at": ""}
                pipe.hset(key, mapping=record)
                pipe.expire(key, int(self.retention_s))
                pipe.lpush(self.keys.alerts_list, alert_id)
                pipe.ltrim(self.keys.alerts_list, 0, ALERTS_LIST_CAP - 1)
            pipe.publish(self.keys.channel, json.dumps(alert))
            pipe.hset(key, "delivered_at", now.isoformat())
            pipe.execute()
            return True
        finally:
            self.redis.delete(sending)

    @_translated
    def channels_done(self, alert_id: str) -> set[str]:
        """Ids of the Apprise channels that already took this alert."""
        raw = self.redis.hget(self.keys.alert(alert_id), "channels_ok") or ""
        return {c for c in raw.split(",") if c}

    @_translated
    def record_channels(self, alert_id: str, *, ok: list[str], failed: list[str]) -> None:
        """Add `ok` to the alert's delivered channels and note which are still failing."""
        key = self.keys.alert(alert_id)
        done = sorted(self.channels_done(alert_id) | set(ok))
        self.redis.hset(
            key, mapping={"channels_ok": ",".join(done), "channels_failed": ",".join(failed)}
        )

    @_translated
    def record_delivery_error(self, alert_id: str, error: str) -> None:
        self.redis.hset(self.keys.alert(alert_id), "delivery_error", error)

    @_translated
    def history(self, start: datetime, end: datetime) -> list[Point]:
        """Timeline points between `start` and `end`, oldest first, in one round trip."""
        entries = self.redis.xrange(self.keys.timeline, min=_ms(start), max=_ms(end))
        return [
            Point(
                timestamp=datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, UTC),
                remaining_usd=_float(fields.get("r")),
                usage_usd=_float(fields.get("u")),
                status=fields.get("s", ""),
                source=fields.get("src", ""),
            )
            for entry_id, fields in entries
        ]

    @_translated
    def current(self) -> dict[str, str]:
        return dict(self.redis.hgetall(self.keys.current))

    @_translated
    def monitoring_status(self) -> dict[str, str]:
        return dict(self.redis.hgetall(self.keys.monitoring_status))

    @_translated
    def recent_alerts(self, count: int = 10) -> list[dict[str, str]]:
        """The newest alert records, newest first, in two round trips."""
        ids = self.redis.lrange(self.keys.alerts_list, 0, count - 1)
        pipe = self.redis.pipeline()
        for alert_id in ids:
            pipe.hgetall(self.keys.alert(alert_id))
        return [dict(record) for record in pipe.execute() if record]
