"""The one decision a check makes: each subject judged once, its state moved, alerts held back.

`decide` takes everything a check observed, the stored alert states, the policy and the
team's silences and acks, and returns everything decided; the store commits it atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from .silencing import Silencing
from .states import (
    AlertState,
    AlertType,
    Notice,
    Status,
    Thresholds,
    as_runway,
    classify,
    classify_runway,
    classify_spike,
    evaluate,
    is_unknown,
    key_thresholds,
)
from .subjects import ACCOUNT, RUNWAY, SPIKE, About, KeyFigures, Observation, Policy, Subject

# Alerts of keys and the runway that an account critical (or a 402) stands for.
_INHIBITED = {AlertType.WARNING, AlertType.CRITICAL, AlertType.RUNWAY}
PAYMENT_REQUIRED = "payment_required"  # the source of a 402: the money is gone


@dataclass(frozen=True)
class Due:
    """An alert the decision calls for, with everything its message needs."""

    subject: Subject
    notice: Notice
    status: Status
    about: About
    thresholds: Thresholds
    percents: tuple[float, float] | None = None  # a key's (warning, critical) percents
    threshold_hours: float | None = None  # the runway's threshold
    silenced_by: str | None = None  # the id of the silence that covers it
    acked_by: str | None = None  # the id of the acknowledged alert whose repeat it is
    inhibited_by: str | None = None  # "account": the account's own alert says it all

    @property
    def sets_cooldown(self) -> bool:
        """Whether a marker should hold this type back for the cooldown (a `resolved` never)."""
        return self.notice.type is not AlertType.RESOLVED

    @property
    def delivers(self) -> bool:
        """Whether it is published and sent; a held alert is only recorded."""
        return self.silenced_by is None and self.acked_by is None and self.inhibited_by is None


@dataclass(frozen=True)
class Decision:
    """What a check decided: each subject's next state and status, and the alerts due."""

    states: dict[Subject, AlertState]
    statuses: dict[Subject, Status]
    dues: tuple[Due, ...] = ()
    acks_ended: tuple[Subject, ...] = ()  # acks whose episode is over: the store drops them
    silences_ended: tuple[str, ...] = ()  # ids of silences past their end

    @property
    def status(self) -> Status:
        """The account's status; unknown when the check could not decide it."""
        return self.statuses.get(ACCOUNT, Status.UNKNOWN)


def subjects_of(observed: Observation) -> list[Subject]:
    """The subjects whose stored states a decision on `observed` reads."""
    if observed.failure is not None:
        return [ACCOUNT]
    subjects = [ACCOUNT, RUNWAY] if observed.remaining_usd is not None else []
    if observed.spike is not None:
        subjects.append(SPIKE)
    return subjects + [Subject.key(k.hash) for k in distinct(observed.keys) if k.capped]


def distinct(keys: tuple[KeyFigures, ...]) -> list[KeyFigures]:
    """One figure per hash, in first-seen order: of two copies, the one with less left."""
    chosen: dict[str, KeyFigures] = {}
    for key in keys:
        kept = chosen.get(key.hash)
        if kept is None or (
            key.remaining_usd is not None
            and (kept.remaining_usd is None or key.remaining_usd < kept.remaining_usd)
        ):
            chosen[key.hash] = key
    return list(chosen.values())


@dataclass(frozen=True)
class _Judged:
    subject: Subject
    status: Status
    about: About
    thresholds: Thresholds
    percents: tuple[float, float] | None = None
    threshold_hours: float | None = None


