"""One credit check: fetch, load, decide, commit, and hand back the alerts to deliver.

No decision is made here: `rules.decide` makes it from what was fetched and loaded. Three
Redis round trips: `claim` the lock, `load` the states, silences and window, `commit`
everything. Both faces use it: the `check_credits` task dispatches the alerts to
`send_alert`, the CLI delivers them in-process through the same `notify.deliver`; the alerts
a silence, an ack or the account holds back are recorded and handed back apart, never sent.
What it hands back is a `result.CheckResult`; its worst status is `rules.outcome`'s.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from . import measure
from .alerts import Alert, alert_for
from .client import OpenRouterClient
from .errors import FetchError, KeyRejected
from .history import Point, runway_hours
from .readings import KeyInfo, Snapshot
from .result import CheckResult as CheckResult  # re-exported: what a check hands back
from .result import KeyStatus as KeyStatus
from .result import rounded
from .result import unreadable_note as unreadable_note
from .rules import EXIT_CODES as EXIT_CODES  # re-exported: the exit codes follow the worst
from .rules import (
    RUNWAY,
    SPIKE,
    Decision,
    Failure,
    KeyFigures,
    Observation,
    Policy,
    Status,
    Subject,
    Thresholds,
    decide,
    others_note,
    subjects_of,
    worst_of,
)
from .rules import severity as severity
from .rules import stored_worst as stored_worst
from .settings import Settings
from .store import Commit, Cooldown, Loaded, Store

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
        inhibit_when_account_critical=settings.credit_inhibit_when_account_critical,
        spike_factor=settings.credit_spike_factor,
        spike_min_usd=settings.credit_spike_min_usd,
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
            seen = _fetch(client, now, management=settings.openrouter_management_key is not None)
            result = _decide_and_commit(settings, client, store, now, seen, claim.token)
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
    keys_note: str | None = None  # duplicates ignored, or why the listing stopped early
    keys_complete: bool = False  # every key of the account is named: stale states can go
    listed: bool = False  # the account's keys were listed: a management key, and an answer


def _fetch(client: OpenRouterClient, now: datetime, *, management: bool) -> _Seen:
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
    listing = reading.listing
    if listing.note:
        log.warning("%s", listing.note)
    return _Seen(
        reading.snapshot,
        listing.keys,
        listing.unreadable,
        keys_note=listing.note,
        keys_complete=listing.complete,
        listed=management,
    )


def _skipped(store: Store, now: datetime, note: str) -> CheckResult:
    """A check that did not look: the stored status for the reader, but its worst is unknown."""
    stored = store.current().get("status") or Status.UNKNOWN.value
    log.info("check %s", note)
    return CheckResult(Status(stored), now, skipped=True, note=note)


def _observe(settings: Settings, seen: _Seen, m: measure.Measured, now: datetime) -> Observation:
    """What the rules get: the check's figures, its projection and keys, or its failure."""
    if seen.error is not None:
        rejected = isinstance(seen.error, KeyRejected)
        return Observation(failure=Failure(str(seen.error), m.failures + 1, rejected))
    snapshot = seen.snapshot
    assert snapshot is not None
    remaining = snapshot.remaining_usd
    here = Point(now, remaining, snapshot.usage_usd, "", snapshot.source)
    pace = measure.runway_pace(settings, m.window, here, now) if remaining is not None else None
    rate = pace.usd_per_hour if pace else None
    points = [*measure.spike_window(settings, m.window, now), here]
    keys = tuple(
        KeyFigures(k.hash, k.name, k.label, k.limit_usd, k.remaining_usd) for k in seen.keys or []
    )
    return Observation(
        remaining_usd=remaining,
        source=snapshot.source,
        burn_rate_usd_per_hour=rate,
        runway_hours=runway_hours(remaining, rate),
        burn_span_hours=pace.span_hours if pace else None,
        spike=measure.spike_figures(settings, points, m.usual, m.growth),
        keys=keys,
    )


def _measure(
    settings: Settings, client: OpenRouterClient, seen: _Seen, loaded: Loaded, now: datetime
) -> measure.Measured:
    if seen.error is not None:
        return measure.Measured(loaded.window, loaded.consecutive_failures)
    # a management key that /credits refused (403) is no management key: /activity would refuse
    # it too, and say so on every check, where the 403 is said once
    forbidden = seen.snapshot is not None and seen.snapshot.credits_forbidden is not None
    managed = settings.openrouter_management_key is not None and not forbidden
    return measure.measured(
        settings,
        loaded.window,
        loaded.consecutive_failures,
        loaded.baseline,
        loaded.key_usage,
        seen.keys,
        now,
        (lambda: client.activity(now)) if managed else None,
    )


