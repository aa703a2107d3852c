"""The Redis store: current snapshot, monitoring status, timeline, alert state and records.

Redis errors are translated here, and only here, into `StoreError` with a line that says
what to do. A check costs three round trips whatever the number of keys: `claim` (the lock),
`load` (states, burn window, failure count) and `commit`, a script that compares and sets the
alert states and writes the rest at once, so any number of concurrent checks on any number
of workers commits each transition once. The store stores; what to write is decided elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from . import timeline
from .alerts import Alert
from .errors import StoreError
from .history import Point
from .keyspace import ALERTS_LIST_CAP, Keyspace
from .rules import AlertState, Subject
from .settings import Settings, is_sentinel, parse_sentinel_url, redact_url

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

REPLICA_WAIT_MS = 250  # with Sentinel, a commit waits this long for a replica to have it
_HSET_CHUNK = 500  # field pairs per HSET inside the script: Lua's unpack() has a limit

# The keys it writes besides KEYS are built from the prefix: fine on a single Redis or
# Sentinel, which is what the monitor supports (not Cluster).
_COMMIT = """
local plan = cjson.decode(ARGV[2])
for _, c in ipairs(plan.cas) do
  if (redis.call('HGET', KEYS[1], c[1]) or '') ~= c[2] then return 0 end
end
local failed
local function run(cmd)
  local reply = redis.pcall(unpack(cmd))
  if type(reply) == 'table' and reply.err then failed = failed or reply.err end
end
for _, c in ipairs(plan.cas) do run({'HSET', KEYS[1], c[1], c[3]}) end
for _, cmd in ipairs(plan.cmds) do run(cmd) end
local p = plan.point
if p then
  local reply = redis.pcall('XADD', p[1], 'MINID', '~', p[2], p[3], unpack(p, 4))
  if type(reply) == 'table' and reply.err then
    if string.find(reply.err, 'equal or smaller') then
      -- a worker whose clock is behind the last point: the server's time instead
      run({'XADD', p[1], '*', unpack(p, 4)})
    else
      failed = failed or reply.err
    end
  end
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if failed then return redis.error_reply(failed) end
return 1
"""
# Publishes an alert unless its record says it was; atomic, so a crashed or concurrent
# delivery can neither skip nor repeat it. ARGV: channel, message, now, record (JSON, for a
# new record), retention s, list cap. The list key is built from the record's prefix.
_DELIVER = """
local done = redis.call('HGET', KEYS[1], 'delivered_at')
if done and done ~= '' then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local record = cjson.decode(ARGV[4])
  for name, value in pairs(record) do redis.call('HSET', KEYS[1], name, value) end
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('LPUSH', KEYS[2], record['id'])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'delivered_at', ARGV[3])
return 1
"""
# The recent alerts whose publication never happened: id and timestamp of each.
_UNDELIVERED = """
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local r = redis.call('HMGET', ARGV[1] .. id, 'delivered_at', 'timestamp')
  if r[2] and (not r[1] or r[1] == '') then
    table.insert(out, id)
    table.insert(out, r[2])
  end
end
return out
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Claim:
    """The check lock's token, or why another check has it (`running` or `scheduled`)."""

    token: str | None
    skipped: str | None = None


@dataclass(frozen=True)
class Loaded:
    """What a check reads before it decides."""

    states: dict[Subject, AlertState]
    raw: dict[Subject, str | None]  # as stored: the commit compares against it
    window: list[Point]
    consecutive_failures: int
    credits_forbidden: str = ""  # the last check's 403 on /credits, said once


@dataclass(frozen=True)
class Cooldown:
    """A marker that holds an alert type back for a subject (the alert's id, for a while)."""

    type: str
    subject: str
    alert_id: str
    ttl_s: float


