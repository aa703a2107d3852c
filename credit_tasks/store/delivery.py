"""Delivery: `deliver` stores and publishes an alert once (one script), `undelivered` finds
the alerts committed but never published, and each channel's outcome is kept on the record.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import redis

from ..alerts import Alert
from ..keyspace import ALERTS_LIST_CAP
from .connection import Connection, translated
from .plan import _field

log = logging.getLogger(__name__)

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


class Delivery(Connection):
    """The alerts' publication, once each, and their channels."""

    def _register_scripts(self, client: redis.Redis) -> None:
        super()._register_scripts(client)
        self._deliver = client.register_script(_DELIVER)
        self._undelivered = client.register_script(_UNDELIVERED)

    @translated
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

    @translated
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

    @translated
    def channels_done(self, alert_id: str) -> set[str]:
        """Ids of the Apprise channels that already took this alert."""
        raw = self.redis.hget(self.keys.alert(alert_id), "channels_ok") or ""
        return {c for c in raw.split(",") if c}

    @translated
    def record_channels(self, alert_id: str, *, ok: list[str], failed: list[str]) -> None:
        """Add `ok` to the alert's delivered channels and note which are still failing."""
        key = self.keys.alert(alert_id)
        done = sorted(self.channels_done(alert_id) | set(ok))
        self.redis.hset(
            key, mapping={"channels_ok": ",".join(done), "channels_failed": ",".join(failed)}
        )

    @translated
    def record_delivery_error(self, alert_id: str, error: str) -> None:
        self.redis.hset(self.keys.alert(alert_id), "delivery_error", error)