def _decide_and_commit(
    settings: Settings,
    client: OpenRouterClient,
    store: Store,
    now: datetime,
    seen: _Seen,
    token: str,
) -> CheckResult:
    """Load, decide, commit; decided again on fresh states when another check came first."""
    the_policy = policy(settings)
    window_start = measure.history_start(settings, now)
    # the subjects depend only on what was seen, not on what is loaded: a usual pace of
    # nothing stands in for the one that is loaded, so the spike's state is read too
    would_be = measure.Measured(usual=measure.Baseline(0.0))
    subjects = subjects_of(_observe(settings, seen, would_be, now))
    fetched: dict[str, str] | None = None  # /activity is read once, however many rounds
    managed = settings.openrouter_management_key is not None
    spent = measure.spend(seen.snapshot, seen.keys, managed) if seen.snapshot else None
    while True:
        loaded = store.load(subjects, window_start, now)
        if fetched is not None:
            loaded = replace(loaded, baseline=fetched)
        measured = _measure(settings, client, seen, loaded, now)
        fetched = measured.usual.cache or fetched
        observed = _observe(settings, seen, measured, now)
        decision = decide(observed, loaded.states, the_policy, now, loaded.silencing)
        alerts = [alert_for(d, alert_id=_new_id(), now=now) for d in decision.dues]
        cooldowns = [
            Cooldown(a.type.value, a.subject, a.id, the_policy.cooldown_s)
            for a, d in zip(alerts, decision.dues, strict=True)
            if d.sets_cooldown
        ]
        change = _record(seen, spent, observed, decision, now)
        g = measured.growth
        change = replace(
            change,
            states=decision.states,
            alerts=alerts,
            cooldowns=cooldowns,
            acks_ended=[str(s) for s in decision.acks_ended],
            silences_ended=list(decision.silences_ended),
            baseline=fetched,
            usage_samples=g.samples,
            # only a listing that named every key says which keys are gone
            usage_removed=g.removed if seen.keys_complete else [],
            key_daily=g.daily,
        )
        if store.commit(change, loaded, token):
            result = _result(seen, observed, decision, alerts, now, loaded.consecutive_failures)
            result = _note_forbidden_once(result, loaded.credits_forbidden)
            if spent is None:
                return result
            # the spike's note says why there is no spike alert: no usual pace to compare with
            return replace(
                result,
                note="; ".join(n for n in (result.note, measured.usual.note) if n) or None,
                spend=spent,
                spike_status=decision.statuses.get(SPIKE),
            )


def _record(
    seen: _Seen,
    spent: measure.Spend | None,
    observed: Observation,
    decision: Decision,
    now: datetime,
) -> Commit:
    """The check's own record: its figures and keys, or its failure."""
    if seen.error is not None:
        # the status turns unknown only once the failures say the balance cannot be seen
        status = Status.UNKNOWN.value if decision.statuses else None
        return Commit(now, status, error=str(seen.error))
    assert seen.snapshot is not None and spent is not None
    spike = observed.spike
    key_statuses = [s for subject, s in decision.statuses.items() if subject.kind == "key"]
    extra = {
        "burn_rate_usd_per_hour": rounded(observed.burn_rate_usd_per_hour, 6),
        "runway_hours": rounded(observed.runway_hours, 2),
        # what `status` exits with, as `check` did
        "worst_status": worst_of([decision.status, *decision.statuses.values()]).value,
        "worst_note": others_note(
            decision.statuses.get(RUNWAY), key_statuses, decision.statuses.get(SPIKE)
        ),
        "burn_span_hours": rounded(observed.burn_span_hours, 2),
        "spend_today_usd": spent.today_usd,
        "spend_week_usd": spent.week_usd,
        "spend_month_usd": spent.month_usd,
        "spike_window_spend_usd": rounded(spike.window_spend_usd, 6) if spike else None,
        "spike_baseline_usd_per_hour": rounded(spike.baseline_usd_per_hour, 6) if spike else None,
    }
    keys = None
    if seen.keys is not None:
        keys = {row.key.hash: row.as_dict() for row in _key_rows(seen.keys, decision)}
    # None when the keys were not listed: the last listing's unreadable keys stand
    unreadable = seen.unreadable if seen.keys is not None else None
    # a listing that named every key lets the states of deleted or disabled keys go
    keep = None
    if seen.keys is not None and seen.keys_complete:
        keep = sorted({k.hash for k in seen.keys} | set(seen.unreadable))
    return Commit.success(
        now,
        decision.status.value,
        seen.snapshot.as_dict() | extra,
        keys=keys,
        unreadable=unreadable,
        keep_keys=keep,
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
    held = [a for a in alerts if not a.delivers]
    alerts = [a for a in alerts if a.delivers]
    if seen.error is not None:
        reason = str(seen.error)
        log.warning("check failed (%d in a row): %s", failures_before + 1, reason)
        return CheckResult(Status.UNKNOWN, now, alerts=alerts, held=held, error=reason)
    snapshot = seen.snapshot
    assert snapshot is not None
    note = UNKNOWN_BALANCE_HINT if snapshot.remaining_usd is None else None
    unreadable = seen.unreadable and unreadable_note(seen.unreadable)
    for more in (seen.keys_error, unreadable, seen.keys_note):
        if more:
            note = f"{note}; {more}" if note else more
    status = decision.status
    log.info("check %s: %s left (%s)", status.value, snapshot.remaining_usd, snapshot.source)
    return CheckResult(
        status,
        now,
        snapshot,
        alerts=alerts,
        held=held,
        note=note,
        burn_rate_usd_per_hour=observed.burn_rate_usd_per_hour,
        runway_hours=observed.runway_hours,
        keys=_key_rows(seen.keys or [], decision),
        unreadable_keys=list(seen.unreadable),
        keys_listed=seen.listed,
        runway_status=decision.statuses.get(RUNWAY),
        burn_span_hours=observed.burn_span_hours,
        spike=observed.spike,
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
