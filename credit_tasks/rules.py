"""Alert rules: states, recovery, cooldown, runway, and the one decision a check makes.

Pure decisions: no Redis, HTTP or Celery here, and the current time is an argument, so
every rule is a row in a table test. `decide` takes everything a check observed, the stored
alert states, the policy and the team's silences and acks, and returns everything decided;
the store commits it atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
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
# Alerts of keys and the runway that an account critical (or a 402) stands for.
_INHIBITED = {AlertType.WARNING, AlertType.CRITICAL, AlertType.RUNWAY}
PAYMENT_REQUIRED = "payment_required"  # the source of a 402: the money is gone


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


@dataclass(frozen=True, order=True)
class Subject:
    """What an alert state is about: the account, its runway, or one key (by hash).

    Stored and published as `account`, `account:runway` or `key:<hash>`; this class is the
    one place that writes and reads those strings.
    """

    kind: str  # "account", "runway", "spike" or "key"
    key_hash: str = ""

    def __str__(self) -> str:
        return f"key:{self.key_hash}" if self.kind == "key" else _SUBJECT_NAMES[self.kind]

    @classmethod
    def key(cls, key_hash: str) -> Subject:
        return cls("key", key_hash)

    @classmethod
    def parse(cls, text: str) -> Subject:
        if text.startswith("key:") and len(text) > len("key:"):
            return cls.key(text[len("key:") :])
        for kind, name in _SUBJECT_NAMES.items():
            if text == name:
                return cls(kind)
        raise ValueError(f"not an alert subject: {text!r}")


_SUBJECT_NAMES = {"account": "account", "runway": "account:runway", "spike": "account:spike"}
ACCOUNT = Subject("account")
RUNWAY = Subject("runway")  # the runway's own alert state; its alerts are about the account
SPIKE = Subject("spike")


@dataclass(frozen=True)
class KeySpend:
    """One key's spend within the spike window."""

    hash: str
    name: str
    spend_usd: float


@dataclass(frozen=True)
class SpikeFigures:
    """The spend of the last window, the usual hourly pace, and the keys that grew most."""

    window_minutes: float
    window_spend_usd: float
    baseline_usd_per_hour: float
    top_keys: tuple[KeySpend, ...] = ()

    @property
    def usual_usd(self) -> float:
        """What the usual pace spends in a window this long."""
        return self.baseline_usd_per_hour * self.window_minutes / 60

    @property
    def ratio(self) -> float | None:
        """The window's spend over the usual; None when nothing is usually spent."""
        return self.window_spend_usd / self.usual_usd if self.usual_usd > 0 else None

    def line_usd(self, factor: float, min_usd: float) -> float:
        """The spend where a spike begins: `factor` times the usual, and `min_usd` at least."""
        return max(factor * self.usual_usd, min_usd)


@dataclass(frozen=True)
class About:
    """What an alert is about, with the figures its message quotes."""

    subject: str = "account"  # str(Subject)
    remaining_usd: float | None = None
    source: str | None = None
    reason: str | None = None  # why the balance cannot be seen
    runway_hours: float | None = None
    window_hours: float | None = None
    key_name: str | None = None
    key_label: str | None = None
    limit_usd: float | None = None
    spike: SpikeFigures | None = None


@dataclass(frozen=True)
class KeyFigures:
    """One key of the account as the rules see it."""

    hash: str
    name: str
    label: str
    limit_usd: float | None
    remaining_usd: float | None

    @property
    def capped(self) -> bool:
        return self.limit_usd is not None and self.remaining_usd is not None


@dataclass(frozen=True)
class Failure:
    """A check that could not read the balance: why, and how many failed in a row with it."""

    reason: str
    consecutive: int
    key_rejected: bool = False


@dataclass(frozen=True)
class Observation:
    """Everything one check saw: the balance, its projection and the keys, or its failure."""

    remaining_usd: float | None = None  # None: no source can see the balance
    source: str | None = None
    burn_rate_usd_per_hour: float | None = None  # None: too short a history to project from
    runway_hours: float | None = None
    burn_span_hours: float | None = None  # the history the burn rate was really measured over
    spike: SpikeFigures | None = None  # None: no baseline to measure a spike against
    keys: tuple[KeyFigures, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True)
class Policy:
    """The team's settings that the decision applies."""

    thresholds: Thresholds
    cooldown_s: float
    key_warning_percent: float = 20.0
    key_critical_percent: float = 5.0
    runway_warning_hours: float = 48.0  # 0: no runway alerts
    window_hours: float = 24.0
    unknown_after_failures: int = 3
    inhibit_when_account_critical: bool = True  # the account's alert stands for its keys'
    spike_factor: float = 5.0  # 0: no spike alerts
    spike_min_usd: float = 1.0


ANY_SUBJECT = "*"
ANY_TYPE = "any"


@dataclass(frozen=True)
class Silence:
    """The team's "we know": alerts of `type` about `subject` are only recorded until `ends_at`.

    `subject` is a stored subject string (`account:runway` for the runway) or `*`; `type` an
    alert type or `any`.
    """

    id: str
    subject: str
    type: str
    ends_at: datetime
    reason: str = ""
    created_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return now < self.ends_at

    def covers(self, subject: Subject, alert_type: AlertType, now: datetime) -> bool:
        return (
            self.active(now)
            and self.subject in (ANY_SUBJECT, str(subject))
            and self.type in (ANY_TYPE, alert_type.value)
        )


@dataclass(frozen=True)
class Ack:
    """An acknowledged condition: no repeats about `subject` while its state holds since `since`."""

    subject: Subject
    since: datetime  # the state's `since`: it names the episode
    alert_id: str
    reason: str = ""
    acked_at: datetime | None = None


@dataclass(frozen=True)
class Silencing:
    """The team's silences and acks, as loaded with the states."""

    silences: tuple[Silence, ...] = ()
    acks: Mapping[Subject, Ack] = field(default_factory=dict)


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