@dataclass(frozen=True)
class Commit:
    """Everything one check writes: decided states, alerts, cooldowns and its record."""

    now: datetime
    status: str | None = None  # the monitoring status to record; None leaves it
    states: dict[Subject, AlertState] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    cooldowns: list[Cooldown] = field(default_factory=list)
    current: dict[str, str] | None = None  # a successful check's figures
    point: dict[str, str] | None = None  # its timeline entry
    keys: dict[str, dict[str, Any]] | None = None  # the per-key table, replaced whole
    unreadable: list[str] | None = None  # /keys items not read; None leaves the last list
    error: str | None = None  # a failed check's reason

    @classmethod
    def success(cls, now: datetime, status: str, figures: dict[str, Any], **more: Any) -> Commit:
        current = {k: _text(v) for k, v in figures.items()} | {"status": status}
        point = timeline.encode(
            figures.get("remaining_usd"), figures.get("usage_usd"), status, figures.get("source")
        )
        return cls(now, status, current=current, point=point, **more)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _px(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _hset(key: str, mapping: dict[str, str]) -> list[str]:
    return ["HSET", key, *(item for pair in mapping.items() for item in pair)]


def _state(raw: str | None) -> AlertState:
    return AlertState.from_json(json.loads(raw)) if raw else AlertState()


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


class Store:
    """Everything credit_tasks keeps in Redis."""

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
        self._commit = client.register_script(_COMMIT)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._unreplicated = False  # said once when no replica confirms, once when one does
        self._deliver = client.register_script(_DELIVER)
        self._undelivered = client.register_script(_UNDELIVERED)
        self._replicated = is_sentinel(url)
        self._master = sentinel_master
        # without the query: redis-py also takes ?password=..., which redact_url leaves alone
        self._where = redact_url(url).split("?", 1)[0]
        self._has_password = any(
            urlsplit(part).password is not None or "password=" in urlsplit(part).query
            for part in url.split(";")
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
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
    def claim(self, lock_ttl_s: float, scheduled_hold_s: float | None = None) -> Claim:
        """Take the check lock (and this interval's scheduled slot), in one round trip."""
        token = uuid.uuid4().hex
        pipe = self.redis.pipeline(transaction=False)
        if scheduled_hold_s is not None:
            pipe.set(self.keys.scheduled_guard, "1", nx=True, px=_px(scheduled_hold_s))
        pipe.set(self.keys.check_lock, token, nx=True, px=_px(lock_ttl_s))
        *guard, locked = pipe.execute()
        if guard and not guard[0]:
            if locked:
                self.release(token)
            return Claim(None, "scheduled")
        return Claim(token) if locked else Claim(None, "running")

    @contextlib.contextmanager
    def renewing(self, token: str, ttl_s: float) -> Iterator[None]:
        """Keep the check lock of `token` alive while the block runs.

        The lock's TTL stays short: when its holder dies, or the master it was written on
        fails over, nobody renews it and it lapses within `ttl_s`.
        """
        done = threading.Event()

        def renew() -> None:
            while not done.wait(ttl_s / 3):
                # Redis away: the lock lapses, and the commit's compare still guards
                with contextlib.suppress(redis.RedisError):
                    self._renew(keys=[self.keys.check_lock], args=[token, _px(ttl_s)])

        thread = threading.Thread(target=renew, name="check-lock", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    @_translated
    def release(self, token: str) -> None:
        """Free the check lock if this token still holds it (the commit usually does)."""
        self._release(keys=[self.keys.check_lock], args=[token])

    @_translated
    def load(self, subjects: list[Subject], window_start: datetime, end: datetime) -> Loaded:
        """The subjects' alert states, the burn window and the failure count: one round trip."""
        names = [str(s) for s in subjects]
        pipe = self.redis.pipeline(transaction=False)
        if names:
            pipe.hmget(self.keys.alert_state, names)
        pipe.xrange(self.keys.timeline, min=_ms(window_start), max=_ms(end))
        pipe.hmget(self.keys.monitoring_status, ["consecutive_failures", "credits_forbidden"])
        *raws, entries, (failures, forbidden) = pipe.execute()
        raw = dict(zip(subjects, raws[0] if raws else [], strict=True))
        return Loaded(
            states={s: _state(r) for s, r in raw.items()},
            raw=raw,
            window=[timeline.decode(entry_id, fields) for entry_id, fields in entries],
            consecutive_failures=int(failures or 0),
            credits_forbidden=forbidden or "",
        )

    @_translated
    def commit(self, change: Commit, loaded: Loaded | None = None, token: str = "") -> bool:
        """Write a check's decision and record at once, and free the lock; one round trip.

        The states are compared and set: when another check changed one of them since
        `loaded` was read, nothing is written and False comes back, to decide again.
        """
        read = loaded.raw if loaded else {}
        cas = []
        for subject, state in change.states.items():
            raw = json.dumps(state.to_json())
            before = read.get(subject)
            if raw != before:
                cas.append([str(subject), before or "", raw])
        plan: dict[str, Any] = {"cas": cas, "cmds": self._commands(change)}
        if change.point is not None:
            plan["point"] = self._point_command(change)
        keys = [self.keys.alert_state, self.keys.check_lock]
        committed = bool(self._commit(keys=keys, args=[token, json.dumps(plan)]))
        # behind Sentinel: a decision the new master lacks after a failover would be made,
        # and sent, again
        if committed and self._replicated:
            confirmed = bool(self.redis.execute_command("WAIT", 1, REPLICA_WAIT_MS))
            if confirmed == self._unreplicated:
                self._unreplicated = not confirmed
                if confirmed:
                    log.info("a replica confirms the commits again")
                else:
                    log.warning(
                        "no replica confirmed a commit within %d ms: a failover now could "
                        "lose the last decisions (is the replica down?)",
                        REPLICA_WAIT_MS,
                    )
        return committed

    def record_success(
        self,
        snapshot: dict[str, Any],
        status: str,
        now: datetime,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Store the snapshot as current, reset the failure count and add a timeline point."""
        self.commit(Commit.success(now, status, snapshot | (extra or {})))

    def _commands(self, change: Commit) -> list[list[str]]:
        k, now = self.keys, change.now.isoformat()
        cmds: list[list[str]] = []
        if change.current is not None:
            cmds.append(_hset(k.current, change.current))
            cmds.append(
                _hset(
                    k.monitoring_status,
                    {
                        "last_check_at": now,
                        "last_success_at": now,
                        "consecutive_failures": "0",
                        "last_error": "",
                        "last_status": change.status or "",
                        "credits_forbidden": change.current.get("credits_forbidden", ""),
                    }
                    | (
                        {}
                        if change.unreadable is None
                        else {"unreadable_keys": ",".join(change.unreadable)}
                    ),
                )
            )
        if change.error is not None:
            cmds.append(
                _hset(k.monitoring_status, {"last_check_at": now, "last_error": change.error})
            )
            cmds.append(["HINCRBY", k.monitoring_status, "consecutive_failures", "1"])
            if change.status is not None:
                cmds.append(["HSET", k.current, "status", change.status])
                cmds.append(["HSET", k.monitoring_status, "last_status", change.status])
        if change.keys is not None:
            cmds.append(["DEL", k.keys_current])
            rows = [(h, json.dumps(row)) for h, row in change.keys.items()]
            for start in range(0, len(rows), _HSET_CHUNK):
                cmds.append(_hset(k.keys_current, dict(rows[start : start + _HSET_CHUNK])))
        for alert in change.alerts:
            cmds.extend(self._record_commands(alert))
        for cooldown in change.cooldowns:
            marker = k.alert_last(cooldown.type, cooldown.subject)
            cmds.append(["SET", marker, cooldown.alert_id, "EX", str(max(1, int(cooldown.ttl_s)))])
        return cmds

    def _point_command(self, change: Commit) -> list[str]:
        assert change.point is not None
        ms = _ms(change.now)
        minid = ms - int(self.retention_s * 1000)
        fields = [item for pair in change.point.items() for item in pair]
        return [self.keys.timeline, str(minid), f"{ms}-*", *fields]

    def _record_commands(self, alert: Alert) -> list[list[str]]:
        key = self.keys.alert(alert.id)
        record = {k: _text(v) for k, v in alert.as_dict().items()} | {"delivered_at": ""}
        return [
            _hset(key, record),
            ["EXPIRE", key, str(int(self.retention_s))],
            ["LPUSH", self.keys.alerts_list, alert.id],
            ["LTRIM", self.keys.alerts_list, "0", str(ALERTS_LIST_CAP - 1)],
        ]

    @_translated
    def keys_table(self) -> list[dict[str, Any]]:
        """The per-key figures of the last check."""
        return [json.loads(v) for v in self.redis.hvals(self.keys.keys_current)]

    @_translated
    def deliver(self, alert: Alert, now: datetime) -> bool:
        """Store (if new) and publish an alert once; False when it was already delivered."""
        record = {k: _text(v) for k, v in alert.as_dict().items()} | {"delivered_at": ""}
        published = self._deliver(
            keys=[self.keys.alert(alert.id), self.keys.alerts_list],
            args=[
                self.keys.channel,
                json.dumps(alert.as_dict()),
                now.isoformat(),
                json.dumps(record),
                str(int(self.retention_s)),
                str(ALERTS_LIST_CAP),
            ],
        )
        return bool(published)

    @_translated
    def undelivered(self, now: datetime, min_age_s: float, max_age_s: float) -> list[Alert]:
        """Recent alerts committed but never published, between `min_age_s` and `max_age_s` old.

        Their `send_alert` was lost (a broker message gone with a failed-over master, a
        worker killed before its delivery): the caller dispatches them again.
        """
        found = self._undelivered(keys=[self.keys.alerts_list], args=[self.keys.alert("")])
        late = [
            alert_id
            for alert_id, stamp in zip(found[::2], found[1::2], strict=True)
            if min_age_s <= (now - datetime.fromisoformat(stamp)).total_seconds() <= max_age_s
        ]
        alerts = []
        for alert_id in late:
            record = self.redis.hgetall(self.keys.alert(alert_id))
            try:  # the record's text back into the alert: an empty field was a None
                alerts.append(Alert.from_dict({k: v for k, v in record.items() if v != ""}))
            except ValueError as exc:
                log.warning("alert %s cannot be sent again: %s", alert_id, exc)
        return alerts

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
        return [timeline.decode(entry_id, fields) for entry_id, fields in entries]

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
