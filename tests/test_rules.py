"""The alert rules as tables: thresholds, hysteresis, cooldown, recovery and the alerts' shape."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from credit_tasks import rules
from credit_tasks.rules import (
    AlertState,
    AlertType,
    Notice,
    Status,
    Thresholds,
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


FORBIDDEN = {"redis", "httpx", "celery", "apprise"}


def rules_modules() -> list[ModuleType]:
    """The rules package and every module in it."""
    names = [info.name for info in pkgutil.walk_packages(rules.__path__, f"{rules.__name__}.")]
    return [rules, *(importlib.import_module(name) for name in names)]


def in_rules(name: str) -> bool:
    return name == rules.__name__ or name.startswith(f"{rules.__name__}.")


def test_rules_imports_neither_redis_httpx_celery_nor_the_rest_of_the_package() -> None:
    modules = rules_modules()
    assert {m.__name__.rsplit(".", 1)[-1] for m in modules} >= {
        "states",
        "subjects",
        "silencing",
        "decision",
    }, "the package's modules were not found"
    for module in modules:
        tree = ast.parse(inspect.getsource(module))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # `from .states import ...` stays in the package; `from ..x` would reach
                # modules that do talk to Redis or HTTP
                assert node.level <= 1, f"{module.__name__} reaches out: {ast.unparse(node)}"
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top != "credit_tasks" or in_rules(name), (
                    f"{module.__name__} imports {name}, outside the rules package"
                )
                imported.add(top)
        assert imported, f"no imports found in {module.__name__}: the source was not read"
        assert not imported & FORBIDDEN, f"{module.__name__} imports {imported & FORBIDDEN}"


@pytest.mark.parametrize(
    ("runway_hours", "previous", "expected"),
    [
        (None, OK, OK),  # no spend, no projection: nothing burns
        (None, WARNING, OK),
        (30.0, OK, WARNING),
        (47.9, OK, WARNING),
        (48.0, OK, OK),
        (50.0, WARNING, WARNING),  # inside the margin: stays
        (52.81, WARNING, OK),  # just past 48 h * 1.1
        (60.0, WARNING, OK),
    ],
)
def test_a_short_runway_warns_and_recovers_past_the_margin(
    runway_hours: float | None, previous: Status, expected: Status
) -> None:
    assert rules.classify_runway(runway_hours, previous, 48.0, 0.1) is expected


def test_runway_notices_are_runway_alerts_and_their_resolution() -> None:
    _, entered = evaluate(AlertState(), WARNING, T0, COOLDOWN_S)
    assert rules.as_runway(entered) == [Notice(AlertType.RUNWAY)]
    back, _ = evaluate(AlertState(), WARNING, T0, COOLDOWN_S)
    _, left = evaluate(back, OK, T0 + minutes(5), COOLDOWN_S)
    assert rules.as_runway(left) == [Notice(R, resolves=AlertType.RUNWAY)]


@pytest.mark.parametrize(
    ("limit_usd", "remaining_usd", "expected"),
    [(10.0, 5.0, OK), (10.0, 1.9, WARNING), (10.0, 0.4, CRITICAL), (500.0, 90.0, WARNING)],
)
def test_key_thresholds_are_percents_of_the_limit(
    limit_usd: float, remaining_usd: float, expected: Status
) -> None:
    th = rules.key_thresholds(limit_usd, 20.0, 5.0, 0.1)
    assert classify(remaining_usd, OK, th) is expected


# The whole decision of one check, as a table: what was observed, what was stored, and
# what must come out (each subject's status, and the alerts due as subject/type/resolves).

POLICY = rules.Policy(
    thresholds=TH,
    cooldown_s=COOLDOWN_S,
    key_warning_percent=20.0,
    key_critical_percent=5.0,
    runway_warning_hours=48.0,
    window_hours=24.0,
    unknown_after_failures=3,
    spike_factor=5.0,
    spike_min_usd=1.0,
)
ACC, RUN, SPK = rules.ACCOUNT, rules.RUNWAY, rules.SPIKE
KEY = rules.Subject.key("h1")
SPIKE = AlertType.SPIKE
BATCH = (rules.KeySpend("hb", "batch-agent", 13.9),)


def spike(spend_usd: float, usual_usd_per_hour: float = 0.51) -> rules.SpikeFigures:
    """The last hour's spend against a usual hourly pace: the line is 5 × usual, $1 at least."""
    return rules.SpikeFigures(60.0, spend_usd, usual_usd_per_hour, BATCH)


