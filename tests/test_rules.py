"""The alert rules as tables: thresholds, hysteresis, cooldown, recovery and the alerts' shape."""

from __future__ import annotations

import ast
import inspect
import json
from datetime import UTC, datetime, timedelta

import pytest

from credit_tasks import rules
from credit_tasks.rules import (
    Alert,
    AlertState,
    AlertType,
    Notice,
    Status,
    Thresholds,
    build_alert,
    classify,
    cooldown_due,
    evaluate,
    is_unknown,
)

T0 = datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC)
COOLDOWN_S = 3600.0
TH = Thresholds(warning_usd=10.0, critical_usd=5.0, recovery_margin=0.1)

OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN
W, C, U, R = AlertType.WARNING, AlertType.CRITICAL, AlertType.UNKNOWN, AlertType.RESOLVED


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def state(status: Status, **sent_minutes_ago: float) -> AlertState:
    """A state at T0, whose alerts of each type were last sent that many minutes before T0."""
    return AlertState(
        status=status,
        since=T0 - minutes(600),
        last_sent={kind: T0 - minutes(ago) for kind, ago in sent_minutes_ago.items()},
    )


@pytest.mark.parametrize(
    ("previous", "remaining_usd", "expected"),
    [
        (OK, 12.0, OK),
        (OK, 10.0, OK),  # at the threshold is not below it
        (OK, 9.99, WARNING),
        (OK, 5.0, WARNING),
        (OK, 4.99, CRITICAL),
        (OK, 0.0, CRITICAL),
        (OK, -2.0, CRITICAL),
        (OK, 10.5, OK),  # the margin only matters when leaving a state
        (WARNING, 10.0, WARNING),
        (WARNING, 10.5, WARNING),
        (WARNING, 11.0, OK),
        (WARNING, 4.0, CRITICAL),
        (CRITICAL, 5.0, CRITICAL),
        (CRITICAL, 5.2, CRITICAL),
        (CRITICAL, 5.5, WARNING),
        (CRITICAL, 10.9, WARNING),
        (CRITICAL, 11.0, OK),
    ],
)
def test_classify_applies_thresholds_with_a_recovery_margin(
    previous: Status, remaining_usd: float, expected: Status
) -> None:
    assert classify(remaining_usd, previous, TH) is expected


@pytest.mark.parametrize(
    ("previous", "remaining_usd", "expected"),
    [(WARNING, 10.0, OK), (CRITICAL, 5.0, WARNING), (WARNING, 9.99, WARNING)],
)
def test_a_zero_margin_recovers_at_the_threshold_itself(
    previous: Status, remaining_usd: float, expected: Status
) -> None:
    th = Thresholds(warning_usd=10.0, critical_usd=5.0, recovery_margin=0.0)
    assert classify(remaining_usd, previous, th) is expected


@pytest.mark.parametrize(
    ("failures", "unknown_after", "key_rejected", "expected"),
    [
        (0, 3, False, False),
        (2, 3, False, False),
        (3, 3, False, True),
        (7, 3, False, True),
        (1, 1, False, True),
        (0, 3, True, True),
        (1, 3, True, True),
    ],
)
def test_is_unknown_after_enough_failures_or_at_once_when_the_key_is_rejected(
    failures: int, unknown_after: int, key_rejected: bool, expected: bool
) -> None:
    assert is_unknown(failures, unknown_after, key_rejected) is expected


@pytest.mark.parametrize(
    ("last_sent", "cooldown_s", "expected"),
    [
        (None, COOLDOWN_S, True),
        (T0 - minutes(1), COOLDOWN_S, False),
        (T0 - timedelta(seconds=3599), COOLDOWN_S, False),
        (T0 - timedelta(seconds=3600), COOLDOWN_S, True),
        (T0 - minutes(300), COOLDOWN_S, True),
        (T0, 0.0, True),
    ],
)
def test_cooldown_due_once_a_full_cooldown_has_passed(
    last_sent: datetime | None, cooldown_s: float, expected: bool
) -> None:
    assert cooldown_due(last_sent, T0, cooldown_s) is expected


