"""`/metrics`: a prometheus_client collector that reads Redis at each scrape.

One process, no multiprocess mode: each scrape reads the stored snapshot, the monitoring
status, the key table and the alert counts in one round trip and builds the families from
them. The names are a contract (the alert rules and the dashboard in `deploy/` use them).
A figure that is not known is left out rather than sent as 0, and no label holds a key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ..errors import CreditTasksError
from ..rules import AlertType
from ..store import Store

STATUS_VALUES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
NAMES = (
    "openrouter_balance_dollars",
    "openrouter_usage_dollars",
    "openrouter_burn_rate_dollars_per_hour",
    "openrouter_runway_seconds",
    "openrouter_status",
    "openrouter_last_check_timestamp_seconds",
    "openrouter_last_success_timestamp_seconds",
    "openrouter_check_consecutive_failures",
    "openrouter_key_limit_dollars",
    "openrouter_key_limit_remaining_dollars",
    "openrouter_key_status",
    "openrouter_alerts_sent_total",
    "openrouter_up",
)
KEY_LABELS = ("key_hash", "key_name")


def _number(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _timestamp(value: str | None) -> float | None:
    try:
        return datetime.fromisoformat(value or "").timestamp()
    except ValueError:
        return None


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        family = GaugeMetricFamily(name, doc)
        family.add_metric([], value)
        yield family


class CreditCollector(Collector):
    """The monitor's figures from Redis, read when Prometheus scrapes."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        try:
            data = self._store().scrape()
        except CreditTasksError:
            yield from _gauge("openrouter_up", "1 when Redis answered the scrape", 0.0)
            return
        yield from _gauge("openrouter_up", "1 when Redis answered the scrape", 1.0)
        cur, mon = data["current"], data["monitoring"]
        yield from _gauge(
            "openrouter_balance_dollars",
            "Spendable balance in USD (absent while it is unknown)",
            _number(cur.get("remaining_usd")),
        )
        yield from _gauge(
            "openrouter_usage_dollars",
            "What the key has spent, in USD",
            _number(cur.get("usage_usd")),
        )
        yield from _gauge(
            "openrouter_burn_rate_dollars_per_hour",
            "Spend per hour over the burn window",
            _number(cur.get("burn_rate_usd_per_hour")),
        )
        runway_h = _number(cur.get("runway_hours"))
        yield from _gauge(
            "openrouter_runway_seconds",
            "Seconds until the balance reaches zero at the burn rate",
            None if runway_h is None else runway_h * 3600,
        )
        yield from _gauge(
            "openrouter_status",
            "Account status: 0 ok, 1 warning, 2 critical, 3 unknown",
            float(STATUS_VALUES.get(cur.get("status") or "unknown", 3)),
        )
        yield from _gauge(
            "openrouter_last_check_timestamp_seconds",
            "Unix time of the last check, successful or not",
            _timestamp(mon.get("last_check_at")),
        )
        yield from _gauge(
            "openrouter_last_success_timestamp_seconds",
            "Unix time of the last successful check",
            _timestamp(mon.get("last_success_at")),
        )
        yield from _gauge(
            "openrouter_check_consecutive_failures",
            "Failed checks in a row",
            _number(mon.get("consecutive_failures")) or 0.0,
        )
        yield from self._keys(data["keys"])
        sent = CounterMetricFamily(
            "openrouter_alerts_sent", "Alerts published, by type", labels=["type"]
        )
        counts = {t.value: 0 for t in AlertType} | data["alerts_sent"]
        for alert_type, count in sorted(counts.items()):
            sent.add_metric([alert_type], float(count))
        yield sent

    @staticmethod
    def _keys(rows: list[dict[str, object]]) -> Iterator[Metric]:
        limit = GaugeMetricFamily(
            "openrouter_key_limit_dollars", "A key's spending limit in USD", labels=KEY_LABELS
        )
        left = GaugeMetricFamily(
            "openrouter_key_limit_remaining_dollars",
            "What a key may still spend under its limit, in USD",
            labels=KEY_LABELS,
        )
        status = GaugeMetricFamily(
            "openrouter_key_status",
            "A key's status: 0 ok, 1 warning, 2 critical, 3 unknown",
            labels=KEY_LABELS,
        )
        for row in rows:
            labels = [str(row.get("hash", "")), str(row.get("name") or "")]
            if (value := _number(row.get("limit_usd"))) is not None:
                limit.add_metric(labels, value)
            if (value := _number(row.get("remaining_usd"))) is not None:
                left.add_metric(labels, value)
            status.add_metric(labels, float(STATUS_VALUES.get(str(row.get("status")), 3)))
        yield from (limit, left, status)


def registry(store: Callable[[], Store]) -> CollectorRegistry:
    """A registry of our own with the collector: nothing else, nothing read at registration."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(CreditCollector(store))
    return reg
