"""One credit check: fetch, apply the rules, record, and hand back the alerts to deliver.

Both faces use it: the `check_credits` task dispatches the alerts to `send_alert`, the
CLI delivers them in-process through the same `notify.deliver`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .client import OpenRouterClient, Snapshot
from .errors import FetchError, KeyRejected
from .rules import (
    Alert,
    AlertState,
    Status,
    Thresholds,
    build_alert,
    classify,
    evaluate,
    is_unknown,
)
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)

ACCOUNT = "account"
UNKNOWN_BALANCE_HINT = (
    "balance not visible to this key: set OPENROUTER_MANAGEMENT_KEY "
    "(or CREDIT_INITIAL_BALANCE) so the monitor can see it"
)
EXIT_CODES = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}


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

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, object]:
        """A JSON-safe summary, free of secrets."""
        snap = self.snapshot.as_dict() if self.snapshot else {}
        return {
            "status": self.status.value,
            "checked_at": self.checked_at.isoformat(),
            "remaining_usd": snap.get("remaining_usd"),
            "usage_usd": snap.get("usage_usd"),
            "source": snap.get("source"),
            "limit_usd": snap.get("limit_usd"),
            "account_balance_usd": snap.get("account_balance_usd"),
            "skipped": self.skipped,
            "error": self.error,
            "note": self.note,
            "alerts": [{"id": a.id, "type": a.type.value} for a in self.alerts],
        }


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
    settings: Settings, client: OpenRouterClient, store: Store, now: datetime | None = None
) -> CheckResult:
    """Run one check unless another is running; expected failures end in the result."""
    now = now or datetime.now(UTC)
    with store.check_lock(lock_timeout_s(settings)) as acquired:
        if not acquired:
            stored = store.current().get("status") or Status.UNKNOWN.value
            log.info("check skipped: another check is running")
            return CheckResult(
                Status(stored), now, skipped=True, note="skipped: another check is running"
            )
        try:
            snapshot = client.fetch_snapshot(now)
        except FetchError as exc:
            return _failed(settings, store, now, exc)
        return _observed(settings, store, now, snapshot)


def _failed(settings: Settings, store: Store, now: datetime, exc: FetchError) -> CheckResult:
    reason = str(exc)
    failures = store.record_failure(now, reason)
    log.warning("check failed (%d in a row): %s", failures, reason)
    alerts: list[Alert] = []
    if is_unknown(failures, settings.credit_unknown_after_failures, isinstance(exc, KeyRejected)):
        store.set_status(Status.UNKNOWN.value)
        th = thresholds(settings)

        def decide(state: AlertState) -> tuple[AlertState, list[Alert]]:
            new_state, notices = evaluate(state, Status.UNKNOWN, now, settings.cooldown_s)
            return new_state, [
                build_alert(
                    n,
                    alert_id=uuid.uuid4().hex,
                    subject=ACCOUNT,
                    status=Status.UNKNOWN,
                    remaining_usd=None,
                    th=th,
                    now=now,
                    reason=reason,
                )
                for n in notices
            ]

        alerts = store.apply(ACCOUNT, decide)
    return CheckResult(Status.UNKNOWN, now, alerts=alerts, error=reason)


def _observed(settings: Settings, store: Store, now: datetime, snapshot: Snapshot) -> CheckResult:
    remaining = snapshot.remaining_usd
    if remaining is None:
        store.record_success(snapshot.as_dict(), Status.UNKNOWN.value, now)
        return CheckResult(Status.UNKNOWN, now, snapshot, note=UNKNOWN_BALANCE_HINT)
    th = thresholds(settings)
    observed: list[Status] = []

    def decide(state: AlertState) -> tuple[AlertState, list[Alert]]:
        status = classify(remaining, state.status, th)
        observed.append(status)
        new_state, notices = evaluate(state, status, now, settings.cooldown_s)
        return new_state, [
            build_alert(
                n,
                alert_id=uuid.uuid4().hex,
                subject=ACCOUNT,
                status=status,
                remaining_usd=remaining,
                th=th,
                now=now,
                source=snapshot.source,
            )
            for n in notices
        ]

    alerts = store.apply(ACCOUNT, decide)
    status = observed[-1]  # the attempt that committed
    store.record_success(snapshot.as_dict(), status.value, now)
    log.info("check %s: $%.2f left (%s)", status.value, remaining, snapshot.source)
    return CheckResult(status, now, snapshot, alerts=alerts)