def seen(remaining: float | None = 50.0, **more: object) -> rules.Observation:
    return rules.Observation(remaining_usd=remaining, source="account", **more)  # type: ignore[arg-type]


def key(remaining: float | None, limit: float | None = 10.0) -> rules.KeyFigures:
    return rules.KeyFigures("h1", "batch", "sk-or-v1-abc...123", limit, remaining)


def failed(consecutive: int, rejected: bool = False) -> rules.Observation:
    return rules.Observation(failure=rules.Failure("timeout", consecutive, rejected))


@pytest.mark.parametrize(
    ("observed", "stored", "statuses", "dues"),
    [
        pytest.param(seen(50.0), {}, {ACC: OK}, [], id="account ok stays quiet"),
        pytest.param(seen(8.0), {}, {ACC: WARNING}, [("account", W, None)], id="ok to warning"),
        pytest.param(
            seen(2.0), {ACC: state(WARNING, warning=5)}, {ACC: CRITICAL},
            [("account", C, None)], id="warning to critical",
        ),
        pytest.param(
            seen(50.0), {ACC: state(CRITICAL, critical=5)}, {ACC: OK},
            [("account", R, C)], id="critical resolves",
        ),
        pytest.param(
            seen(8.0), {ACC: state(WARNING, warning=30)}, {ACC: WARNING}, [],
            id="a warning within its cooldown is quiet",
        ),
        pytest.param(
            seen(8.0), {ACC: state(WARNING, warning=61)}, {ACC: WARNING},
            [("account", W, None)], id="a warning repeats after its cooldown",
        ),
        pytest.param(
            seen(0.0), {}, {ACC: CRITICAL}, [("account", C, None)], id="nothing left is critical"
        ),
        pytest.param(
            seen(50.0, burn_rate_usd_per_hour=2.0, runway_hours=25.0), {},
            {ACC: OK, RUN: WARNING}, [("account:runway", AlertType.RUNWAY, None)],
            id="a short runway alerts as runway",
        ),
        pytest.param(
            seen(50.0, burn_rate_usd_per_hour=0.5, runway_hours=100.0),
            {RUN: state(WARNING, warning=10)}, {ACC: OK, RUN: OK},
            [("account:runway", R, AlertType.RUNWAY)], id="the runway resolves",
        ),
        pytest.param(
            seen(50.0, burn_rate_usd_per_hour=0.0), {RUN: state(WARNING, warning=10)},
            {ACC: OK, RUN: OK}, [("account:runway", R, AlertType.RUNWAY)],
            id="no spend at all ends a runway alert",
        ),
        pytest.param(
            seen(50.0), {RUN: state(WARNING, warning=10)}, {ACC: OK}, [],
            id="no projection leaves the runway as it was",
        ),
        pytest.param(
            seen(50.0, keys=(key(0.4),)), {}, {ACC: OK, KEY: CRITICAL},
            [("key:h1", C, None)], id="a key under 5% of its limit is critical",
        ),
        pytest.param(
            seen(50.0, keys=(key(-0.5),)), {}, {ACC: OK, KEY: CRITICAL},
            [("key:h1", C, None)], id="an overspent key is critical",
        ),
        pytest.param(
            seen(50.0, keys=(key(1.5),)), {}, {ACC: OK, KEY: WARNING},
            [("key:h1", W, None)], id="a key under 20% of its limit warns",
        ),
        pytest.param(
            seen(50.0, keys=(key(9.0),)), {KEY: state(CRITICAL, critical=3)},
            {ACC: OK, KEY: OK}, [("key:h1", R, C)], id="a raised key limit resolves",
        ),
        pytest.param(
            seen(50.0, keys=(key(None, None),)), {}, {ACC: OK}, [],
            id="an uncapped key is not judged",
        ),
        pytest.param(
            seen(None, keys=(key(0.1),)), {}, {KEY: CRITICAL}, [("key:h1", C, None)],
            id="keys are judged while the balance is not visible",
        ),
        pytest.param(failed(2), {}, {}, [], id="two failures decide nothing"),
        pytest.param(
            failed(3), {}, {ACC: UNKNOWN}, [("account", U, None)], id="three failures are unknown"
        ),
        pytest.param(
            failed(1, rejected=True), {}, {ACC: UNKNOWN}, [("account", U, None)],
            id="a rejected key is unknown at once",
        ),
        pytest.param(
            seen(50.0), {ACC: state(UNKNOWN, unknown=5)}, {ACC: OK}, [("account", R, U)],
            id="seeing again resolves unknown",
        ),
        pytest.param(
            seen(50.0, spike=spike(14.2)), {}, {ACC: OK, SPK: WARNING},
            [("account:spike", SPIKE, None)], id="28 times the usual is a spike",
        ),
        pytest.param(
            seen(50.0, spike=spike(2.5)), {}, {ACC: OK, SPK: OK}, [],
            id="under 5 times the usual is no spike",
        ),
        pytest.param(
            seen(50.0, spike=spike(0.9, 0.01)), {}, {ACC: OK, SPK: OK}, [],
            id="90 times the usual but under $1 is no spike",
        ),
        pytest.param(
            seen(50.0, spike=spike(1.0, 0.0)), {}, {ACC: OK, SPK: WARNING},
            [("account:spike", SPIKE, None)], id="$1 where nothing is usually spent is a spike",
        ),
        pytest.param(
            seen(50.0, spike=spike(2.4)), {SPK: state(WARNING, warning=10)},
            {ACC: OK, SPK: WARNING}, [], id="a spike inside the margin lasts, quietly",
        ),
        pytest.param(
            seen(50.0, spike=spike(14.2)), {SPK: state(WARNING, warning=61)},
            {ACC: OK, SPK: WARNING}, [("account:spike", SPIKE, None)],
            id="a lasting spike repeats after the cooldown",
        ),
        pytest.param(
            seen(50.0, spike=spike(2.3)), {SPK: state(WARNING, warning=10)},
            {ACC: OK, SPK: OK}, [("account:spike", R, SPIKE)],
            id="a spike resolves below the line over 1 + margin",
        ),
        pytest.param(
            seen(None, spike=spike(14.2)), {}, {SPK: WARNING}, [("account:spike", SPIKE, None)],
            id="a spike is judged while the balance is not visible",
        ),
        pytest.param(
            seen(50.0), {SPK: state(WARNING, warning=10)}, {ACC: OK}, [],
            id="no usual pace leaves the spike as it was",
        ),
    ],
)  # fmt: skip
def test_decide_gives_each_subject_its_status_and_the_alerts_due(
    observed: rules.Observation,
    stored: dict[rules.Subject, AlertState],
    statuses: dict[rules.Subject, Status],
    dues: list[tuple[str, AlertType, AlertType | None]],
) -> None:
    decision = rules.decide(observed, stored, POLICY, T0)
    assert decision.statuses == statuses
    assert [(str(d.subject), d.notice.type, d.notice.resolves) for d in decision.dues] == dues
    assert set(decision.states) == set(statuses)
    assert all(d.sets_cooldown is (d.notice.type is not R) for d in decision.dues)