@pytest.mark.parametrize(
    ("before", "observed", "notices"),
    [
        pytest.param(state(OK), OK, [], id="ok stays quiet"),
        pytest.param(state(OK), WARNING, [Notice(W)], id="ok to warning"),
        pytest.param(state(OK), CRITICAL, [Notice(C)], id="ok to critical"),
        pytest.param(
            state(WARNING, warning=1),
            CRITICAL,
            [Notice(C)],
            id="warning to critical despite a warning a minute ago",
        ),
        pytest.param(state(WARNING, warning=1), WARNING, [], id="warning within cooldown"),
        pytest.param(state(WARNING, warning=59), WARNING, [], id="warning 59 min after"),
        pytest.param(
            state(WARNING, warning=60),
            WARNING,
            [Notice(W)],
            id="warning repeats after a full cooldown",
        ),
        pytest.param(state(CRITICAL, critical=30), CRITICAL, [], id="critical within cooldown"),
        pytest.param(
            state(CRITICAL, critical=61),
            CRITICAL,
            [Notice(C)],
            id="critical repeats after a full cooldown",
        ),
        pytest.param(state(CRITICAL, critical=1), WARNING, [], id="critical to warning is silent"),
        pytest.param(state(WARNING, warning=1), OK, [Notice(R, resolves=W)], id="warning resolves"),
        pytest.param(
            state(CRITICAL, critical=1), OK, [Notice(R, resolves=C)], id="critical resolves"
        ),
        pytest.param(state(OK), UNKNOWN, [Notice(U)], id="ok to unknown"),
        pytest.param(state(WARNING, warning=1), UNKNOWN, [Notice(U)], id="warning to unknown"),
        pytest.param(state(UNKNOWN, unknown=59), UNKNOWN, [], id="unknown within cooldown"),
        pytest.param(
            state(UNKNOWN, unknown=60),
            UNKNOWN,
            [Notice(U)],
            id="unknown repeats after a full cooldown",
        ),
        pytest.param(
            state(UNKNOWN, unknown=1), OK, [Notice(R, resolves=U)], id="unknown resolves to ok"
        ),
        pytest.param(
            state(UNKNOWN, unknown=1),
            WARNING,
            [Notice(R, resolves=U), Notice(W)],
            id="unknown resolves into warning",
        ),
        pytest.param(
            state(UNKNOWN, unknown=1),
            CRITICAL,
            [Notice(R, resolves=U), Notice(C)],
            id="unknown resolves into critical",
        ),
    ],
)
def test_evaluate_calls_for_the_alerts_of_each_transition(
    before: AlertState, observed: Status, notices: list[Notice]
) -> None:
    after, sent = evaluate(before, observed, T0, COOLDOWN_S)
    assert sent == notices
    assert after.status is observed


@pytest.mark.parametrize(
    ("before", "observed"),
    [(state(OK), WARNING), (state(WARNING, warning=1), CRITICAL), (state(OK), UNKNOWN)],
)
def test_evaluate_records_when_an_alert_was_sent(before: AlertState, observed: Status) -> None:
    after, sent = evaluate(before, observed, T0, COOLDOWN_S)
    assert [n.type for n in sent] == [AlertType(observed.value)]
    assert after.last_sent[observed.value] == T0


def test_evaluate_marks_since_on_a_change_and_keeps_it_on_a_repeat() -> None:
    moved, _ = evaluate(state(OK), WARNING, T0, COOLDOWN_S)
    repeated, sent = evaluate(moved, WARNING, T0 + minutes(90), COOLDOWN_S)
    assert moved.since == T0
    assert sent == [Notice(W)]
    assert repeated.since == T0


def test_evaluate_leaves_the_state_it_was_given_untouched() -> None:
    before = state(WARNING, warning=90)
    snapshot = AlertState.from_json(before.to_json())
    evaluate(before, WARNING, T0, COOLDOWN_S)
    evaluate(before, CRITICAL, T0, COOLDOWN_S)
    assert before == snapshot


def run(start: AlertState, steps: list[tuple[float, Status]]) -> list[list[Notice]]:
    """Feed (minutes after T0, observed status) steps to evaluate; the notices of each step."""
    current, out = start, []
    for at, observed in steps:
        current, notices = evaluate(current, observed, T0 + minutes(at), COOLDOWN_S)
        out.append(notices)
    return out


