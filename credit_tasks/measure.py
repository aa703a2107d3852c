"""What a check measures its reading against: the runway's pace, the usual pace a spike is
judged by, each key's growth in the spike window, and the spend of the day, week and month.

No decision here (that is `rules.decide`) and no Redis: the check hands in what it fetched
and loaded. The one call out is `/activity`, read through the function the check passes in,
at most once per UTC day (the answer is cached by the commit).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import spike
from .errors import FetchError
from .history import Point, paced_burn_rate, span_hours
from .readings import Activity, KeyInfo, Snapshot
from .rules import KeySpend, SpikeFigures
from .settings import Settings

log = logging.getLogger(__name__)

NO_BASELINE = "spike: no usual pace to compare with yet"
SHORT_HISTORY = "the stored history covers less than 24 h"


def history_start(settings: Settings, now: datetime) -> datetime:
    """Where the loaded history starts: the burn window, or what a history baseline needs
    (24 h before the spike window, and one interval more to find a check that old)."""
    spike_h = (settings.credit_spike_window_minutes + settings.credit_check_interval_minutes) / 60
    hours = max(settings.credit_burn_window_hours, spike.HISTORY_COVER_H + spike_h)
    return now - timedelta(hours=hours)


@dataclass(frozen=True)
class Pace:
    """The burn rate and the span of history it was measured over; None until it is long enough."""

    usd_per_hour: float | None = None
    span_hours: float | None = None


def runway_pace(settings: Settings, window: list[Point], here: Point, now: datetime) -> Pace:
    """The pace over the burn window, once the checks in it span the minimum span."""
    start = now - timedelta(hours=settings.credit_burn_window_hours)
    points = [p for p in window if p.timestamp >= start] + [here]
    rate = paced_burn_rate(points, settings.credit_runway_min_span_minutes / 60)
    return Pace(rate, span_hours(points)) if rate is not None else Pace()


def spike_window(settings: Settings, window: list[Point], now: datetime) -> list[Point]:
    """The loaded checks inside the spike window, oldest first (this check not included)."""
    start = now - timedelta(minutes=settings.credit_spike_window_minutes)
    return [p for p in window if p.timestamp >= start]


@dataclass(frozen=True)
class Baseline:
    """The usual hourly pace, where it came from, the cache to write, and why there is none."""

    usd_per_hour: float | None = None
    source: str | None = None  # "activity" or "history"
    cache: dict[str, str] | None = None  # set when /activity was read (or failed) just now
    note: str | None = None


def baseline(
    settings: Settings,
    cached: Mapping[str, str],
    window: list[Point],
    now: datetime,
    read_activity: Callable[[], list[Activity]] | None,
) -> Baseline:
    """The usual pace: from /activity with the management key (`read_activity`), read when the
    cache is not today's; otherwise, or while /activity fails, from the stored history."""
    today = now.date()
    cache = None
    why = f"{SHORT_HISTORY} (OPENROUTER_MANAGEMENT_KEY would read /activity)"
    if read_activity is not None:
        if spike.baseline_due(cached, now):
            try:
                rows = read_activity()
                daily = spike.daily_totals((r.date, r.usage_usd) for r in rows)
                cache = spike.baseline_record(today, spike.activity_baseline(daily, today))
            except FetchError as exc:
                log.warning("the usual pace could not be read: %s", exc)
                cache = spike.failed_record(cached, now, str(exc))
        cached = cache or cached
        usual = spike.cached_baseline(cached, today)
        if usual is not None:
            return Baseline(usual, "activity", cache)
        error = cached.get(spike.ERROR)
        activity = f"/activity failed ({error})" if error else "/activity shows no spend in 7 days"
        why = f"{activity}, and {SHORT_HISTORY}"
    window_length = timedelta(minutes=settings.credit_spike_window_minutes)
    usual = spike.history_baseline(window, now, window_length)
    if usual is not None:
        return Baseline(usual, "history", cache)
    return Baseline(None, None, cache, f"{NO_BASELINE}: {why}")