def test_decide_reads_only_the_subjects_it_names() -> None:
    observed = seen(8.0, keys=(key(0.4), key(None, None)))
    assert rules.subjects_of(observed) == [ACC, RUN, KEY]
    assert rules.subjects_of(failed(1)) == [ACC]
    assert rules.subjects_of(seen(None)) == []
    assert rules.subjects_of(seen(8.0, spike=spike(0.0))) == [ACC, RUN, SPK]


def test_a_spike_factor_of_0_turns_spike_alerts_off() -> None:
    off = replace(POLICY, spike_factor=0.0)
    decision = rules.decide(seen(50.0, spike=spike(100.0)), {}, off, T0)
    assert (decision.statuses, decision.dues) == ({ACC: OK}, ())


def test_a_spike_alert_carries_its_line_and_figures() -> None:
    [due] = rules.decide(seen(50.0, spike=spike(14.2)), {}, POLICY, T0).dues
    assert due.about.subject == "account:spike"
    assert due.about.spike == spike(14.2)
    assert due.thresholds.warning_usd == pytest.approx(2.55)  # 5 × $0.51


@pytest.mark.parametrize(
    ("spend_usd", "previous", "expected"),
    [
        (0.0, OK, OK),
        (0.0, WARNING, OK),
        (2.54, OK, OK),
        (2.55, OK, WARNING),  # at the line is a spike
        (2.32, WARNING, WARNING),  # 2.55 / 1.1 = 2.318...: inside the margin
        (2.31, WARNING, OK),
    ],
)
def test_classify_spike_applies_the_line_with_a_recovery_margin(
    spend_usd: float, previous: Status, expected: Status
) -> None:
    assert rules.classify_spike(spend_usd, 2.55, previous, 0.1) is expected