def test_back_to_ok_resolves_exactly_once() -> None:
    sent = run(AlertState(), [(0, WARNING), (10, OK), (20, OK), (200, OK)])
    assert sent == [[Notice(W)], [Notice(R, resolves=W)], [], []]


def test_a_new_incident_after_a_resolution_alerts_at_once() -> None:
    sent = run(AlertState(), [(0, WARNING), (5, OK), (10, WARNING), (12, OK), (15, CRITICAL)])
    assert sent == [
        [Notice(W)],
        [Notice(R, resolves=W)],
        [Notice(W)],
        [Notice(R, resolves=W)],
        [Notice(C)],
    ]


def test_improving_to_warning_waits_a_full_cooldown_before_the_next_warning() -> None:
    sent = run(AlertState(), [(0, CRITICAL), (30, WARNING), (89, WARNING), (90, WARNING)])
    assert sent == [[Notice(C)], [], [], [Notice(W)]]


def test_a_lasting_warning_repeats_once_per_cooldown() -> None:
    steps = [(m, WARNING) for m in range(0, 181, 30)]
    sent = run(AlertState(), steps)
    assert [i * 30 for i, notices in enumerate(sent) if notices] == [0, 60, 120, 180]
    assert all(notices in ([], [Notice(W)]) for notices in sent)


def test_unknown_is_announced_once_repeated_per_cooldown_and_resolved_once() -> None:
    sent = run(AlertState(), [(0, UNKNOWN), (30, UNKNOWN), (60, UNKNOWN), (70, OK), (80, OK)])
    assert sent == [[Notice(U)], [], [Notice(U)], [Notice(R, resolves=U)], []]


def test_a_falling_then_recovering_balance_alerts_as_the_spec_says() -> None:
    balances = [12.0, 9.0, 10.5, 4.0, 5.2, 5.5, 10.5, 11.0, 10.5]
    current, sent = AlertState(), []
    for i, remaining in enumerate(balances):
        observed = classify(remaining, current.status, TH)
        current, notices = evaluate(current, observed, T0 + minutes(i), COOLDOWN_S)
        sent.append((observed, notices))
    assert sent == [
        (OK, []),
        (WARNING, [Notice(W)]),
        (WARNING, []),
        (CRITICAL, [Notice(C)]),
        (CRITICAL, []),
        (WARNING, []),
        (WARNING, []),
        (OK, [Notice(R, resolves=W)]),
        (OK, []),
    ]


@pytest.mark.parametrize(
    ("notice", "status", "remaining_usd", "threshold_usd", "amounts"),
    [
        (Notice(W), WARNING, 8.0, 10.0, ["$8.00", "$10.00"]),
        (Notice(C), CRITICAL, 3.0, 5.0, ["$3.00", "$5.00"]),
        (Notice(R, resolves=W), OK, 12.0, 10.0, ["$12.00", "$10.00"]),
        (Notice(R, resolves=C), WARNING, 6.0, 5.0, ["$6.00", "$5.00"]),
        (Notice(R, resolves=U), OK, 12.0, None, ["$12.00"]),
        (Notice(U), UNKNOWN, None, None, []),
    ],
)
def test_build_alert_gives_the_threshold_and_a_sentence_with_the_amounts(
    notice: Notice,
    status: Status,
    remaining_usd: float | None,
    threshold_usd: float | None,
    amounts: list[str],
) -> None:
    alert = build_alert(
        notice,
        alert_id="a1",
        subject="account",
        status=status,
        remaining_usd=remaining_usd,
        th=TH,
        now=T0,
    )
    assert alert.threshold_usd == threshold_usd
    assert alert.type is notice.type
    assert alert.resolves == notice.resolves
    assert alert.message.startswith("OpenRouter credits")
    assert alert.message.endswith(".")
    assert "\n" not in alert.message
    for amount in amounts:
        assert amount in alert.message


