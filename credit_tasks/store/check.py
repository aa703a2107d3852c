"""A check's three round trips, whatever the number of keys: `claim` the lock (kept alive by
`renewing` while the check runs), `load` what the check decides on, and `commit`: a script
that compares and sets the alert states (and the silences' version) and writes the rest at
once, so any number of concurrent checks on any number of workers commits each transition
once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from .. import timeline
from ..history import Point
from ..rules import AlertState, Silencing, Subject
from .connection import translated
from .plan import Commands, Commit, _ms
from .renewer import Renewer
from .silencing import _silencing, _state

log = logging.getLogger(__name__)

REPLICA_WAIT_MS = 250  # with Sentinel, a commit waits this long for a replica to have it

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
    silencing: Silencing = field(default_factory=Silencing)
    silencing_version: str = ""  # as stored: the commit compares against it
    baseline: dict[str, str] = field(default_factory=dict)  # the cached usual pace (spike)
    key_usage: dict[str, str] = field(default_factory=dict)  # per key hash, usage samples
    credits_forbidden: str = ""  # the last check's 403 on /credits, said once


def _px(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class Checks(Commands):
    """The check path: the lock, the load and the commit."""

    _unreplicated = False  # said once when no replica confirms, once when one does

    def _register_scripts(self, client: redis.Redis) -> None:
        super()._register_scripts(client)
        self._commit = client.register_script(_COMMIT)
        self._release = client.register_script(_RELEASE)
        renew = client.register_script(_RENEW)
        self._renewer = Renewer(
            lambda token, ttl_s: renew(keys=[self.keys.check_lock], args=[token, _px(ttl_s)])
        )

    @translated
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
        fails over, nobody renews it and it lapses within `ttl_s`. The store's one renewer
        thread does the renewing (see `renewer`).
        """
        with self._renewer.holding(token, ttl_s):
            yield

    def close(self) -> None:
        self._renewer.close()
        super().close()

    @translated
    def release(self, token: str) -> None:
        """Free the check lock if this token still holds it (the commit usually does)."""
        self._release(keys=[self.keys.check_lock], args=[token])

    @translated
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

    @translated
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
