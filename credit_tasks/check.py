"""One credit check: fetch, load, decide, commit, and hand back the alerts to deliver.

No decision is made here: `rules.decide` makes it from what was fetched and loaded. Three
Redis round trips: `claim` the lock, `load` the states and window, `commit` everything.
Both faces use it: the `check_credits` task dispatches the alerts to `send_alert`, the
CLI delivers them in-process through the same `notify.deliver`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from .alerts import Alert, alert_for
from .client import OpenRouterClient
from .errors import FetchError, KeyRejected
from .history import Point, burn_rate_usd_per_hour, runway_hours
from .readings import KeyInfo, Snapshot
from .rules import (
    Decision,
    Failure,
    KeyFigures,
    Observation,
    Policy,
    Status,
    Subject,
    Thresholds,
    decide,
    subjects_of,
)
from .settings import Settings
from .store import Commit, Cooldown, Store

log = logging.getLogger(__name__)

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


def policy(settings: Settings) -> Policy:
    """The settings the decision applies."""
    return Policy(
        thresholds=thresholds(settings),
        cooldown_s=settings.cooldown_s,
        key_warning_percent=settings.credit_key_warning_percent,
        key_critical_percent=settings.credit_key_critical_percent,
        runway_warning_hours=settings.credit_runway_warning_hours,
        window_hours=settings.credit_burn_window_hours,
        unknown_after_failures=settings.credit_unknown_after_failures,
    )


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        warning_usd=settings.credit_warning_threshold,
        critical_usd=settings.credit_critical_threshold,
        recovery_margin=settings.credit_recovery_margin,
    )


LOCK_TTL_S = 10.0  # renewed while the check runs: a dead holder's lock lapses this soon


def lock_timeout_s(settings: Settings) -> float:
    """The check lock's TTL, renewed while the check runs: a crashed holder frees it this soon."""
    # never longer than the slowest check the retry budget allows (/key, then /credits)
    return min(
        LOCK_TTL_S, 2 * (settings.credit_retry_budget_s + settings.credit_http_timeout_s) + 10
    )


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
    hold_s = scheduled_every_s / 2 if scheduled_every_s is not None else None
    ttl_s = lock_timeout_s(settings)
    claim = store.claim(ttl_s, hold_s)
    if claim.token is None:
        return _skipped(
            store, now, SKIPPED_SCHEDULED if claim.skipped == "scheduled" else SKIPPED_RUNNING
        )
    committed = False
    try:
        with store.renewing(claim.token, ttl_s):
            result = _decide_and_commit(settings, store, now, _fetch(client, now), claim.token)
        committed = True  # the commit freed the lock
        return result
    finally:
        if not committed:
            store.release(claim.token)


@dataclass(frozen=True)
class _Seen:
    """What OpenRouter said in one check: a snapshot and the keys, or why it could not."""

    snapshot: Snapshot | None = None
    keys: list[KeyInfo] | None = None  # None: not listed (no management key counts as [])
    unreadable: list[str] = field(default_factory=list)  # /keys items that could not be read
    keys_error: str | None = None
    error: FetchError | None = None


def _fetch(client: OpenRouterClient, now: datetime) -> _Seen:
    try:
        reading = client.read(now)
    except FetchError as exc:
        return _Seen(error=exc)
    if reading.listing is None and reading.snapshot.credits_forbidden is not None:
        # /keys refused the same key as /credits: one setting to fix, said once with it
        return _Seen(reading.snapshot)
    if reading.listing is None:
        # the account figure stands; the key table keeps its last good state
        keys_error = f"keys not checked: {reading.keys_error}"
        log.warning("%s", keys_error)
        return _Seen(reading.snapshot, keys_error=keys_error)
    return _Seen(reading.snapshot, reading.listing.keys, reading.listing.unreadable)


def _skipped(store: Store, now: datetime, note: str) -> CheckResult:
    stored = store.current().get("status") or Status.UNKNOWN.value
    log.info("check %s", note)
    return CheckResult(Status(stored), now, skipped=True, note=note)


def _observe(seen: _Seen, window: list[Point], failures: int, now: datetime) -> Observation:
    """What the rules get: the check's figures, its projection and keys, or its failure."""
    if seen.error is not None:
        rejected = isinstance(seen.error, KeyRejected)
        return Observation(failure=Failure(str(seen.error), failures + 1, rejected))
    snapshot = seen.snapshot
    assert snapshot is not None
    remaining, rate = snapshot.remaining_usd, None
    if remaining is not None:
        here = Point(now, remaining, snapshot.usage_usd, "", snapshot.source)
        rate = burn_rate_usd_per_hour([*window, here])
    keys = tuple(
        KeyFigures(k.hash, k.name, k.label, k.limit_usd, k.remaining_usd) for k in seen.keys or []
    )
    return Observation(
        remaining_usd=remaining,
        source=snapshot.source,
        burn_rate_usd_per_hour=rate,
        runway_hours=runway_hours(remaining, rate),
        keys=keys,
    )