def decide(
    observed: Observation,
    states: Mapping[Subject, AlertState],
    policy: Policy,
    now: datetime,
    silencing: Silencing | None = None,
) -> Decision:
    """The whole decision of one check: next states, statuses and the alerts due.

    A silenced, acknowledged or inhibited alert is decided like any other (its state moves,
    its cooldown runs) and marked, so it is recorded but neither published nor sent.
    """
    silencing = silencing or Silencing()
    next_states: dict[Subject, AlertState] = {}
    statuses: dict[Subject, Status] = {}
    dues: list[Due] = []
    repeats: set[Subject] = set()
    for judged in _judge(observed, states, policy):
        if judged.subject in next_states:
            continue  # one judgement, so at most one alert of a type, per subject per check
        previous = states.get(judged.subject, AlertState())
        state, notices = evaluate(previous, judged.status, now, policy.cooldown_s)
        next_states[judged.subject] = state
        statuses[judged.subject] = judged.status
        if judged.status is previous.status:
            repeats.add(judged.subject)
        if judged.threshold_hours is not None:
            notices = as_runway(notices)
        elif judged.subject == SPIKE:
            notices = as_runway(notices, AlertType.SPIKE)
        dues.extend(
            Due(
                judged.subject,
                n,
                judged.status,
                judged.about,
                judged.thresholds,
                judged.percents,
                judged.threshold_hours,
            )
            for n in notices
        )
    account_down = policy.inhibit_when_account_critical and (
        statuses.get(ACCOUNT) is Status.CRITICAL or observed.source == PAYMENT_REQUIRED
    )
    held = [_held(d, d.subject in repeats, states, silencing, account_down, now) for d in dues]
    acks_ended = tuple(
        subject
        for subject, ack in silencing.acks.items()
        if subject in next_states and next_states[subject].since != ack.since
    )
    silences_ended = tuple(s.id for s in silencing.silences if not s.active(now))
    return Decision(next_states, statuses, tuple(held), acks_ended, silences_ended)


def _held(
    due: Due,
    repeat: bool,
    states: Mapping[Subject, AlertState],
    silencing: Silencing,
    account_down: bool,
    now: datetime,
) -> Due:
    """`due`, marked with what holds it back: a silence, an ack of its episode, the account."""
    kind = due.notice.type
    silence = next((s for s in silencing.silences if s.covers(due.subject, kind, now)), None)
    ack = silencing.acks.get(due.subject)
    acked = (
        repeat
        and kind is not AlertType.RESOLVED
        and ack is not None
        and ack.since == states.get(due.subject, AlertState()).since
    )
    inhibited = account_down and kind in _INHIBITED and due.subject.kind in ("key", "runway")
    return replace(
        due,
        silenced_by=silence.id if silence else None,
        acked_by=ack.alert_id if acked and ack else None,
        inhibited_by=str(ACCOUNT) if inhibited else None,
    )


def _judge(
    observed: Observation, states: Mapping[Subject, AlertState], policy: Policy
) -> list[_Judged]:
    """The status each subject is observed in, with the figures and thresholds behind it."""
    th = policy.thresholds

    def previous(subject: Subject) -> Status:
        return states.get(subject, AlertState()).status

    failure = observed.failure
    if failure is not None:
        if not is_unknown(failure.consecutive, policy.unknown_after_failures, failure.key_rejected):
            return []
        return [_Judged(ACCOUNT, Status.UNKNOWN, About(reason=failure.reason), th)]
    judged: list[_Judged] = []
    remaining = observed.remaining_usd
    if remaining is not None:
        about = About(
            remaining_usd=remaining,
            source=observed.source,
            runway_hours=observed.runway_hours,
            window_hours=observed.burn_span_hours or policy.window_hours,
        )
        judged.append(_Judged(ACCOUNT, classify(remaining, previous(ACCOUNT), th), about, th))
        # a projection needs two points with spend between them
        hours = policy.runway_warning_hours
        if observed.burn_rate_usd_per_hour is not None and hours > 0:
            status = classify_runway(
                observed.runway_hours, previous(RUNWAY), hours, th.recovery_margin
            )
            judged.append(_Judged(RUNWAY, status, about, th, threshold_hours=hours))
    spike = observed.spike
    if spike is not None and policy.spike_factor > 0:
        line = spike.line_usd(policy.spike_factor, policy.spike_min_usd)
        sth = Thresholds(warning_usd=line, critical_usd=0.0, recovery_margin=th.recovery_margin)
        status = classify_spike(spike.window_spend_usd, line, previous(SPIKE), th.recovery_margin)
        spike_about = About(subject=str(SPIKE), remaining_usd=remaining, spike=spike)
        judged.append(_Judged(SPIKE, status, spike_about, sth))
    percents = (policy.key_warning_percent, policy.key_critical_percent)
    for key in distinct(observed.keys):
        if key.limit_usd is None or key.remaining_usd is None:
            continue
        subject = Subject.key(key.hash)
        kth = key_thresholds(key.limit_usd, *percents, th.recovery_margin)
        key_about = About(
            subject=str(subject),
            remaining_usd=key.remaining_usd,
            key_name=key.name,
            key_label=key.label,
            limit_usd=key.limit_usd,
        )
        status = classify(key.remaining_usd, previous(subject), kth)
        judged.append(_Judged(subject, status, key_about, kth, percents=percents))
    return judged
