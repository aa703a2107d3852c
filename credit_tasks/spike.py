"""The spike's arithmetic: the usual pace, the window's spend, and each key's growth.

Pure, like `rules`: the check hands in what it fetched and loaded, and the time. The usual
pace (the baseline) is an hourly spend:

- with the management key, the median over the last 7 completed UTC days of each day's total
  `usage` in `/activity`, divided by 24; fetched once per UTC day and cached in one hash;
- otherwise, the spend recorded in the stored history before the window, once that history
  reaches back 24 hours.

Each key's growth comes from one hash of usage samples, a field per key: only a key whose
usage changed is rewritten, so a check of 10,000 idle keys writes nothing there.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from .history import Point, spend_usd
from .rules import KeySpend

BASELINE_DAYS = 7
HISTORY_COVER_H = 24.0  # the stored history must reach back this far to give a baseline
BASELINE_RETRY_S = 3600.0  # a failed /activity fetch is tried again after this
TOP_KEYS = 5
MAX_SAMPLES = 64  # per key: a key that grows at every check keeps the newest ones

# the cached baseline's fields
DAY = "day"  # the UTC day /activity was read on
USD_PER_HOUR = "usd_per_hour"
FAILED_AT = "failed_at"  # when the last fetch failed, ISO time; empty after a success
ERROR = "error"


def daily_totals(rows: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Each date's total spend from (date, usage) rows, one per model and endpoint."""
    totals: dict[str, float] = {}
    for day, usage in rows:
        totals[day] = totals.get(day, 0.0) + usage
    return totals


def activity_baseline(daily_usd: Mapping[str, float], today: date) -> float | None:
    """The median of the last 7 completed days' spend, per hour; a day with no row spent $0.
    None when none of the 7 days has a row: an account with no history has no usual pace."""
    days = [(today - timedelta(days=n)).isoformat() for n in range(1, BASELINE_DAYS + 1)]
    if not any(day in daily_usd for day in days):
        return None
    return statistics.median(daily_usd.get(day, 0.0) for day in days) / 24


def window_spend(points: list[Point]) -> float:
    """Money spent across `points`: the balance's falls, or the watched key's usage rises
    when the balance is not known. A top-up (a rise of the balance) is never spend."""
    spent = spend_usd(points)
    if spent is not None:
        return spent
    usage = [p.usage_usd for p in points if p.usage_usd is not None]
    return sum(max(0.0, after - before) for before, after in itertools.pairwise(usage))


def history_baseline(points: list[Point], now: datetime, window: timedelta) -> float | None:
    """The hourly spend before the window, once the history covers 24 hours; else None."""
    before = [p for p in points if p.timestamp <= now - window]
    if not before or before[0].timestamp > now - timedelta(hours=HISTORY_COVER_H):
        return None
    hours = (before[-1].timestamp - before[0].timestamp).total_seconds() / 3600
    return window_spend(before) / hours if hours > 0 else None


def cached_baseline(raw: Mapping[str, str], today: date) -> float | None:
    """The cached baseline while it is at most a day old (a failed fetch keeps yesterday's)."""
    value, day = raw.get(USD_PER_HOUR), raw.get(DAY)
    if not value or not day or date.fromisoformat(day) < today - timedelta(days=1):
        return None
    return float(value)


def baseline_due(raw: Mapping[str, str], now: datetime) -> bool:
    """Whether /activity should be read now: not yet today, and no failure within the hour."""
    if raw.get(DAY) == now.astimezone(UTC).date().isoformat():
        return False
    failed = raw.get(FAILED_AT)
    return not failed or (now - datetime.fromisoformat(failed)).total_seconds() >= BASELINE_RETRY_S


def baseline_record(today: date, usd_per_hour: float | None) -> dict[str, str]:
    """The cache after a good fetch; an empty figure when /activity showed no spend at all."""
    figure = "" if usd_per_hour is None else repr(usd_per_hour)
    return {DAY: today.isoformat(), USD_PER_HOUR: figure, FAILED_AT: "", ERROR: ""}


def failed_record(raw: Mapping[str, str], now: datetime, error: str) -> dict[str, str]:
    """The cache after a failed fetch: the last good baseline stays, the failure is noted."""
    return {**raw, FAILED_AT: now.isoformat(), ERROR: error}


def encode_samples(samples: list[tuple[int, float]]) -> str:
    """`1764158400:12.5;1764159000:13.25`: (epoch seconds, usage) pairs, oldest first."""
    return ";".join(f"{ts}:{usage!r}" for ts, usage in samples)


def decode_samples(text: str | None) -> list[tuple[int, float]]:
    out = []
    for pair in (text or "").split(";"):
        ts, _, usage = pair.partition(":")
        if ts and usage:
            out.append((int(ts), float(usage)))
    return out


@dataclass
class Tracked:
    """What one listing does to the samples: fields to write and delete, and each key's growth."""

    writes: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    growth_usd: dict[str, float] = field(default_factory=dict)  # since the window's first check
    changed: list[str] = field(default_factory=list)  # usage moved since the last check


def _usage_at(samples: list[tuple[int, float]], ts: int) -> float:
    """The usage last seen at or before `ts`; a key first seen later counts from then."""
    seen = [usage for when, usage in samples if when <= ts]
    return seen[-1] if seen else samples[0][1]


def track_usage(
    stored: Mapping[str, str],
    usages: Mapping[str, float],
    now: datetime,
    window_start: datetime,
    since: datetime | None,
) -> Tracked:
    """Each key's growth since `since` (the window's first check; None: no growth yet), and
    the samples to keep: the ones after `window_start` and the last one before it."""
    now_s, start_s = int(now.timestamp()), int(window_start.timestamp())
    since_s = None if since is None else int(since.timestamp())
    out = Tracked(removed=[h for h in stored if h not in usages])
    for key_hash, usage in usages.items():
        samples = decode_samples(stored.get(key_hash))
        if not samples:
            out.writes[key_hash] = encode_samples([(now_s, usage)])
            continue
        if since_s is not None and (grown := usage - _usage_at(samples, since_s)) > 0:
            out.growth_usd[key_hash] = grown
        if usage != samples[-1][1]:
            out.changed.append(key_hash)
            older = [s for s in samples if s[0] <= start_s][-1:]
            kept = [*older, *(s for s in samples if s[0] > start_s), (now_s, usage)]
            out.writes[key_hash] = encode_samples(kept[-MAX_SAMPLES:])
    return out


def top_keys(growth_usd: Mapping[str, float], names: Mapping[str, str]) -> tuple[KeySpend, ...]:
    """The keys that grew most, at most five, largest first."""
    ranked = sorted(growth_usd.items(), key=lambda item: (-item[1], names.get(item[0], "")))
    return tuple(KeySpend(h, names.get(h, ""), round(usd, 6)) for h, usd in ranked[:TOP_KEYS])
