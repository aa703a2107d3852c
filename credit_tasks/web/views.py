"""What the web face shows, read through the store: the page's data, health, query values.

The reading is here and the markup in `page`; the decisions about health and about a query
parameter are small pure functions, so their tests are tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..rollup import Bucket
from ..settings import Settings
from ..store import Store

RANGES_H = {"24h": 24.0, "7d": 24.0 * 7, "30d": 24.0 * 30, "90d": 24.0 * 90}
DEFAULT_RANGE = "24h"
KEYS_PER_PAGE = 50
RECENT_ALERTS = 10  # listed on the page
MARKED_ALERTS = 100  # read for the chart's markers: all that alerts:list keeps
MAX_HOURS = 24.0 * 3650  # /api/history answers up to ten years
STALE_AFTER_INTERVALS = 2.5  # /healthz: a last success older than this many intervals is stale


class BadQuery(ValueError):
    """A query parameter the web face cannot take; its text is the one sentence to answer."""


def range_of(value: str | None) -> str:
    """The chart's range from `?range=`; the default when absent."""
    if value is None or value == "":
        return DEFAULT_RANGE
    if value not in RANGES_H:
        raise BadQuery("range must be one of 24h, 7d, 30d or 90d.")
    return value


def page_of(value: str | None) -> int:
    """The keys table's page from `?page=`, counted from 1."""
    if value is None or value == "":
        return 1
    if not value.isdigit() or int(value) < 1:
        raise BadQuery("page must be a whole number from 1 up.")
    return int(value)


def hours_of(value: str | None) -> float:
    """The hours of `/api/history?hours=`; 24 when absent."""
    if value is None or value == "":
        return 24.0
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not 0 < hours <= MAX_HOURS:
        raise BadQuery(f"hours must be a number above 0 and at most {MAX_HOURS:g}, such as 24.")
    return hours


@dataclass(frozen=True)
class Health:
    """The answer of /healthz: healthy or not, and why."""

    ok: bool
    body: dict[str, object]


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def health(monitoring: dict[str, str], interval_s: float, now: datetime) -> Health:
    """Healthy when the last successful check is at most 2.5 check intervals old."""
    last = _when(monitoring.get("last_success_at"))
    limit_s = STALE_AFTER_INTERVALS * interval_s
    if last is None:
        return Health(False, {"status": "no check yet", "reason": "no successful check yet"})
    age_s = round((now - last).total_seconds(), 1)
    body: dict[str, object] = {
        "last_success_at": last.isoformat(),
        "age_s": age_s,
        "stale_after_s": limit_s,
        "consecutive_failures": int(monitoring.get("consecutive_failures") or 0),
    }
    if age_s > limit_s:
        reason = f"the last successful check is {age_s:g} s old, more than {limit_s:g} s"
        return Health(False, {"status": "stale", "reason": reason} | body)
    return Health(True, {"status": "ok"} | body)


@dataclass(frozen=True)
class PageData:
    """Everything the page shows, read in a few round trips."""

    now: datetime
    range: str
    start: datetime
    current: dict[str, str]
    monitoring: dict[str, str]
    alerts: list[dict[str, str]]  # newest first, up to MARKED_ALERTS
    silences: list[dict[str, Any]]  # in force, soonest end first, as `status --json` has them
    acks: list[dict[str, Any]]  # whose episode lasts
    width_s: int
    buckets: list[Bucket]
    keys_total: int
    keys: list[dict[str, Any]]
    page: int
    pages: int
    settings: Settings

    @property
    def health(self) -> Health:
        return health(self.monitoring, self.settings.check_interval_s, self.now)


def read_page(
    store: Store, settings: Settings, chart_range: str, page: int, now: datetime | None = None
) -> PageData:
    """The page's data from Redis: the snapshot, alerts, silences and acks, the chart's
    buckets, a keys page."""
    now = now or datetime.now(UTC)
    start = now - timedelta(hours=RANGES_H[chart_range])
    overview = store.overview(MARKED_ALERTS, now)
    width_s, buckets = store.buckets(start, now)
    total, keys = store.keys_page((page - 1) * KEYS_PER_PAGE, KEYS_PER_PAGE)
    pages = max(1, math.ceil(total / KEYS_PER_PAGE))
    if page > pages:  # a fleet that shrank: its last page, not an error
        page = pages
        total, keys = store.keys_page((page - 1) * KEYS_PER_PAGE, KEYS_PER_PAGE)
    return PageData(
        now=now,
        range=chart_range,
        start=start,
        current=overview["current"],
        monitoring=overview["monitoring"],
        alerts=overview["recent_alerts"],
        silences=overview["silences"],
        acks=overview["acks"],
        width_s=width_s,
        buckets=buckets,
        keys_total=total,
        keys=keys,
        page=page,
        pages=pages,
        settings=settings,
    )