def test_a_decision_on_the_states_it_produced_is_quiet_until_the_cooldown() -> None:
    first = rules.decide(seen(2.0), {}, POLICY, T0)
    again = rules.decide(seen(2.0), first.states, POLICY, T0 + minutes(59))
    later = rules.decide(seen(2.0), first.states, POLICY, T0 + minutes(60))
    assert (len(first.dues), len(again.dues), len(later.dues)) == (1, 0, 1)


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("account", rules.Subject("account")),
        ("account:runway", rules.Subject("runway")),
        ("account:spike", rules.Subject("spike")),
        ("key:abc123", rules.Subject.key("abc123")),
    ],
)
def test_a_subject_formats_and_parses_its_stored_string(text: str, subject: rules.Subject) -> None:
    assert str(subject) == text
    assert rules.Subject.parse(text) == subject


@pytest.mark.parametrize("text", ["", "key:", "accounts", "runway"])
def test_an_unknown_subject_string_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an alert subject"):
        rules.Subject.parse(text)


@pytest.mark.parametrize(
    "th",
    [
        Thresholds(warning_usd=10.0, critical_usd=0.0),
        Thresholds(warning_usd=0.0, critical_usd=0.0),
        rules.key_thresholds(0.0, 20.0, 5.0, 0.1),  # a key capped at $0
    ],
)
@pytest.mark.parametrize("remaining_usd", [0.0, -0.5])
def test_nothing_left_or_less_is_critical_whatever_the_thresholds(
    th: Thresholds, remaining_usd: float
) -> None:
    assert classify(remaining_usd, OK, th) is CRITICAL


@pytest.mark.parametrize(
    ("th", "remaining_usd", "expected"),
    [
        pytest.param(TH, 20.4 - 10.4, OK, id="20.4 - 10.4 is $10.00, not below $10"),
        pytest.param(TH, 10.4 - 5.4 - 0.0000001, WARNING, id="$5.00 as shown is not below $5"),
        pytest.param(TH, 9.994, WARNING, id="$9.99 as shown is below $10"),
        pytest.param(
            rules.key_thresholds(20.4, 20.0, 5.0, 0.1), 20.4 - 16.32, OK,
            id="a key's 20% of $20.40 is $4.08, and $4.08 is left",
        ),
        pytest.param(
            Thresholds(warning_usd=10.0, critical_usd=0.0), 0.004, CRITICAL,
            id="under a cent shows as $0.00: nothing left",
        ),
        pytest.param(
            Thresholds(warning_usd=10.0, critical_usd=0.0), 0.01, WARNING,
            id="a cent left is not nothing",
        ),
        pytest.param(rules.key_thresholds(10.0, 20.0, 0.0, 0.1), 0.0, CRITICAL, id="key at 0%"),
    ],
)  # fmt: skip
def test_money_is_compared_in_cents_as_the_messages_show_it(
    th: Thresholds, remaining_usd: float, expected: Status
) -> None:
    assert classify(remaining_usd, OK, th) is expected


def test_a_critical_at_the_line_recovers_in_cents_too() -> None:
    # 5 * 1.1 is 5.500000000000001 in floats: $5.50 is the exit, and $5.50 leaves
    assert classify(5.5, CRITICAL, TH) is WARNING


def twin(remaining: float) -> rules.KeyFigures:
    return rules.KeyFigures("h1", "twin", "sk-or-v1-abc...123", 10.0, remaining)


def test_two_copies_of_one_key_are_judged_once_by_the_copy_with_less_left() -> None:
    observed = seen(50.0, keys=(twin(9.0), twin(0.1), twin(5.0)))
    decision = rules.decide(observed, {}, POLICY, T0)
    assert rules.subjects_of(observed) == [ACC, RUN, KEY]
    assert decision.statuses == {ACC: OK, KEY: CRITICAL}
    assert [(str(d.subject), d.notice.type) for d in decision.dues] == [("key:h1", C)]
    assert decision.dues[0].about.remaining_usd == 0.1


