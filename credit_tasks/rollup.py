"""History in buckets: the stored levels, a bucket's codec, bucketing and the summary.

A chart asks for at most `MAX_BUCKETS` buckets, whatever its range. Each bucket carries the
lowest, highest and last balance of its checks, so no dip below a threshold is averaged
away, plus what was spent and topped up inside it. The commit keeps one sorted set per level
(`LEVELS_S`) up to date as each check lands, so 30 and 90 days are read as a few hundred
buckets instead of tens of thousands of checks. Short ranges are bucketed here from the
raw checks. Pure: no I/O, the store does the reading and writing.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import NamedTuple

from .history import Point, runway_hours

MAX_BUCKETS = 1000  # at most this many buckets per answer
LEVELS_S = (300, 900, 3600, 10800)  # stored bucket widths: 5 min, 15 min, 1 h, 3 h
# widths for bucketing raw checks: each a whole number of seconds people read easily
NICE_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800)
FIELDS = ("n", "first", "last", "min", "max", "spent", "rise", "t0", "t1")  # stored order


class Bucket(NamedTuple):
    """The checks with a known balance inside [start, start + width) (a tuple: cheap to
    build by the thousand, as a 90-day answer does)."""

    start_ms: int
    checks: int
    first_usd: float
    last_usd: float
    min_usd: float
    max_usd: float
    spent_usd: float  # falls between its own checks
    rise_usd: float  # rises between its own checks: top-ups
    first_ms: int  # its first check
    last_ms: int  # its last check

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)


def _num(value: float) -> str:
    return repr(float(value))


def encode(bucket: Bucket) -> str:
    """The sorted-set member of a bucket, in `FIELDS` order; unique by its first check."""
    b = bucket
    return ",".join(
        [
            str(b.checks),
            _num(b.first_usd),
            _num(b.last_usd),
            _num(b.min_usd),
            _num(b.max_usd),
            _num(b.spent_usd),
            _num(b.rise_usd),
            str(b.first_ms),
            str(b.last_ms),
        ]
    )


def decode(member: str, width_s: int) -> Bucket:
    """A stored member back into its bucket; the start follows from its first check."""
    n, first, last, low, high, spent, rise, t0, t1 = member.split(",")
    first_ms = int(t0)
    return Bucket(
        first_ms - first_ms % (width_s * 1000),
        int(n),
        float(first),
        float(last),
        float(low),
        float(high),
        float(spent),
        float(rise),
        first_ms,
        int(t1),
    )


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def add(bucket: Bucket | None, start_ms: int, at_ms: int, usd: float) -> Bucket:
    """`bucket` with one more check; the commit script does the same in Lua."""
    if bucket is None:
        return Bucket(start_ms, 1, usd, usd, usd, usd, 0.0, 0.0, at_ms, at_ms)
    delta = usd - bucket.last_usd
    return Bucket(
        start_ms=bucket.start_ms,
        checks=bucket.checks + 1,
        first_usd=bucket.first_usd,
        last_usd=usd,
        min_usd=min(bucket.min_usd, usd),
        max_usd=max(bucket.max_usd, usd),
        spent_usd=bucket.spent_usd + max(0.0, -delta),
        rise_usd=bucket.rise_usd + max(0.0, delta),
        first_ms=bucket.first_ms,
        last_ms=at_ms,
    )


def bucketize(points: list[Point], width_s: int) -> list[Bucket]:
    """Points (oldest first) in buckets of `width_s`, aligned on the epoch; unknowns left out."""
    width_ms = width_s * 1000
    out: list[Bucket] = []
    for p in points:
        if p.remaining_usd is None:
            continue
        at = _ms(p.timestamp)
        start = at - at % width_ms
        if out and out[-1].start_ms == start:
            out[-1] = add(out[-1], start, at, p.remaining_usd)
        else:
            out.append(add(None, start, at, p.remaining_usd))
    return out


def merge(buckets: list[Bucket], width_s: int) -> list[Bucket]:
    """Buckets merged into wider ones of `width_s` (a multiple of theirs)."""
    width_ms = width_s * 1000
    out: list[Bucket] = []
    for start, group in itertools.groupby(buckets, lambda b: b.start_ms - b.start_ms % width_ms):
        parts = list(group)
        between = list(itertools.pairwise(parts))
        out.append(
            Bucket(
                start_ms=start,
                checks=sum(b.checks for b in parts),
                first_usd=parts[0].first_usd,
                last_usd=parts[-1].last_usd,
                min_usd=min(b.min_usd for b in parts),
                max_usd=max(b.max_usd for b in parts),
                spent_usd=sum(b.spent_usd for b in parts)
                + sum(max(0.0, a.last_usd - b.first_usd) for a, b in between),
                rise_usd=sum(b.rise_usd for b in parts)
                + sum(max(0.0, b.first_usd - a.last_usd) for a, b in between),
                first_ms=parts[0].first_ms,
                last_ms=parts[-1].last_ms,
            )
        )
    return out


def level_for(span_s: float) -> int:
    """The finest stored level that answers `span_s` in at most MAX_BUCKETS buckets."""
    for width in LEVELS_S:
        if span_s / width <= MAX_BUCKETS:
            return width
    return LEVELS_S[-1]


def width_for(span_s: float, finest_s: int = 1) -> int:
    """The bucket width for `span_s`: a nice width, or a multiple of the coarsest level."""
    need = max(span_s / MAX_BUCKETS, finest_s)
    for width in NICE_S:
        if width >= need:
            return width
    coarsest = LEVELS_S[-1]
    return coarsest * math.ceil(need / coarsest)


def width_text(width_s: int) -> str:
    """`30 s`, `5 min` or `3 h`: a bucket's width as people read it."""
    if width_s % 3600 == 0:
        return f"{width_s // 3600} h"
    return f"{width_s // 60} min" if width_s % 60 == 0 else f"{width_s} s"