def test_an_unknown_alert_gives_its_reason() -> None:
    alert = build_alert(
        Notice(U),
        alert_id="a1",
        subject="account",
        status=UNKNOWN,
        remaining_usd=None,
        th=TH,
        now=T0,
        reason="the key was rejected (401)",
    )
    assert "the key was rejected (401)" in alert.message


EXPECTED_KEYS = {
    "id",
    "type",
    "subject",
    "status",
    "remaining_usd",
    "threshold_usd",
    "message",
    "timestamp",
    "resolves",
}


@pytest.mark.parametrize(
    ("notice", "status", "remaining_usd", "expected"),
    [
        (
            Notice(W),
            WARNING,
            8.0,
            {"type": "warning", "status": "warning", "threshold_usd": 10.0, "resolves": None},
        ),
        (
            Notice(C),
            CRITICAL,
            3.0,
            {"type": "critical", "status": "critical", "threshold_usd": 5.0, "resolves": None},
        ),
        (
            Notice(R, resolves=C),
            OK,
            11.0,
            {"type": "resolved", "status": "ok", "threshold_usd": 5.0, "resolves": "critical"},
        ),
        (
            Notice(U),
            UNKNOWN,
            None,
            {"type": "unknown", "status": "unknown", "threshold_usd": None, "resolves": None},
        ),
    ],
)
def test_alert_as_dict_survives_json_with_every_field(
    notice: Notice, status: Status, remaining_usd: float | None, expected: dict[str, object]
) -> None:
    alert = build_alert(
        notice,
        alert_id="id-1",
        subject="key:App",
        status=status,
        remaining_usd=remaining_usd,
        th=TH,
        now=T0,
    )
    data = json.loads(json.dumps(alert.as_dict()))
    assert set(data) == EXPECTED_KEYS
    assert {k: data[k] for k in expected} == expected
    assert data["id"] == "id-1"
    assert data["subject"] == "key:App"
    assert data["remaining_usd"] == remaining_usd
    assert data["message"] == alert.message
    stamp = datetime.fromisoformat(data["timestamp"])
    assert stamp == T0
    assert stamp.utcoffset() == timedelta(0)


def test_an_alert_timestamp_carries_its_utc_offset() -> None:
    alert = Alert(
        id="x",
        type=W,
        subject="account",
        status=WARNING,
        remaining_usd=8.0,
        threshold_usd=10.0,
        message="m",
        timestamp=T0,
    )
    assert alert.as_dict()["timestamp"] == "2026-03-04T12:00:00+00:00"


@pytest.mark.parametrize(
    "original",
    [
        AlertState(),
        AlertState(status=WARNING, since=T0, last_sent={"warning": T0}),
        AlertState(
            status=CRITICAL,
            since=T0 + minutes(5),
            last_sent={"warning": T0, "critical": T0 + minutes(5)},
        ),
        AlertState(status=UNKNOWN, since=T0, last_sent={"unknown": T0, "warning": T0 - minutes(9)}),
        evaluate(AlertState(), CRITICAL, T0, COOLDOWN_S)[0],
    ],
)
def test_alert_state_round_trips_through_json(original: AlertState) -> None:
    restored = AlertState.from_json(json.loads(json.dumps(original.to_json())))
    assert restored == original
    assert restored.status is original.status


def test_a_restored_state_still_honours_the_cooldown() -> None:
    first, _ = evaluate(AlertState(), WARNING, T0, COOLDOWN_S)
    restored = AlertState.from_json(json.loads(json.dumps(first.to_json())))
    assert evaluate(restored, WARNING, T0 + minutes(59), COOLDOWN_S)[1] == []
    assert evaluate(restored, WARNING, T0 + minutes(60), COOLDOWN_S)[1] == [Notice(W)]


FORBIDDEN = {"redis", "httpx", "celery"}


def test_rules_imports_neither_redis_httpx_celery_nor_the_rest_of_the_package() -> None:
    tree = ast.parse(inspect.getsource(rules))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # a relative import would reach modules that do talk to Redis or HTTP
            assert node.level == 0, f"rules.py imports from the package: {ast.unparse(node)}"
            imported.add((node.module or "").split(".")[0])
    assert imported, "no imports found: the source was not read"
    assert not imported & FORBIDDEN