def _decide_and_commit(
    settings: Settings, store: Store, now: datetime, seen: _Seen, token: str
) -> CheckResult:
    """Load, decide, commit; decided again on fresh states when another check came first."""
    the_policy = policy(settings)
    window_start = now - timedelta(hours=settings.credit_burn_window_hours)
    # the subjects depend only on what was seen, not on what is loaded
    subjects = subjects_of(_observe(seen, [], 0, now))
    while True:
        loaded = store.load(subjects, window_start, now)
        observed = _observe(seen, loaded.window, loaded.consecutive_failures, now)
        decision = decide(observed, loaded.states, the_policy, now)
        alerts = [alert_for(d, alert_id=_new_id(), now=now) for d in decision.dues]
        cooldowns = [
            Cooldown(a.type.value, a.subject, a.id, the_policy.cooldown_s)
            for a, d in zip(alerts, decision.dues, strict=True)
            if d.sets_cooldown
        ]
        change = _record(seen, observed, decision, now)
        change = replace(change, states=decision.states, alerts=alerts, cooldowns=cooldowns)
        if store.commit(change, loaded, token):
            result = _result(seen, observed, decision, alerts, now, loaded.consecutive_failures)
            return _note_forbidden_once(result, loaded.credits_forbidden)


def _record(seen: _Seen, observed: Observation, decision: Decision, now: datetime) -> Commit:
    """The check's own record: its figures and keys, or its failure."""
    if seen.error is not None:
        # the status turns unknown only once the failures say the balance cannot be seen
        status = Status.UNKNOWN.value if decision.statuses else None
        return Commit(now, status, error=str(seen.error))
    assert seen.snapshot is not None
    extra = {
        "burn_rate_usd_per_hour": _round(observed.burn_rate_usd_per_hour, 6),
        "runway_hours": _round(observed.runway_hours, 2),
    }
    keys = None
    if seen.keys is not None:
        keys = {row.key.hash: row.as_dict() for row in _key_rows(seen.keys, decision)}
    # None when the keys were not listed: the last listing's unreadable keys stand
    unreadable = seen.unreadable if seen.keys is not None else None
    return Commit.success(
        now,
        decision.status.value,
        seen.snapshot.as_dict() | extra,
        keys=keys,
        unreadable=unreadable,
    )


def _key_rows(keys: list[KeyInfo], decision: Decision) -> list[KeyStatus]:
    return [KeyStatus(k, decision.statuses.get(Subject.key(k.hash), Status.OK)) for k in keys]


def _result(
    seen: _Seen,
    observed: Observation,
    decision: Decision,
    alerts: list[Alert],
    now: datetime,
    failures_before: int,
) -> CheckResult:
    if seen.error is not None:
        reason = str(seen.error)
        log.warning("check failed (%d in a row): %s", failures_before + 1, reason)
        return CheckResult(Status.UNKNOWN, now, alerts=alerts, error=reason)
    snapshot = seen.snapshot
    assert snapshot is not None
    note = UNKNOWN_BALANCE_HINT if snapshot.remaining_usd is None else None
    for more in (seen.keys_error, seen.unreadable and unreadable_note(seen.unreadable)):
        if more:
            note = f"{note}; {more}" if note else more
    status = decision.status
    log.info("check %s: %s left (%s)", status.value, snapshot.remaining_usd, snapshot.source)
    return CheckResult(
        status,
        now,
        snapshot,
        alerts=alerts,
        note=note,
        burn_rate_usd_per_hour=observed.burn_rate_usd_per_hour,
        runway_hours=observed.runway_hours,
        keys=_key_rows(seen.keys or [], decision),
        unreadable_keys=list(seen.unreadable),
    )


def _note_forbidden_once(result: CheckResult, before: str) -> CheckResult:
    """A 403 on /credits is said by the first check that meets it, not by every one."""
    forbidden = result.snapshot.credits_forbidden if result.snapshot else None
    if not forbidden or before:
        return result
    note = f"{forbidden}; checked on the key's own limit until then"
    log.warning("%s", note)
    return replace(result, note=f"{result.note}; {note}" if result.note else note)


def _new_id() -> str:
    return uuid.uuid4().hex