def topups(buckets: list[Bucket]) -> list[float]:
    """Each bucket's top-ups: its own rises, and the rise from the bucket before it."""
    out = []
    for i, b in enumerate(buckets):
        carried = max(0.0, b.first_usd - buckets[i - 1].last_usd) if i else 0.0
        out.append(b.rise_usd + carried)
    return out


def summarize(buckets: list[Bucket]) -> dict[str, object]:
    """The same summary as `history.summarize`, read from buckets."""
    if not buckets:
        return {
            "points": 0,
            "first_remaining_usd": None,
            "last_remaining_usd": None,
            "min_remaining_usd": None,
            "max_remaining_usd": None,
            "spend_usd": None,
            "burn_rate_usd_per_hour": None,
            "runway_hours": None,
        }
    checks = sum(b.checks for b in buckets)
    spent = sum(b.spent_usd for b in buckets) + sum(
        max(0.0, a.last_usd - b.first_usd) for a, b in itertools.pairwise(buckets)
    )
    hours = (buckets[-1].last_ms - buckets[0].first_ms) / 3_600_000
    rate = spent / hours if checks >= 2 and hours > 0 else None
    last = buckets[-1].last_usd
    runway = runway_hours(last, rate)
    return {
        "points": checks,
        "first_remaining_usd": buckets[0].first_usd,
        "last_remaining_usd": last,
        "min_remaining_usd": min(b.min_usd for b in buckets),
        "max_remaining_usd": max(b.max_usd for b in buckets),
        "spend_usd": round(spent, 6) if checks >= 2 else None,
        "burn_rate_usd_per_hour": round(rate, 6) if rate is not None else None,
        "runway_hours": round(runway, 2) if runway is not None else None,
    }


def as_dicts(buckets: list[Bucket]) -> list[dict[str, object]]:
    """The buckets as JSON objects, each with its top-ups."""
    return [
        {
            "start": b.start.isoformat(),
            "checks": b.checks,
            "min_usd": round(b.min_usd, 6),
            "max_usd": round(b.max_usd, 6),
            "last_usd": round(b.last_usd, 6),
            "first_usd": round(b.first_usd, 6),
            "topup_usd": round(up, 6),
        }
        for b, up in zip(buckets, topups(buckets), strict=True)
    ]


def report(hours: float, width_s: int, buckets: list[Bucket]) -> dict[str, object]:
    """The history answer of the task, the command and the web: buckets and their summary."""
    return {
        "hours": hours,
        "bucket_s": width_s,
        "buckets": as_dicts(buckets),
        "summary": summarize(buckets),
    }
