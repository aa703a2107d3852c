"""One credit check: fetch, apply the rules, record, and hand back the alerts to deliver.

Both faces use it: the `check_credits` task dispatches the alerts to `send_alert`, the
CLI delivers them in-process through the same `notify.deliver`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .alerts import About, Alert, build_alert
from .client import KeyInfo, OpenRouterClient, Snapshot
from .errors import FetchError, KeyRejected
from .history import Point, burn_rate_usd_per_hour, runway_hours
from .rules import (
    AlertState,
    Notice,
    Status,
    Thresholds,
    as_runway,
    classify,
    classify_runway,
    evaluate,
    is_unknown,
    key_thresholds,
)
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)

ACCOUNT = "account"
RUNWAY = "account:runway"  # the runway's own alert state; its alerts are about the account
UNKNOWN_BALANCE_HINT = (
    "balance not visible to this key: set OPENROUTER_MANAGEMENT_KEY "
    "(or CREDIT_INITIAL_BALANCE) so the monitor can see it"
)
SKIPPED_RUNNING = "skipped: another check is running"
SKIPPED_SCHEDULED = (
    "skipped: a scheduled check ran less than half an interval ago "
    "(is a second beat running? run exactly one, or use CREDIT_BEAT_SCHEDULER=redbeat)"
)
EXIT_CODES = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}
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
            "status": self.status.value,
        }


@dataclass(frozen=True)
class CheckResult:
    """What one check found and which alerts it raised."""

    status: Status
    checked_at: datetime
    snapshot: Snapshot | None = None
    alerts: list[Alert] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    skipped: bool = False
    burn_rate_usd_per_hour: float | None = None
    runway_hours: float | None = None
    keys: list[KeyStatus] = field(default_factory=list)
    unreadable_keys: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, object]:
        """A JSON-safe summary, free of secrets."""
        snap = self.snapshot.as_dict() if self.snapshot else {}
        counts = {s.value: 0 for s in (Status.OK, Status.WARNING, Status.CRITICAL)}
        for k in self.keys:
            counts[k.status.value] += 1
        return {
            "status": self.status.value,
            "checked_at": self.checked_at.isoformat(),
            "remaining_usd": snap.get("remaining_usd"),
            "usage_usd": snap.get("usage_usd"),
            "source": snap.get("source"),
            "limit_usd": snap.get("limit_usd"),
            "account_balance_usd": snap.get("account_balance_usd"),
            "burn_rate_usd_per_hour": _round(self.burn_rate_usd_per_hour, 6),
            "runway_hours": _round(self.runway_hours, 2),
            "keys": (
                {"checked": len(self.keys), **counts, "unreadable": len(self.unreadable_keys)}
                if self.keys or self.unreadable_keys
                else None
            ),
            "skipped": self.skipped,
            "error": self.error,
            "note": self.note,
            "alerts": [{"id": a.id, "type": a.type.value} for a in self.alerts],
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def unreadable_note(names: list[str]) -> str:
    """`2 keys unreadable: <hash>, <hash>`, naming a few and counting the rest."""
    shown = ", ".join(names[:UNREADABLE_NAMED])
    more = len(names) - UNREADABLE_NAMED
    if more > 0:
        shown += f" and {more} more"
    return f"{len(names)} key{'s' if len(names) != 1 else ''} unreadable: {shown}"


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        warning_usd=settings.credit_warning_threshold,
        critical_usd=settings.credit_critical_threshold,
        recovery_margin=settings.credit_recovery_margin,
    )


def lock_timeout_s(settings: Settings) -> float:
    """Long enough for the slowest check the retry budget allows; a crashed holder frees it."""
    # /key and /credits each have their own retry budget
    return 2 * (settings.credit_retry_budget_s + settings.credit_http_timeout_s) + 10


def run_check(
    settings: Settings,
    client: OpenRouterClient,
    store: Store,
    now: datetime | None = None,
    *,
    scheduled_every_s: float | None = None,
) -> CheckResult:
    """Run one check unless another is running; expected failures end in the result.

    A scheduled check (`scheduled_every_s`, the beat interval) is also skipped when another
    scheduled check started less than half an interval ago: a second beat sends one too.
    """
    now = now or datetime.now(UTC)
    if scheduled_every_s is not None and not store.claim_scheduled(scheduled_every_s / 2):
        return _skipped(store, now, SKIPPED_SCHEDULED)
    with store.check_lock(lock_timeout_s(settings)) as acquired:
        if not acquired:
            return _skipped(store, now, SKIPPED_RUNNING)
        try:
            snapshot = client.fetch_snapshot(now)
        except FetchError as exc:
            return _failed(settings, store, now, exc)
        keys: list[KeyInfo] | None = None
        unreadable: list[str] = []
        keys_error = None
        try:
            listing = client.list_keys(now)
            keys, unreadable = listing.keys, listing.unreadable
        except FetchError as exc:
            # the account figure stands; the key table keeps its last good state
            keys_error = f"keys not checked: {exc}"
            log.warning("%s", keys_error)
        return _observed(settings, store, now, snapshot, keys, keys_error, unreadable)


def _skipped(store: Store, now: datetime, note: str) -> CheckResult:
    stored = store.current().get("status") or Status.UNKNOWN.value
    log.info("check %s", note)
    return CheckResult(Status(stored), now, skipped=True, note=note)


def _new_id() -> str:
    return uuid.uuid4().hex


def _failed(settings: Settings, store: Store, now: datetime, exc: FetchError) -> CheckResult:
    reason = str(exc)
    failures = store.record_failure(now, reason)
    log.warning("check failed (%d in a row): %s", failures, reason)
    alerts: list[Alert] = []
    if is_unknown(failures, settings.credit_unknown_after_failures, isinstance(exc, KeyRejected)):
        store.set_status(Status.UNKNOWN.value)
        th = thresholds(settings)

        def decide(
            states: dict[str, AlertState],
        ) -> tuple[dict[str, AlertState], list[Alert]]:
            state, notices = evaluate(states[ACCOUNT], Status.UNKNOWN, now, settings.cooldown_s)
            about = About(reason=reason)
            return {ACCOUNT: state}, [
                build_alert(
                    n, alert_id=_new_id(), status=Status.UNKNOWN, th=th, now=now, about=about
                )
                for n in notices
            ]

        alerts = store.apply([ACCOUNT], decide)
    return CheckResult(Status.UNKNOWN, now, alerts=alerts, error=reason)


def _observed(
    settings: Settings,
    store: Store,
    now: datetime,
    snapshot: Snapshot,
    keys: list[KeyInfo] | None,
    keys_error: str | None,
    unreadable: list[str] | None = None,
) -> CheckResult:
    remaining = snapshot.remaining_usd
    rate = runway = None
    if remaining is not None:
        window = store.history(now - timedelta(hours=settings.credit_burn_window_hours), now)
        here = Point(now, remaining, snapshot.usage_usd, "", snapshot.source)
        rate = burn_rate_usd_per_hour([*window, here])
        runway = runway_hours(remaining, rate)
    about = About(
        remaining_usd=remaining,
        source=snapshot.source,
        runway_hours=runway,
        window_hours=settings.credit_burn_window_hours,
    )
    capped = [k for k in keys or [] if k.limit_usd is not None and k.remaining_usd is not None]
    subjects = [ACCOUNT, RUNWAY] if remaining is not None else []
    subjects += [f"key:{k.hash}" for k in capped]
    statuses: dict[str, Status] = {}

    def decide(states: dict[str, AlertState]) -> tuple[dict[str, AlertState], list[Alert]]:
        statuses.clear()  # a retried transaction decides afresh
        new: dict[str, AlertState] = {}
        alerts: list[Alert] = []

        def step(
            subject: str,
            status: Status,
            th: Thresholds,
            subject_about: About,
            *,
            percents: tuple[float, float] | None = None,
            threshold_hours: float | None = None,
        ) -> None:
            statuses[subject] = status
            new[subject], notices = evaluate(states[subject], status, now, settings.cooldown_s)
            shown: list[Notice] = as_runway(notices) if threshold_hours is not None else notices
            alerts.extend(
                build_alert(
                    n,
                    alert_id=_new_id(),
                    status=status,
                    th=th,
                    now=now,
                    about=subject_about,
                    percents=percents,
                    threshold_hours=threshold_hours,
                )
                for n in shown
            )

        th = thresholds(settings)
        if remaining is not None:
            step(ACCOUNT, classify(remaining, states[ACCOUNT].status, th), th, about)
            # a projection needs two points with spend between them
            if rate is not None and settings.credit_runway_warning_hours > 0:
                hours = settings.credit_runway_warning_hours
                status = classify_runway(
                    runway, states[RUNWAY].status, hours, settings.credit_recovery_margin
                )
                step(RUNWAY, status, th, about, threshold_hours=hours)
        percents = (settings.credit_key_warning_percent, settings.credit_key_critical_percent)
        for k in capped:
            assert k.limit_usd is not None and k.remaining_usd is not None
            subject = f"key:{k.hash}"
            kth = key_thresholds(k.limit_usd, *percents, settings.credit_recovery_margin)
            key_about = About(
                subject=subject,
                remaining_usd=k.remaining_usd,
                key_name=k.name,
                key_label=k.label,
                limit_usd=k.limit_usd,
            )
            step(
                subject,
                classify(k.remaining_usd, states[subject].status, kth),
                kth,
                key_about,
                percents=percents,
            )
        return new, alerts

    key_rows: list[KeyStatus] = []

    def record(pipe: Any) -> dict[str, str]:
        # the check's own writes go into the decision's transaction: one round trip for all
        status = statuses.get(ACCOUNT, Status.UNKNOWN)
        extra = {"burn_rate_usd_per_hour": _round(rate, 6), "runway_hours": _round(runway, 2)}
        # None when the keys were not listed: the last listing's unreadable keys stand
        named = (unreadable or []) if keys is not None else None
        point = store.queue_success(
            pipe, snapshot.as_dict(), status.value, now, extra, unreadable_keys=named
        )
        key_rows[:] = [KeyStatus(k, statuses.get(f"key:{k.hash}", Status.OK)) for k in keys or []]
        if keys is not None:
            store.queue_keys(pipe, {row.key.hash: row.as_dict() for row in key_rows})
        return point

    alerts = store.apply(subjects, decide, record)
    status = statuses.get(ACCOUNT, Status.UNKNOWN)
    note = UNKNOWN_BALANCE_HINT if remaining is None else None
    if keys_error:
        note = f"{note}; {keys_error}" if note else keys_error
    if unreadable:
        note = f"{note}; {unreadable_note(unreadable)}" if note else unreadable_note(unreadable)
    log.info("check %s: %s left (%s)", status.value, remaining, snapshot.source)
    return CheckResult(
        status,
        now,
        snapshot,
        alerts=alerts,
        note=note,
        burn_rate_usd_per_hour=rate,
        runway_hours=runway,
        keys=key_rows,
        unreadable_keys=list(unreadable or []),
    )
