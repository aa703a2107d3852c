"""History points and their summary: pure arithmetic over what the store returns."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import NamedTuple


class Point(NamedTuple):
    """One completed check as kept in the timeline (a tuple: cheap to build by the thousand)."""

    timestamp: datetime
    remaining_usd: float | None
    usage_usd: float | None
    status: str
    source: str

    def as_dict(self) -> dict[str, object]:
        return {
            "timestamp": self.timestamp.isoformat(),
            "remaining_usd": self.remaining_usd,
            "usage_usd": self.usage_usd,
            "status": self.status,
            "source": self.source,
        }


def spend_usd(points: list[Point]) -> float | None:
    """Money spent across `points`: each fall of the balance (a rise is a top-up, not spend)."""
    known = [p.remaining_usd for p in points if p.remaining_usd is not None]
    if len(known) < 2:
        return None
    return sum(max(0.0, before - after) for before, after in itertools.pairwise(known))


def burn_rate_usd_per_hour(points: list[Point]) -> float | None:
    """Average spend per hour between the first and last known balance of `points`."""
    known = [p for p in points if p.remaining_usd is not None]
    spent = spend_usd(known)
    if spent is None:
        return None
    hours = (known[-1].timestamp - known[0].timestamp).total_seconds() / 3600
    return spent / hours if hours > 0 else None


def span_hours(points: list[Point]) -> float:
    """Hours between the first and the last known balance of `points` (0 for fewer than two)."""
    known = [p for p in points if p.remaining_usd is not None]
    if len(known) < 2:
        return 0.0
    return (known[-1].timestamp - known[0].timestamp).total_seconds() / 3600


def paced_burn_rate(points: list[Point], min_span_h: float) -> float | None:
    """The burn rate, once the known balances span at least `min_span_h` hours."""
    if span_hours(points) < min_span_h or span_hours(points) <= 0:
        return None
    return burn_rate_usd_per_hour(points)


def runway_hours(remaining_usd: float | None, rate_usd_per_hour: float | None) -> float | None:
    """Hours until the balance reaches zero at `rate`; None without a balance or any spend.

    Nothing left, or less (an overspent key), is no time at all: 0, never negative.
    """
    if remaining_usd is None or not rate_usd_per_hour or rate_usd_per_hour <= 0:
        return None
    return max(0.0, remaining_usd / rate_usd_per_hour)


def summarize(points: list[Point]) -> dict[str, object]:
    """First, last, min and max balance, spend and burn rate of a window of points."""
    known = [p.remaining_usd for p in points if p.remaining_usd is not None]
    spent = spend_usd(points)
    rate = burn_rate_usd_per_hour(points)
    runway = runway_hours(known[-1] if known else None, rate)
    return {
        "points": len(points),
        "first_remaining_usd": known[0] if known else None,
        "last_remaining_usd": known[-1] if known else None,
        "min_remaining_usd": min(known) if known else None,
        "max_remaining_usd": max(known) if known else None,
        "spend_usd": round(spent, 6) if spent is not None else None,
        "burn_rate_usd_per_hour": round(rate, 6) if rate is not None else None,
        "runway_hours": round(runway, 2) if runway is not None else None,
    }
