"""The daily reports: each day's report kept once, and the day's records it is built from."""

from __future__ import annotations

import json
from typing import Any

from .connection import Connection, translated


class Reports(Connection):
    """The daily reports and their records."""

    @translated
    def save_report(self, day: str, report: dict[str, Any]) -> bool:
        """Keep `day`'s report for the retention period; False when it was kept already."""
        ttl_s = max(1, int(self.retention_s))
        return bool(self.redis.set(self.keys.report(day), json.dumps(report), nx=True, ex=ttl_s))

    @translated
    def report(self, day: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.keys.report(day))
        return json.loads(raw) if raw else None

    @translated
    def day_records(self, day: str) -> tuple[dict[str, int], dict[str, tuple[float, str]]]:
        """`day`'s alerts counted by type, and each key's spend that day with its name."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.alerts_daily(day))
        pipe.hgetall(self.keys.keys_daily(day))
        counts, keys = pipe.execute()
        spend = {h: json.loads(v) for h, v in keys.items()}
        return {t: int(n) for t, n in counts.items()}, {h: (u, n) for h, (u, n) in spend.items()}
