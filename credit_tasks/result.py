"""What one check found: `CheckResult` (its exit code and its JSON-safe summary) and the status
of each key; the note that names the unreadable keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import measure
from .alerts import Alert
from .readings import KeyInfo, Snapshot
from .rules import EXIT_CODES, SpikeFigures, Status, others_note, worst_of

UNREADABLE_NAMED = 3  # the note names this many unreadable keys, then counts the rest


@dataclass(frozen=True)
class KeyStatus:
    """One capped or uncapped key of the account after a check."""

    key: KeyInfo
    status: Status

    def as_dict(self) -> dict[str, object]:
        k = self.key
        return {
            "hash": k.hash,
            "name": k.name,
            "label": k.label,
            "limit_usd": k.limit_usd,
            "remaining_usd": k.remaining_usd,
            "usage_usd": k.usage_usd,
            "limit_reset": k.limit_reset,
            "workspace": k.workspace,
            "status": self.status.value,
        }


@dataclass(frozen=True)
class CheckResult:
    """What one check found and which alerts it raised.

    `status` is the account's (a skipped check's is the stored one); `worst`, which the exit
    code follows, also counts the runway and the keys, and is unknown for a skipped check.
    """

    status: Status
    checked_at: datetime
    snapshot: Snapshot | None = None
    alerts: list[Alert] = field(default_factory=list)  # to deliver
    held: list[Alert] = field(default_factory=list)  # recorded, neither published nor sent
    error: str | None = None
    note: str | None = None
    skipped: bool = False
    burn_rate_usd_per_hour: float | None = None
    runway_hours: float | None = None
    keys: list[KeyStatus] = field(default_factory=list)
    unreadable_keys: list[str] = field(default_factory=list)
    keys_listed: bool = False  # False: no management key, or the listing failed
    runway_status: Status | None = None  # None: no projection judged
    burn_span_hours: float | None = None
    spend: measure.Spend = field(default_factory=measure.Spend)
    spike: SpikeFigures | None = None
    spike_status: Status | None = None  # None: no usual pace to judge a spike by

    @property
    def worst(self) -> Status:
        if self.skipped:
            return Status.UNKNOWN
        others = [s for s in (self.runway_status, self.spike_status) if s]
        return worst_of([self.status, *others, *(k.status for k in self.keys)])

    @property
    def others_note(self) -> str:
        return others_note(self.runway_status, (k.status for k in self.keys), self.spike_status)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.worst]

    def as_dict(self) -> dict[str, object]:
        """A JSON-safe summary, free of secrets."""
        snap = self.snapshot.as_dict() if self.snapshot else {}
        counts = {s.value: 0 for s in (Status.OK, Status.WARNING, Status.CRITICAL)}
        for k in self.keys:
            counts[k.status.value] += 1
        return {
            "status": self.status.value,
            "worst_status": self.worst.value,
            "runway_status": self.runway_status.value if self.runway_status else None,
            "checked_at": self.checked_at.isoformat(),
            "remaining_usd": snap.get("remaining_usd"),
            "usage_usd": snap.get("usage_usd"),
            "source": snap.get("source"),
            "limit_usd": snap.get("limit_usd"),
            "account_balance_usd": snap.get("account_balance_usd"),
            "burn_rate_usd_per_hour": rounded(self.burn_rate_usd_per_hour, 6),
            "runway_hours": rounded(self.runway_hours, 2),
            "burn_span_hours": rounded(self.burn_span_hours, 2),
            "spend_today_usd": self.spend.today_usd,
            "spend_week_usd": self.spend.week_usd,
            "spend_month_usd": self.spend.month_usd,
            "spike": self._spike_dict(),
            # null: not listed (no management key, or the listing failed); else the counts
            "keys": (
                {"checked": len(self.keys), **counts, "unreadable": len(self.unreadable_keys)}
                if self.keys_listed
                else None
            ),
            "skipped": self.skipped,
            "error": self.error,
            "note": self.note,
            "alerts": [{"id": a.id, "type": a.type.value} for a in self.alerts],
            "held": [_held_row(a) for a in self.held],
        }

    def _spike_dict(self) -> dict[str, object] | None:
        s = self.spike
        if s is None:
            return None
        return {
            "status": (self.spike_status or Status.OK).value,
            "window_minutes": s.window_minutes,
            "window_spend_usd": round(s.window_spend_usd, 6),
            "baseline_usd_per_hour": round(s.baseline_usd_per_hour, 6),
            "factor": rounded(s.ratio, 2),
            "top_keys": [
                {"hash": k.hash, "name": k.name, "spend_usd": k.spend_usd} for k in s.top_keys
            ],
        }


def _held_row(alert: Alert) -> dict[str, object]:
    row = alert.as_dict()
    return {"id": alert.id, "type": alert.type.value, "subject": alert.subject} | {
        k: row[k] for k in ("silenced_by", "acked_by", "inhibited_by") if k in row
    }


def rounded(value: float | None, digits: int) -> float | None:
    """`value` rounded to `digits`; None stays None."""
    return None if value is None else round(value, digits)


def unreadable_note(names: list[str]) -> str:
    """`2 keys unreadable: <hash>, <hash>`, naming a few and counting the rest."""
    shown = ", ".join(names[:UNREADABLE_NAMED])
    more = len(names) - UNREADABLE_NAMED
    if more > 0:
        shown += f" and {more} more"
    return f"{len(names)} key{'s' if len(names) != 1 else ''} unreadable: {shown}"
