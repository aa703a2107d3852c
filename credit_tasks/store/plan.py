"""What one check writes: `Commit` and `Cooldown`, and the Redis commands of a commit (the
snapshot, the status, the key table and its order, the spend caches, the alert records, the
day's counts, cooldowns, ended acks and silences, the timeline point and its rollup), which
the commit's script runs at once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import rollup, timeline
from ..alerts import Alert
from ..keyspace import ALERTS_LIST_CAP
from ..rules import AlertState, Subject
from .connection import Connection

_HSET_CHUNK = 500  # field pairs per HSET inside the script: Lua's unpack() has a limit
_ZADD_CHUNK = 2000  # score pairs per ZADD: short pairs, well under that limit (8,000 values)


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


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _field(value: object) -> str:
    """A record's field: lists and objects (a spike's top keys, a report) as JSON."""
    return json.dumps(value) if isinstance(value, list | dict) else _text(value)


def _hset(key: str, mapping: dict[str, str]) -> list[str]:
    return ["HSET", key, *(item for pair in mapping.items() for item in pair)]


def _hset_chunks(key: str, mapping: dict[str, str]) -> list[list[str]]:
    rows = list(mapping.items())
    return [_hset(key, dict(rows[i : i + _HSET_CHUNK])) for i in range(0, len(rows), _HSET_CHUNK)]


def _score(remaining_usd: object) -> str:
    return "+inf" if remaining_usd is None else repr(float(str(remaining_usd)))


class Commands(Connection):
    """A commit's commands, built from the key names and the retention."""

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
