"""The rules of one subject: its statuses, thresholds, alert state, and how a check moves it.

Each function here judges one figure of one subject (the account's balance, a key's, the
runway, the spend in the spike window) against its thresholds, or moves one alert state on
by what was observed: when it alerts, repeats after the cooldown, or resolves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class AlertType(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"
    RESOLVED = "resolved"
    RUNWAY = "runway"
    SPIKE = "spike"
    REPORT = "report"  # the daily report: delivered as alerts are, never decided here


_RANK = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2}
# States that repeat their alert while they last.
_ALERTING = {Status.WARNING, Status.CRITICAL, Status.UNKNOWN}


@dataclass(frozen=True)
class Thresholds:
    """Dollar thresholds and the recovery margin (a fraction of the threshold)."""

    warning_usd: float
    critical_usd: float
    recovery_margin: float = 0.1

    def for_status(self, status: Status) -> float | None:
        if status is Status.WARNING:
            return self.warning_usd
        if status is Status.CRITICAL:
            return self.critical_usd
        return None


@dataclass(frozen=True)
class AlertState:
    """What a subject (the account, or one key) is alerting about, and when each type was sent."""

    status: Status = Status.OK
    since: datetime | None = None
    last_sent: dict[str, datetime] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "since": self.since.isoformat() if self.since else None,
            "last_sent": {k: v.isoformat() for k, v in self.last_sent.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> AlertState:
        since = data.get("since")
        last = data.get("last_sent") or {}
        return cls(
            status=Status(str(data.get("status", "ok"))),
            since=datetime.fromisoformat(since) if isinstance(since, str) else None,
            last_sent={str(k): datetime.fromisoformat(str(v)) for k, v in dict(last).items()},  # type: ignore[call-overload]
        )


@dataclass(frozen=True)
class Notice:
    """An alert the rules call for: its type and, for `resolved`, the type it ends."""

    type: AlertType
    resolves: AlertType | None = None


def cents(usd: float) -> int:
    """Dollars as whole cents, rounded as the messages show them: `$10.00` is 1000."""
    return int(f"{usd:.2f}".replace(".", ""))


def classify(remaining_usd: float, previous: Status, th: Thresholds) -> Status:
    """Status of a known balance; leaving a state needs the threshold plus the margin.

    Nothing left, or less (an overspent key), is critical whatever the thresholds. Figures
    are compared in cents, so 20.4 - 10.4 is $10.00 and not below a $10 line.
    """
    left = cents(remaining_usd)
    crit_exit = cents(th.critical_usd * (1 + th.recovery_margin))
    warn_exit = cents(th.warning_usd * (1 + th.recovery_margin))
    if left <= 0 or left < cents(th.critical_usd):
        return Status.CRITICAL
    if previous is Status.CRITICAL and left < crit_exit:
        return Status.CRITICAL
    if left < cents(th.warning_usd):
        return Status.WARNING
    if previous in (Status.WARNING, Status.CRITICAL) and left < warn_exit:
        return Status.WARNING
    return Status.OK


def is_unknown(consecutive_failures: int, unknown_after: int, key_rejected: bool) -> bool:
    """Whether failed checks have gone on long enough to say the balance cannot be seen."""
    return key_rejected or consecutive_failures >= unknown_after


def cooldown_due(last_sent: datetime | None, now: datetime, cooldown_s: float) -> bool:
    """Whether an alert last sent at `last_sent` may be repeated at `now`."""
    return last_sent is None or (now - last_sent).total_seconds() >= cooldown_s


def _transition_notices(previous: Status, observed: Status) -> list[Notice]:
    if observed is Status.UNKNOWN:
        return [Notice(AlertType.UNKNOWN)]
    notices = []
    if previous is Status.UNKNOWN:
        notices.append(Notice(AlertType.RESOLVED, resolves=AlertType.UNKNOWN))
        previous = Status.OK  # what was before the blind spot is stale
    if observed is Status.OK and previous is not Status.OK:
        notices.append(Notice(AlertType.RESOLVED, resolves=AlertType(previous.value)))
    elif _RANK[observed] > _RANK[previous]:
        notices.append(Notice(AlertType(observed.value)))
    # improving from critical to warning sends nothing new
    return notices


def evaluate(
    state: AlertState, observed: Status, now: datetime, cooldown_s: float
) -> tuple[AlertState, list[Notice]]:
    """The next state of a subject and the alerts due, given what the check observed."""
    if observed is state.status:
        if observed in _ALERTING and cooldown_due(
            state.last_sent.get(observed.value), now, cooldown_s
        ):
            notice = Notice(AlertType(observed.value))
            return _sent(state, [notice], now), [notice]
        return state, []
    notices = _transition_notices(state.status, observed)
    moved = replace(state, status=observed, since=now)
    if observed is Status.OK:
        moved = replace(moved, last_sent={})  # a new incident alerts at once
    else:
        # improving to warning is silent, but still starts the warning's cooldown
        moved = replace(moved, last_sent={**moved.last_sent, observed.value: now})
    return _sent(moved, notices, now), notices


def _sent(state: AlertState, notices: list[Notice], now: datetime) -> AlertState:
    if not notices:
        return state
    last = dict(state.last_sent)
    for notice in notices:
        if notice.type is not AlertType.RESOLVED:
            last[notice.type.value] = now
    return replace(state, last_sent=last)


def key_thresholds(
    limit_usd: float, warning_percent: float, critical_percent: float, recovery_margin: float
) -> Thresholds:
    """Dollar thresholds of a capped key: the given percents of its limit."""
    return Thresholds(
        warning_usd=limit_usd * warning_percent / 100,
        critical_usd=limit_usd * critical_percent / 100,
        recovery_margin=recovery_margin,
    )


def classify_runway(
    runway_hours: float | None, previous: Status, threshold_hours: float, recovery_margin: float
) -> Status:
    """WARNING while the projected runway is under the threshold; leaving needs the margin.

    No projection (no spend in the window) means no money is burning: OK.
    """
    if runway_hours is None:
        return Status.OK
    if runway_hours < threshold_hours:
        return Status.WARNING
    if previous is Status.WARNING and runway_hours < threshold_hours * (1 + recovery_margin):
        return Status.WARNING
    return Status.OK


def as_runway(notices: list[Notice], kind: AlertType = AlertType.RUNWAY) -> list[Notice]:
    """The runway (or spike) subject's notices: its WARNING is a `runway` (`spike`) alert."""
    out = []
    for n in notices:
        if n.type is AlertType.WARNING:
            out.append(Notice(kind))
        elif n.type is AlertType.RESOLVED and n.resolves is AlertType.WARNING:
            out.append(Notice(AlertType.RESOLVED, resolves=kind))
    return out


def classify_spike(
    spend_usd: float, line_usd: float, previous: Status, recovery_margin: float
) -> Status:
    """WARNING from the line up; it ends once the spend is below line ÷ (1 + margin)."""
    if spend_usd <= 0:
        return Status.OK
    if spend_usd >= line_usd:
        return Status.WARNING
    if previous is Status.WARNING and spend_usd >= line_usd / (1 + recovery_margin):
        return Status.WARNING
    return Status.OK