@dataclass
class KeyGrowth:
    """Each key's growth in the spike window, and what the commit writes for it."""

    top: tuple[KeySpend, ...] = ()
    samples: dict[str, str] | None = None  # None: the keys were not listed, leave them
    removed: list[str] = field(default_factory=list)
    daily: dict[str, str] | None = None  # per key, [usage_daily, name] for the daily report


def key_growth(
    settings: Settings,
    keys: list[KeyInfo] | None,
    stored: Mapping[str, str],
    now: datetime,
    since: datetime | None,
) -> KeyGrowth:
    """The keys that grew most since `since` (the first check in the spike window)."""
    if keys is None:
        return KeyGrowth()
    start = now - timedelta(minutes=settings.credit_spike_window_minutes)
    tracked = spike.track_usage(stored, {k.hash: k.usage_usd for k in keys}, now, start, since)
    names = {k.hash: k.name for k in keys}
    moved = set(tracked.changed) | {h for h in tracked.writes if h not in stored}
    daily = {
        k.hash: json.dumps([k.usage_daily_usd, k.name])
        for k in keys
        if k.hash in moved and k.usage_daily_usd
    }
    return KeyGrowth(
        spike.top_keys(tracked.growth_usd, names), tracked.writes, tracked.removed, daily
    )


def spike_figures(
    settings: Settings, points: list[Point], usual: Baseline, growth: KeyGrowth
) -> SpikeFigures | None:
    """The spike window's spend against the usual pace; None without a usual pace."""
    if usual.usd_per_hour is None:
        return None
    return SpikeFigures(
        window_minutes=settings.credit_spike_window_minutes,
        window_spend_usd=spike.window_spend(points),
        baseline_usd_per_hour=usual.usd_per_hour,
        top_keys=growth.top,
    )


@dataclass(frozen=True)
class Spend:
    """Money spent in the current UTC day, week (from Monday) and month."""

    today_usd: float | None = None
    week_usd: float | None = None
    month_usd: float | None = None


def spend(snapshot: Snapshot, keys: list[KeyInfo] | None, managed: bool) -> Spend:
    """The keys' `usage_daily/weekly/monthly`: summed over the account's keys with the
    management key, the watched key's own without; unknown when the keys were not listed."""
    if not managed:
        s = snapshot
        return Spend(s.usage_daily_usd, s.usage_weekly_usd, s.usage_monthly_usd)
    if keys is None:
        return Spend()
    if not keys:
        return Spend(0.0, 0.0, 0.0)

    def total(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(sum(known), 6) if known else None

    return Spend(
        total([k.usage_daily_usd for k in keys]),
        total([k.usage_weekly_usd for k in keys]),
        total([k.usage_monthly_usd for k in keys]),
    )


@dataclass(frozen=True)
class Measured:
    """What the check measures the reading against, beside the reading itself."""

    window: list[Point] = field(default_factory=list)  # the loaded history
    failures: int = 0
    usual: Baseline = field(default_factory=Baseline)
    growth: KeyGrowth = field(default_factory=KeyGrowth)


def measured(
    settings: Settings,
    window: list[Point],
    failures: int,
    cached_baseline: Mapping[str, str],
    key_usage: Mapping[str, str],
    keys: list[KeyInfo] | None,
    now: datetime,
    read_activity: Callable[[], list[Activity]] | None,
) -> Measured:
    """The usual pace (reading /activity when its cache is stale) and each key's growth;
    nothing of the spike when it is turned off."""
    if settings.credit_spike_factor <= 0:
        return Measured(window, failures)
    usual = baseline(settings, cached_baseline, window, now, read_activity)
    earlier = spike_window(settings, window, now)
    since = earlier[0].timestamp if earlier else None
    growth = key_growth(settings, keys, key_usage, now, since)
    return Measured(window, failures, usual, growth)