def test_two_copies_that_disagree_raise_nothing_more_within_the_cooldown() -> None:
    states: dict[rules.Subject, AlertState] = {}
    sent = []
    for n, order in enumerate([(9.0, 0.1), (0.1, 9.0), (9.0, 0.1), (0.1, 9.0)]):
        observed = seen(50.0, keys=tuple(twin(r) for r in order))
        decision = rules.decide(observed, states, POLICY, T0 + minutes(n))
        states = {**states, **decision.states}
        sent += [d.notice.type for d in decision.dues]
    assert sent == [C]  # one critical, then quiet: no flapping, no storm


def test_a_thousand_copies_of_one_key_give_one_alert() -> None:
    observed = seen(50.0, keys=tuple(twin(0.1 + i / 1000) for i in range(1000)))
    assert len(rules.decide(observed, {}, POLICY, T0).dues) == 1


# Silences, acks and inhibition: one more input to the decision, which marks what it holds
# back. Each row: observed, stored states, the team's silencing, the policy's inhibition, and
# the alerts due as (subject, type, silenced_by, acked_by, inhibited_by).


def silence(
    subject: str, kind: str = "any", ends_in_minutes: float = 60, sid: str = "s1"
) -> rules.Silence:
    return rules.Silence(sid, subject, kind, T0 + minutes(ends_in_minutes), "known")


def ack(subject: rules.Subject, since_minutes_ago: float = 600) -> rules.Ack:
    """An ack of the episode `state()` is in (since 600 minutes before T0), by default."""
    return rules.Ack(subject, T0 - minutes(since_minutes_ago), "a1")


def silencing(*silences: rules.Silence, acks: tuple[rules.Ack, ...] = ()) -> rules.Silencing:
    return rules.Silencing(silences, {a.subject: a for a in acks})


NONE = rules.Silencing()
HOLD_ROWS = [
    pytest.param(
        seen(8.0),
        {},
        silencing(silence("account", "warning")),
        True,
        [("account", W, "s1", None, None)],
        id="a silenced warning is held",
    ),
    pytest.param(
        seen(2.0),
        {ACC: state(WARNING, warning=5)},
        silencing(silence("account", "warning")),
        True,
        [("account", C, None, None, None)],
        id="an escalation to a type not covered goes",
    ),
    pytest.param(
        seen(2.0),
        {},
        silencing(silence("account")),
        True,
        [("account", C, "s1", None, None)],
        id="any type is covered by default",
    ),
    pytest.param(
        seen(50.0),
        {ACC: state(WARNING, warning=5)},
        silencing(silence("account", "warning")),
        True,
        [("account", R, None, None, None)],
        id="a resolved is its own type",
    ),
    pytest.param(
        seen(8.0),
        {},
        silencing(silence("account", ends_in_minutes=0)),
        True,
        [("account", W, None, None, None)],
        id="a silence that has ended holds nothing",
    ),
    pytest.param(
        seen(8.0),
        {},
        silencing(silence("key:h1"), silence("account:runway", sid="s2")),
        True,
        [("account", W, None, None, None)],
        id="another subject's silence holds nothing",
    ),
    pytest.param(
        seen(50.0, keys=(key(1.5),)),
        {},
        silencing(silence("*")),
        True,
        [("key:h1", W, "s1", None, None)],
        id="* covers every subject",
    ),
    pytest.param(
        seen(50.0, burn_rate_usd_per_hour=2.0, runway_hours=25.0),
        {},
        silencing(silence("account:runway", "runway")),
        True,
        [("account:runway", AlertType.RUNWAY, "s1", None, None)],
        id="the runway's own silence",
    ),
    pytest.param(
        seen(8.0),
        {ACC: state(WARNING, warning=61)},
        silencing(acks=(ack(ACC),)),
        True,
        [("account", W, None, "a1", None)],
        id="an acked condition's repeat is held",
    ),
    pytest.param(
        seen(8.0),
        {ACC: state(WARNING, warning=61)},
        silencing(acks=(ack(ACC, since_minutes_ago=900),)),
        True,
        [("account", W, None, None, None)],
        id="an ack of an earlier episode holds nothing",
    ),
    pytest.param(
        seen(2.0),
        {ACC: state(WARNING, warning=5)},
        silencing(acks=(ack(ACC),)),
        True,
        [("account", C, None, None, None)],
        id="a worse state goes despite the ack",
    ),
    pytest.param(
        seen(50.0),
        {ACC: state(WARNING, warning=5)},
        silencing(acks=(ack(ACC),)),
        True,
        [("account", R, None, None, None)],
        id="the end of an acked condition goes",
    ),
    pytest.param(
        seen(2.0, keys=(key(1.5),)),
        {},
        NONE,
        True,
        [("account", C, None, None, None), ("key:h1", W, None, None, "account")],
        id="an account critical inhibits a key warning",
    ),
    pytest.param(
        seen(2.0, keys=(key(0.1),), burn_rate_usd_per_hour=1.0, runway_hours=2.0),
        {},
        NONE,
        True,
        [
            ("account", C, None, None, None),
            ("account:runway", AlertType.RUNWAY, None, None, "account"),
            ("key:h1", C, None, None, "account"),
        ],
        id="and a key critical and the runway",
    ),
    pytest.param(
        rules.Observation(remaining_usd=0.0, source="payment_required", keys=(key(1.5),)),
        {},
        NONE,
        True,
        [("account", C, None, None, None), ("key:h1", W, None, None, "account")],
        id="a 402 inhibits too",
    ),
    pytest.param(
        seen(2.0, keys=(key(9.0),)),
        {KEY: state(WARNING, warning=5)},
        NONE,
        True,
        [("account", C, None, None, None), ("key:h1", R, None, None, None)],
        id="a key's resolved is not inhibited",
    ),
    pytest.param(
        seen(8.0, keys=(key(1.5),)),
        {},
        NONE,
        True,
        [("account", W, None, None, None), ("key:h1", W, None, None, None)],
        id="an account warning inhibits nothing",
    ),
    pytest.param(
        seen(2.0, keys=(key(1.5),)),
        {},
        NONE,
        False,
        [("account", C, None, None, None), ("key:h1", W, None, None, None)],
        id="inhibition turned off",
    ),
]


