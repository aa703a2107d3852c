"""What the faces read: the snapshot and status, the newest alert records, the history (its
points, or buckets from the rollup levels), the keys' table and pages, the overview and the
metrics' scrape; and the rollup levels rebuilt from the timeline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .. import rollup, timeline
from .. import silences as codec
from ..history import Point
from .connection import Connection, translated
from .plan import _ms, _score
from .silencing import _in_force, _queue_silencing


class Reads(Connection):
    """The reads of the CLI, the web page, the API and the metrics."""

    @translated
    def current(self) -> dict[str, str]:
        return dict(self.redis.hgetall(self.keys.current))

    @translated
    def monitoring_status(self) -> dict[str, str]:
        return dict(self.redis.hgetall(self.keys.monitoring_status))

    @translated
    def recent_alerts(self, count: int = 10) -> list[dict[str, str]]:
        """The newest alert records, newest first, in two round trips."""
        ids = self.redis.lrange(self.keys.alerts_list, 0, count - 1)
        pipe = self.redis.pipeline()
        for alert_id in ids:
            pipe.hgetall(self.keys.alert(alert_id))
        return [dict(record) for record in pipe.execute() if record]

    @translated
    def keys_table(self) -> list[dict[str, Any]]:
        """The per-key figures of the last check."""
        return [json.loads(v) for v in self.redis.hvals(self.keys.keys_current)]

    @translated
    def history(self, start: datetime, end: datetime) -> list[Point]:
        """Timeline points between `start` and `end`, oldest first, in one round trip."""
        entries = self.redis.xrange(self.keys.timeline, min=_ms(start), max=_ms(end))
        return [timeline.decode(entry_id, fields) for entry_id, fields in entries]

    @translated
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

    @translated
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

    @translated
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

    @translated
    def overview(self, alerts: int = 5, now: datetime | None = None) -> dict[str, Any]:
        """`credit-monitor status --json`, `/api/status` and the page: the stored snapshot, the
        monitoring status, the newest alert records, the silences and acks in force, and
        warnings. Two round trips, and the eviction question."""
        now = now or datetime.now(UTC)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.current)
        pipe.hgetall(self.keys.monitoring_status)
        pipe.lrange(self.keys.alerts_list, 0, alerts - 1)
        _queue_silencing(pipe, self.keys)
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

    @translated
    def scrape(self, now: datetime | None = None) -> dict[str, Any]:
        """What the metrics show, read in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.current)
        pipe.hgetall(self.keys.monitoring_status)
        pipe.hvals(self.keys.keys_current)
        pipe.hgetall(self.keys.alerts_sent)
        _queue_silencing(pipe, self.keys)
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
