"""The Redis store: current snapshot, monitoring status, timeline, alert state and records.

Redis errors are translated here, and only here, into `StoreError` with a line that says
what to do. A check costs three round trips whatever the number of keys: `claim` (the lock),
`load` (states, silences and acks, burn window, failure count) and `commit`, a script that
compares and sets the alert states (and the silences' version) and writes the rest at once,
so any number of concurrent checks on any number of workers commits each transition once.
The store stores; what to write is decided elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from . import rollup, timeline
from . import silences as codec
from .alerts import Alert
from .errors import StoreError
from .history import Point
from .keyspace import ALERTS_LIST_CAP, Keyspace
from .rules import Ack, AlertState, Silence, Silencing, Subject
from .settings import Settings, is_sentinel, parse_sentinel_url, redact_url

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

REPLICA_WAIT_MS = 250  # with Sentinel, a commit waits this long for a replica to have it
_HSET_CHUNK = 500  # field pairs per HSET inside the script: Lua's unpack() has a limit
_ZADD_CHUNK = 2000  # score pairs per ZADD: short pairs, well under that limit (8,000 values)

# The keys it writes besides KEYS are built from the prefix: fine on a single Redis or
# Sentinel, which is what the monitor supports (not Cluster).
_COMMIT = """
local CHUNK = 1000  -- fields per HDEL: unpack() has a limit
local plan = cjson.decode(ARGV[2])
if plan.version and (redis.call('GET', KEYS[3]) or '') ~= plan.version then return 0 end
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
if plan.keep then
  -- the states and acks of keys the account no longer lists (deleted or disabled):
  -- one HKEYS per hash, O(subjects)
  local keep = {}
  for _, h in ipairs(plan.keep) do keep['key:' .. h] = true end
  for _, hash in ipairs(plan.prune_in) do
    local gone = {}
    for _, f in ipairs(redis.call('HKEYS', hash)) do
      if string.sub(f, 1, 4) == 'key:' and not keep[f] then gone[#gone + 1] = f end
    end
    for i = 1, #gone, CHUNK do
      run({'HDEL', hash, unpack(gone, i, math.min(i + CHUNK - 1, #gone))})
    end
  end
end
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
local roll = plan.rollup
if roll then
  -- each level's bucket of this check: read, add the check, write back; trim the retention
  local ok, err = pcall(function()
    local usd, at = roll[1], tonumber(roll[2])
    local v = tonumber(usd)
    for i = 4, #roll, 2 do
      local key, width = roll[i], tonumber(roll[i + 1])
      local start = at - at % width
      local old = redis.call('ZRANGEBYSCORE', key, start, start)[1]
      local member
      if old then
        local f = {}
        for part in string.gmatch(old, '[^,]+') do f[#f + 1] = part end
        local delta = v - tonumber(f[3])
        member = table.concat({
          tonumber(f[1]) + 1, f[2], usd,
          (tonumber(f[4]) <= v) and f[4] or usd, (tonumber(f[5]) >= v) and f[5] or usd,
          tonumber(f[6]) + math.max(0, -delta), tonumber(f[7]) + math.max(0, delta),
          f[8], roll[2]}, ',')
        redis.call('ZREM', key, old)
      else
        member = table.concat({1, usd, usd, usd, usd, 0, 0, roll[2], roll[2]}, ',')
      end
      redis.call('ZADD', key, start, member)
      redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. roll[3])
    end
  end)
  if not ok then failed = failed or (type(err) == 'table' and err.err or tostring(err)) end
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if failed then return redis.error_reply(failed) end
return 1
"""
# Publishes an alert unless its record says it was; atomic, so a crashed or concurrent
# delivery can neither skip nor repeat it. KEYS: the record, the alerts list, the sent counts.
# ARGV: channel, message, now, record (JSON, for a new record), retention s, list cap, type.
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
redis.call('HINCRBY', KEYS[3], ARGV[7], 1)
return 1
"""
# The recent alerts whose publication never happened: id and timestamp of each. A held alert
# (silenced, acked or inhibited) is only recorded, never published: it is not one of them.
_UNDELIVERED = """
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local r = redis.call(
    'HMGET', ARGV[1] .. id, 'delivered_at', 'timestamp', 'silenced_by', 'acked_by', 'inhibited_by'
  )
  local held = (r[3] or '') ~= '' or (r[4] or '') ~= '' or (r[5] or '') ~= ''
  if r[2] and (not r[1] or r[1] == '') and not held then
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
_ACK = """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[3])
return 1
"""
# The silences, the acks and the state of each ack's subject, in one round trip (an ack lasts
# while its subject's state holds the episode it named). Queued in the faces' pipelines.
_SILENCING = """
local acks = redis.call('HGETALL', KEYS[2])
local held, states = {}, {}
for i = 1, #acks, 2 do
  held[#held + 1] = acks[i + 1]
  states[#states + 1] = redis.call('HGET', KEYS[3], acks[i]) or ''
end
return {redis.call('HVALS', KEYS[1]), held, states}
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
    silencing: Silencing = field(default_factory=Silencing)
    silencing_version: str = ""  # as stored: the commit compares against it
    baseline: dict[str, str] = field(default_factory=dict)  # the cached usual pace (spike)
    key_usage: dict[str, str] = field(default_factory=dict)  # per key hash, usage samples
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
    # the hashes of every key the account has; the states and acks of other keys are
    # deleted. None prunes nothing (the keys were not listed, or not to their end)
    keep_keys: list[str] | None = None
    error: str | None = None  # a failed check's reason
    acks_ended: list[str] = field(default_factory=list)  # subjects whose ack is over
    silences_ended: list[str] = field(default_factory=list)  # ids of silences past their end
    baseline: dict[str, str] | None = None  # the usual pace's cache, replaced whole
    usage_samples: dict[str, str] | None = None  # fields of keys:usage to (re)write
    usage_removed: list[str] = field(default_factory=list)  # keys no longer listed
    key_daily: dict[str, str] | None = None  # per key hash, [usage_daily, name] of today

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


def _field(value: object) -> str:
    """A record's field: lists and objects (a spike's top keys, a report) as JSON."""
    return json.dumps(value) if isinstance(value, list | dict) else _text(value)


def _unrecorded(record: dict[str, str]) -> dict[str, Any]:
    """A stored alert record as `Alert.from_dict` takes it: an empty field was a None, and
    lists and objects (`_field`) come back from their JSON."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        if value == "":
            continue
        if name in ("top_keys", "report"):
            try:
                out[name] = json.loads(value)
            except ValueError:
                out[name] = value  # from_dict refuses it, and says so
        else:
            out[name] = value
    return out


def _hset(key: str, mapping: dict[str, str]) -> list[str]:
    return ["HSET", key, *(item for pair in mapping.items() for item in pair)]


def _hset_chunks(key: str, mapping: dict[str, str]) -> list[list[str]]:
    rows = list(mapping.items())
    return [_hset(key, dict(rows[i : i + _HSET_CHUNK])) for i in range(0, len(rows), _HSET_CHUNK)]


def _score(remaining_usd: object) -> str:
    return "+inf" if remaining_usd is None else repr(float(str(remaining_usd)))


def _state(raw: str | None) -> AlertState:
    return AlertState.from_json(json.loads(raw)) if raw else AlertState()


def _silencing(silences: list[str], acks: list[str]) -> Silencing:
    """The stored silences and acks; a record this version cannot read is left out."""
    read = [codec.decode_silence(raw) for raw in silences]
    acked = [codec.decode_ack(raw) for raw in acks]
    return Silencing(
        silences=tuple(sorted((s for s in read if s), key=lambda s: (s.ends_at, s.id))),
        acks={a.subject: a for a in acked if a},
    )


def _in_force(reply: list[list[str]], now: datetime) -> tuple[list[Silence], list[Ack]]:
    """`_SILENCING`'s answer read: the silences still running, soonest end first, and the acks
    whose episode still lasts, by subject."""
    silences, acks, states = reply
    loaded = _silencing(silences, [])
    lasting = [
        ack
        for ack, raw in zip(map(codec.decode_ack, acks), states, strict=True)
        if ack is not None and _state(raw or None).since == ack.since
    ]
    lasting.sort(key=lambda a: str(a.subject))
    return [s for s in loaded.silences if s.active(now)], lasting


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
        self._ack = client.register_script(_ACK)
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
        """The subjects' alert states, the silences and acks, the history window, the failure
        count, the usual pace and the keys' usage samples: one round trip."""
        names = [str(s) for s in subjects]
        pipe = self.redis.pipeline(transaction=False)
        if names:
            pipe.hmget(self.keys.alert_state, names)
        pipe.xrange(self.keys.timeline, min=_ms(window_start), max=_ms(end))
        pipe.hmget(self.keys.monitoring_status, ["consecutive_failures", "credits_forbidden"])
        pipe.hvals(self.keys.silences)
        pipe.hvals(self.keys.acks)
        pipe.get(self.keys.silences_version)
        pipe.hgetall(self.keys.spend_baseline)
        pipe.hgetall(self.keys.keys_usage)
        *raws, entries, (failures, forbidden), silences, acks, version, baseline, usage = (
            pipe.execute()
        )
        raw = dict(zip(subjects, raws[0] if raws else [], strict=True))
        return Loaded(
            states={s: _state(r) for s, r in raw.items()},
            raw=raw,
            window=[timeline.decode(entry_id, fields) for entry_id, fields in entries],
            consecutive_failures=int(failures or 0),
            silencing=_silencing(silences, acks),
            silencing_version=version or "",
            baseline=dict(baseline),
            key_usage=dict(usage),
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
        if change.keep_keys is not None:
            plan["keep"] = change.keep_keys
            plan["prune_in"] = [self.keys.alert_state, self.keys.acks]
        if loaded is not None:  # a silence or an ack written since the load: decide again
            plan["version"] = loaded.silencing_version
        if change.point is not None:
            plan["point"] = self._point_command(change)
            if change.point.get(timeline.REMAINING):
                plan["rollup"] = self._rollup_args(change)
        keys = [self.keys.alert_state, self.keys.check_lock, self.keys.silences_version]
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
            cmds.append(["DEL", k.keys_current, k.keys_by_remaining])
            rows = [(h, json.dumps(row)) for h, row in change.keys.items()]
            for start in range(0, len(rows), _HSET_CHUNK):
                cmds.append(_hset(k.keys_current, dict(rows[start : start + _HSET_CHUNK])))
            # least remaining first for the web's pages; an uncapped key sorts last
            scores = [(_score(row.get("remaining_usd")), h) for h, row in change.keys.items()]
            for start in range(0, len(scores), _ZADD_CHUNK):
                chunk = scores[start : start + _ZADD_CHUNK]
                cmds.append(["ZADD", k.keys_by_remaining, *(x for pair in chunk for x in pair)])
        cmds.extend(self._spend_commands(change))
        for alert in change.alerts:
            cmds.extend(self._record_commands(alert))
        if change.alerts:  # the day's count per type, for the daily report
            daily = k.alerts_daily(change.now.date().isoformat())
            for kind, count in Counter(a.type.value for a in change.alerts).items():
                cmds.append(["HINCRBY", daily, kind, str(count)])
            cmds.append(["EXPIRE", daily, str(int(self.retention_s))])
        for cooldown in change.cooldowns:
            marker = k.alert_last(cooldown.type, cooldown.subject)
            cmds.append(["SET", marker, cooldown.alert_id, "EX", str(max(1, int(cooldown.ttl_s)))])
        if change.acks_ended:
            cmds.append(["HDEL", k.acks, *change.acks_ended])
        if change.silences_ended:
            cmds.append(["HDEL", k.silences, *change.silences_ended])
        return cmds

    def _spend_commands(self, change: Commit) -> list[list[str]]:
        """The usual pace's cache, the keys' usage samples and today's spend per key."""
        k, cmds = self.keys, []
        if change.baseline is not None:
            cmds += [["DEL", k.spend_baseline], _hset(k.spend_baseline, change.baseline)]
        if change.usage_removed:
            cmds.append(["HDEL", k.keys_usage, *change.usage_removed])
        if change.usage_samples:
            cmds.extend(_hset_chunks(k.keys_usage, change.usage_samples))
        if change.key_daily:
            daily = k.keys_daily(change.now.date().isoformat())
            cmds.extend(_hset_chunks(daily, change.key_daily))
            cmds.append(["EXPIRE", daily, str(int(self.retention_s))])
        return cmds

    def _point_command(self, change: Commit) -> list[str]:
        assert change.point is not None
        ms = _ms(change.now)
        minid = ms - int(self.retention_s * 1000)
        fields = [item for pair in change.point.items() for item in pair]
        return [self.keys.timeline, str(minid), f"{ms}-*", *fields]

    def _rollup_args(self, change: Commit) -> list[str]:
        """The check's balance, time and oldest kept time, then each level's key and width."""
        assert change.point is not None
        ms = _ms(change.now)
        args = [change.point[timeline.REMAINING], str(ms), str(ms - int(self.retention_s * 1000))]
        for width_s in rollup.LEVELS_S:
            args += [self.keys.rollup(width_s), str(width_s * 1000)]
        return args

    def _record_commands(self, alert: Alert) -> list[list[str]]:
        key = self.keys.alert(alert.id)
        record = {k: _field(v) for k, v in alert.as_dict().items()} | {"delivered_at": ""}
        return [
            _hset(key, record),
            ["EXPIRE", key, str(int(self.retention_s))],
            ["LPUSH", self.keys.alerts_list, alert.id],
            ["LTRIM", self.keys.alerts_list, "0", str(ALERTS_LIST_CAP - 1)],
        ]

    @_translated
    def save_report(self, day: str, report: dict[str, Any]) -> bool:
        """Keep `day`'s report for the retention period; False when it was kept already."""
        ttl_s = max(1, int(self.retention_s))
        return bool(self.redis.set(self.keys.report(day), json.dumps(report), nx=True, ex=ttl_s))

    @_translated
    def report(self, day: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.keys.report(day))
        return json.loads(raw) if raw else None

    @_translated
    def day_records(self, day: str) -> tuple[dict[str, int], dict[str, tuple[float, str]]]:
        """`day`'s alerts counted by type, and each key's spend that day with its name."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.alerts_daily(day))
        pipe.hgetall(self.keys.keys_daily(day))
        counts, keys = pipe.execute()
        spend = {h: json.loads(v) for h, v in keys.items()}
        return {t: int(n) for t, n in counts.items()}, {h: (u, n) for h, (u, n) in spend.items()}

    @_translated
    def keys_table(self) -> list[dict[str, Any]]:
        """The per-key figures of the last check."""
        return [json.loads(v) for v in self.redis.hvals(self.keys.keys_current)]

    @_translated
    def deliver(self, alert: Alert, now: datetime) -> bool:
        """Store (if new) and publish an alert once; False when it was already delivered."""
        record = {k: _field(v) for k, v in alert.as_dict().items()} | {"delivered_at": ""}
        published = self._deliver(
            keys=[self.keys.alert(alert.id), self.keys.alerts_list, self.keys.alerts_sent],
            args=[
                self.keys.channel,
                json.dumps(alert.as_dict()),
                now.isoformat(),
                json.dumps(record),
                str(int(self.retention_s)),
                str(ALERTS_LIST_CAP),
                alert.type.value,
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
                alerts.append(Alert.from_dict(_unrecorded(record)))
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

    @_translated
    def add_silence(self, silence: Silence) -> None:
        """Store a silence; the next check honours it (a check deciding now decides again)."""
        pipe = self.redis.pipeline()
        pipe.hset(self.keys.silences, silence.id, codec.encode_silence(silence))
        pipe.incr(self.keys.silences_version)
        pipe.execute()

    @_translated
    def expire_silence(self, silence_id: str, now: datetime) -> Silence | None:
        """End an active silence at once; None when there is no such active silence."""
        silence = codec.decode_silence(self.redis.hget(self.keys.silences, silence_id) or "")
        if silence is None or not silence.active(now):
            return None
        pipe = self.redis.pipeline()
        pipe.hdel(self.keys.silences, silence_id)
        pipe.incr(self.keys.silences_version)
        pipe.execute()
        return silence

    def _queue_silencing(self, pipe: Any) -> None:
        """Queue the read of the silences and acks (`_in_force` reads the answer)."""
        keys = (self.keys.silences, self.keys.acks, self.keys.alert_state)
        pipe.eval(_SILENCING, len(keys), *keys)

    @_translated
    def silencing(self, now: datetime) -> tuple[list[Silence], list[Ack]]:
        """The silences still running and the acks whose episode still lasts, soonest end first;
        one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        self._queue_silencing(pipe)
        return _in_force(pipe.execute()[0], now)

    @_translated
    def alert_record(self, alert_id: str) -> dict[str, str]:
        """An alert's stored record; empty when there is none (or it expired)."""
        return dict(self.redis.hgetall(self.keys.alert(alert_id)))

    @_translated
    def alert_state(self, subject: Subject) -> tuple[str | None, AlertState]:
        """A subject's alert state, raw as stored (for `put_ack`) and read."""
        raw = self.redis.hget(self.keys.alert_state, str(subject))
        return raw, _state(raw)

    @_translated
    def put_ack(self, ack: Ack, state_raw: str | None) -> bool:
        """Store an ack unless the subject's state changed since `state_raw` was read."""
        keys = [self.keys.alert_state, self.keys.acks, self.keys.silences_version]
        args = [str(ack.subject), state_raw or "", codec.encode_ack(ack)]
        return bool(self._ack(keys=keys, args=args))

    @_translated
    def buckets(self, start: datetime, end: datetime) -> tuple[int, list[rollup.Bucket]]:
        """The history from `start` to `end` in at most `MAX_BUCKETS` buckets, and their width.

        Read from the finest stored level that covers the range in few enough buckets (one
        round trip); when that level counts no more checks than that, from the checks
        themselves at a finer width (a second). History older than the levels (written
        before them) is read from the checks, the newest `MAX_BUCKETS` of them.
        """
        span_s = max(1.0, (end - start).total_seconds())
        level = rollup.level_for(span_s)
        start_ms, width_ms = _ms(start), level * 1000
        members = self.redis.zrangebyscore(
            self.keys.rollup(level), start_ms - start_ms % width_ms, _ms(end)
        )
        stored = [rollup.decode(m, level) for m in members]
        if sum(b.checks for b in stored) <= rollup.MAX_BUCKETS:
            entries = self.redis.xrevrange(
                self.keys.timeline, max=_ms(end), min=start_ms, count=rollup.MAX_BUCKETS
            )
            points = [timeline.decode(i, f) for i, f in reversed(entries)]
            # from the first check on: a young history is not squeezed into a few buckets
            since = max(start, points[0].timestamp) if points else start
            width = rollup.width_for(max(1.0, (end - since).total_seconds()))
            return width, rollup.bucketize(points, width)
        width = rollup.width_for(span_s, level)
        return (width, rollup.merge(stored, width)) if width > level else (level, stored)

    @_translated
    def rebuild_rollups(self) -> int:
        """Write every level again from the whole timeline; returns the checks read.

        For history recorded before the levels existed. Run it while no check runs: a
        check that lands meanwhile may be missing from a level until its bucket closes.
        """
        points: list[Point] = []
        last = "-"
        while entries := self.redis.xrange(self.keys.timeline, min=last, count=10_000):
            points += [timeline.decode(i, f) for i, f in entries]
            last = f"({entries[-1][0]}"
        for width_s in rollup.LEVELS_S:
            key = self.keys.rollup(width_s)
            buckets = rollup.bucketize(points, width_s)
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(key)
            for i in range(0, len(buckets), 10_000):
                pipe.zadd(key, {rollup.encode(b): b.start_ms for b in buckets[i : i + 10_000]})
            pipe.execute()
        return len(points)

    @_translated
    def keys_page(self, offset: int, count: int) -> tuple[int, list[dict[str, Any]]]:
        """How many keys there are, and `count` of them from `offset`, least remaining first."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.keys.keys_by_remaining)
        pipe.zrange(self.keys.keys_by_remaining, offset, offset + count - 1)
        total, hashes = pipe.execute()
        if total == 0:  # a key table written before the index: sort it here
            rows = self.keys_table()
            rows.sort(key=lambda r: (_score(r.get("remaining_usd")) == "+inf", _key_order(r)))
            return len(rows), rows[offset : offset + count]
        raws = self.redis.hmget(self.keys.keys_current, hashes) if hashes else []
        return int(total), [json.loads(r) for r in raws if r]

    @_translated
    def overview(self, alerts: int = 5, now: datetime | None = None) -> dict[str, Any]:
        """`credit-monitor status --json`, `/api/status` and the page: the stored snapshot, the
        monitoring status, the newest alert records, the silences and acks in force, and
        warnings. Two round trips, and the eviction question."""
        now = now or datetime.now(UTC)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.current)
        pipe.hgetall(self.keys.monitoring_status)
        pipe.lrange(self.keys.alerts_list, 0, alerts - 1)
        self._queue_silencing(pipe)
        current, monitoring, ids, silencing = pipe.execute()
        for alert_id in ids:
            pipe.hgetall(self.keys.alert(alert_id))
        records = pipe.execute() if ids else []
        silenced, acked = _in_force(silencing, now)
        return {
            "current": dict(current),
            "monitoring": dict(monitoring),
            "recent_alerts": [dict(r) for r in records if r],
            "silences": [codec.silence_row(s, now) for s in silenced],
            "acks": [codec.ack_row(a) for a in acked],
            "warnings": [w for w in (self.eviction_warning(),) if w],
        }

    @_translated
    def scrape(self, now: datetime | None = None) -> dict[str, Any]:
        """What the metrics show, read in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.current)
        pipe.hgetall(self.keys.monitoring_status)
        pipe.hvals(self.keys.keys_current)
        pipe.hgetall(self.keys.alerts_sent)
        self._queue_silencing(pipe)
        current, monitoring, keys, sent, silencing = pipe.execute()
        silenced, acked = _in_force(silencing, now or datetime.now(UTC))
        return {
            "current": dict(current),
            "monitoring": dict(monitoring),
            "keys": json.loads(f"[{','.join(keys)}]"),  # one parse, not 10,000
            "alerts_sent": {t: int(n) for t, n in sent.items()},
            "silences_active": len(silenced),
            "acks_active": len(acked),
        }


def _key_order(row: dict[str, Any]) -> tuple[float, str]:
    return (float(row.get("remaining_usd") or 0.0), str(row.get("name", "")))
