"""The daily report: a day's spend, the balance and runway now, the day's alerts counted by
type, and what spent the money: the top models and providers (from `/activity?date=`) and
the top keys (each key's `usage_daily` as the checks of that day last saw it).

`assemble` is pure; `build` reads the store and, with the management key, `/activity`. The
`daily_report` task stores the report once per date (SET NX) and delivers it as a message of
type `report`; `credit-monitor report` prints it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from .alerts import Alert
from .errors import CreditTasksError
from .history import Point
from .readings import Activity
from .rules import AlertType, Status
from .spike import window_spend
from .text import duration, money

log = logging.getLogger(__name__)

TOP = 5
NEEDS_MANAGEMENT = (
    "needs OPENROUTER_MANAGEMENT_KEY: only a management key can read /activity and list the "
    "account's keys"
)


@dataclass(frozen=True)
class Report:
    """One day's report; `notes` says what it cannot show, and why."""

    date: str
    spend_usd: float | None
    balance_usd: float | None
    runway_hours: float | None
    alerts: dict[str, int]
    top_models: list[dict[str, object]] = field(default_factory=list)
    top_providers: list[dict[str, object]] = field(default_factory=list)
    top_keys: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def yesterday(now: datetime) -> str:
    """The last completed UTC day."""
    return (now.astimezone(UTC).date() - timedelta(days=1)).isoformat()


def day_bounds(day: str) -> tuple[datetime, datetime]:
    """The UTC day `day` (YYYY-MM-DD) as [start, end)."""
    start = datetime.combine(date.fromisoformat(day), time(), UTC)
    return start, start + timedelta(days=1)


def _top(rows: list[Activity], by: str) -> list[dict[str, object]]:
    """The five models (or providers) the day's rows spent most on."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        name = row.model if by == "model" else row.provider
        total = totals.setdefault(name, [0.0, 0])
        total[0] += row.usage_usd
        total[1] += row.requests
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:TOP]
    return [
        {by: name, "usage_usd": round(usd, 6), "requests": int(requests)}
        for name, (usd, requests) in ranked
    ]


def assemble(
    day: str,
    *,
    current: Mapping[str, str],
    alerts: Mapping[str, int],
    points: list[Point],
    key_spend: Mapping[str, tuple[float, str]],
    activity: list[Activity] | None,
    activity_error: str | None = None,
    managed: bool,
) -> Report:
    """The report of `day` from what the store and /activity say about it."""
    notes: list[str] = []
    spend = None
    if activity is not None:
        spend = round(sum(r.usage_usd for r in activity), 6)
    else:
        if managed:
            notes.append(f"top_models and top_providers: /activity failed ({activity_error})")
        else:
            notes.append(f"top_models and top_providers {NEEDS_MANAGEMENT}")
        seen = [p for p in points if p.remaining_usd is not None or p.usage_usd is not None]
        if len(seen) >= 2:
            spend = round(window_spend(points), 6)
            notes.append("spend_usd: from the balance the monitor's checks saw fall that day")
        else:
            notes.append("spend_usd: /activity unread and fewer than two checks that day")
    ranked = sorted(key_spend.items(), key=lambda item: (-item[1][0], item[1][1]))[:TOP]
    top_keys: list[dict[str, object]] = [
        {"hash": h, "name": name, "spend_usd": round(usd, 6)} for h, (usd, name) in ranked
    ]
    if not managed:
        notes.append(f"top_keys {NEEDS_MANAGEMENT}")
    elif not top_keys:
        notes.append("top_keys: the monitor saw no key spend that day")
    return Report(
        date=day,
        spend_usd=spend,
        balance_usd=_float(current.get("remaining_usd")),
        runway_hours=_float(current.get("runway_hours")),
        alerts=dict(sorted(alerts.items())),
        top_models=_top(activity or [], "model"),
        top_providers=_top(activity or [], "provider"),
        top_keys=top_keys,
        notes=notes,
    )


def _float(text: str | None) -> float | None:
    return float(text) if text else None


class ReportStore(Protocol):
    """What `build` reads from the store."""

    def day_records(self, day: str) -> tuple[dict[str, int], dict[str, tuple[float, str]]]: ...
    def current(self) -> dict[str, str]: ...
    def history(self, start: datetime, end: datetime) -> list[Point]: ...


def build(
    store: ReportStore,
    day: str,
    *,
    managed: bool,
    read_activity: Callable[[str], list[Activity]] | None,
) -> Report:
    """The report of `day`: the store's records and, with the management key, /activity."""
    activity, error = None, None
    if managed and read_activity is not None:
        try:
            activity = read_activity(day)
        except CreditTasksError as exc:
            log.warning("the report of %s reads no /activity: %s", day, exc)
            error = str(exc)
    counts, key_spend = store.day_records(day)
    start, end = day_bounds(day)
    return assemble(
        day,
        current=store.current(),
        alerts=counts,
        points=store.history(start, end - timedelta(milliseconds=1)),
        key_spend=key_spend,
        activity=activity,
        activity_error=error,
        managed=managed,
    )


def _alerts_text(alerts: Mapping[str, int]) -> str:
    total = sum(alerts.values())
    if not total:
        return "no alerts"
    kinds = ", ".join(f"{n} {kind}" for kind, n in alerts.items())
    return f"{total} alert{'s' if total != 1 else ''} ({kinds})"


def message(report: Report) -> str:
    """One sentence: `OpenRouter daily report for 2026-11-25: $12.30 spent; …`."""
    spent = "spend unknown" if report.spend_usd is None else f"{money(report.spend_usd)} spent"
    left = f"{money(report.balance_usd)} left"
    if report.runway_hours is not None:
        left += f" ({duration(report.runway_hours)} at the recent pace)"
    parts = [spent, left, _alerts_text(report.alerts)]
    most = []
    if report.top_models:
        model = report.top_models[0]
        most.append(f"on {model['model']} ({money(model['usage_usd'])})")
    if report.top_providers:
        provider = report.top_providers[0]
        most.append(f"through {provider['provider']} ({money(provider['usage_usd'])})")
    if report.top_keys:
        key = report.top_keys[0]
        most.append(f"by key '{key['name']}' ({money(key['spend_usd'])})")
    if most:
        parts.append("most " + ", ".join(most))
    if any(NEEDS_MANAGEMENT in note for note in report.notes):
        parts.append("models, providers and keys need OPENROUTER_MANAGEMENT_KEY")
    return f"OpenRouter daily report for {report.date}: {'; '.join(parts)}."


def as_alert(report: Report, status: str | None, now: datetime) -> Alert:
    """The report as a message of type `report`; its id is the date's, so it goes out once."""
    return Alert(
        id=f"report-{report.date}",
        type=AlertType.REPORT,
        subject="account",
        status=Status(status) if status in {s.value for s in Status} else Status.UNKNOWN,
        remaining_usd=report.balance_usd,
        threshold_usd=None,
        message=message(report),
        timestamp=now,
        runway_hours=report.runway_hours,
        report=report.as_dict(),
    )