@pytest.mark.parametrize(("observed", "stored", "held", "inhibit", "dues"), HOLD_ROWS)  # fmt: skip
def test_decide_marks_the_alerts_a_silence_an_ack_or_the_account_holds_back(
    observed: rules.Observation,
    stored: dict[rules.Subject, AlertState],
    held: rules.Silencing,
    inhibit: bool,
    dues: list[tuple[str, AlertType, str | None, str | None, str | None]],
) -> None:
    the_policy = replace(POLICY, inhibit_when_account_critical=inhibit)
    decision = rules.decide(observed, stored, the_policy, T0, held)
    assert [
        (str(d.subject), d.notice.type, d.silenced_by, d.acked_by, d.inhibited_by)
        for d in decision.dues
    ] == dues
    assert all(
        d.delivers is (d.silenced_by is d.acked_by is d.inhibited_by is None) for d in decision.dues
    )
    # held back or not, the states and the statuses are the same: the cooldown runs
    plain = rules.decide(observed, stored, the_policy, T0)
    assert (decision.states, decision.statuses) == (plain.states, plain.statuses)


def test_a_silenced_condition_repeats_on_its_cooldown_once_the_silence_ends() -> None:
    held = silencing(silence("account", "warning", ends_in_minutes=90))
    first = rules.decide(seen(8.0), {}, POLICY, T0, held)
    during = rules.decide(seen(8.0), first.states, POLICY, T0 + minutes(60), held)
    after = rules.decide(seen(8.0), during.states, POLICY, T0 + minutes(100), held)
    due = rules.decide(seen(8.0), during.states, POLICY, T0 + minutes(120), held)
    assert [d.silenced_by for d in first.dues + during.dues] == ["s1", "s1"]
    assert after.dues == ()  # within the cooldown of the silenced repeat
    assert [(d.notice.type, d.delivers) for d in due.dues] == [(W, True)]
    assert due.silences_ended == ("s1",)


def test_an_ack_ends_with_its_episode() -> None:
    acked = silencing(acks=(ack(ACC),))
    same = rules.decide(seen(8.0), {ACC: state(WARNING, warning=5)}, POLICY, T0, acked)
    worse = rules.decide(seen(2.0), {ACC: state(WARNING, warning=5)}, POLICY, T0, acked)
    unseen = rules.decide(seen(8.0), {}, POLICY, T0, silencing(acks=(ack(KEY),)))
    assert (same.acks_ended, worse.acks_ended) == ((), (ACC,))
    assert unseen.acks_ended == ()  # a key this check did not judge keeps its ack
