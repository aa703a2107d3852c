"""Alerts as delivered: thresholds, fields and the sentence for account, key and runway."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from credit_tasks import rules
from credit_tasks.alerts import About, Alert, alert_for, build_alert
from credit_tasks.rules import AlertType, KeySpend, Notice, SpikeFigures, Status, Thresholds

T0 = datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC)
TH = Thresholds(warning_usd=10.0, critical_usd=5.0, recovery_margin=0.1)
OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN
W, C, U, R = AlertType.WARNING, AlertType.CRITICAL, AlertType.UNKNOWN, AlertType.RESOLVED


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
        status=status,
        th=TH,
        now=T0,
        about=About(remaining_usd=remaining_usd),
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
        status=UNKNOWN,
        th=TH,
        now=T0,
        about=About(reason="the key was rejected (401)"),
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
        status=status,
        th=TH,
        now=T0,
        about=About(
            subject="key:App",
            remaining_usd=remaining_usd,
            key_name="App",
            key_label="sk-or-v1-abc...123",
            limit_usd=20.0,
        ),
    )
    data = json.loads(json.dumps(alert.as_dict()))
    assert set(data) == EXPECTED_KEYS | {"key_name", "key_label"}
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


def test_an_account_alert_carries_no_key_or_runway_fields() -> None:
    alert = build_alert(
        Notice(W), alert_id="a", status=WARNING, th=TH, now=T0, about=About(remaining_usd=8.0)
    )
    assert set(alert.as_dict()) == EXPECTED_KEYS


@pytest.mark.parametrize(
    ("window_hours", "words"),
    [
        (24.0, "about 19 h at the pace of the last 24 h"),
        (3.0, "about 19 h at the pace of the last 3 h"),
        (1.5, "about 19 h at the pace of the last 1.5 h"),
        (0.75, "about 19 h at the pace of the last 45 min"),
    ],
)
def test_the_message_gives_the_runway_and_the_span_it_was_measured_over(
    window_hours: float, words: str
) -> None:
    about = About(remaining_usd=8.2, runway_hours=19.2, window_hours=window_hours)
    alert = build_alert(Notice(W), alert_id="a", status=WARNING, th=TH, now=T0, about=about)
    assert f"$8.20 left, {words}," in alert.message


@pytest.mark.parametrize(
    ("notice", "status", "percent", "threshold_usd", "words"),
    [
        (Notice(W), WARNING, 20.0, 4.0, ["is low", "$3.00 of its $20.00 limit left", "20%"]),
        (Notice(C), CRITICAL, 5.0, 1.0, ["nearly exhausted", "5%", "402"]),
        (Notice(R, resolves=W), OK, 20.0, 4.0, ["back to normal"]),
    ],
)
def test_a_key_alert_names_the_key_and_gives_its_percent_threshold(
    notice: Notice, status: Status, percent: float, threshold_usd: float, words: list[str]
) -> None:
    th = Thresholds(warning_usd=4.0, critical_usd=1.0)
    about = About(
        subject="key:abc123",
        remaining_usd=3.0,
        key_name="Customer A",
        key_label="sk-or-v1-abc...123",
        limit_usd=20.0,
    )
    alert = build_alert(
        notice, alert_id="k", status=status, th=th, now=T0, about=about, percents=(20.0, 5.0)
    )
    data = alert.as_dict()
    assert data["subject"] == "key:abc123"
    assert data["threshold_usd"] == threshold_usd
    assert data["threshold_percent"] == percent
    assert data["key_name"] == "Customer A" and data["key_label"] == "sk-or-v1-abc...123"
    assert '"Customer A" (sk-or-v1-abc...123)' in alert.message
    for word in words:
        assert word in alert.message


@pytest.mark.parametrize(
    ("notice", "status", "words"),
    [
        (Notice(AlertType.RUNWAY), WARNING, ["run out soon", "about 19 h", "48 h"]),
        (Notice(R, resolves=AlertType.RUNWAY), OK, ["back above 48 h"]),
    ],
)
def test_a_runway_alert_gives_the_projection_and_its_threshold_in_hours(
    notice: Notice, status: Status, words: list[str]
) -> None:
    about = About(remaining_usd=8.2, runway_hours=19.0, window_hours=24)
    alert = build_alert(
        notice, alert_id="r", status=status, th=TH, now=T0, about=about, threshold_hours=48.0
    )
    data = alert.as_dict()
    assert data["subject"] == "account"
    assert data["threshold_hours"] == 48.0
    assert data["runway_hours"] == 19.0
    assert data["threshold_usd"] is None
    for word in words:
        assert word in alert.message


@pytest.mark.parametrize(
    ("hours", "text"),
    [
        (0.001, "under a minute"),
        (0.4, "about 24 min"),
        (1.0, "about 1 h"),
        (19.2, "about 19 h"),
        (1500.0, "about 1,500 h"),
    ],
)
def test_a_duration_reads_in_minutes_under_an_hour(hours: float, text: str) -> None:
    from credit_tasks.alerts import duration

    assert duration(hours) == text


@pytest.mark.parametrize("source", ["key_limit", "account"])
def test_an_overspent_balance_says_by_how_much_instead_of_a_negative_amount(source: str) -> None:
    about = About(remaining_usd=-0.5, source=source, runway_hours=-0.1, window_hours=24)
    alert = build_alert(Notice(C), alert_id="a", status=CRITICAL, th=TH, now=T0, about=about)
    assert "OpenRouter credits are critical: overspent by $0.50, below the $5.00" in alert.message
    assert alert.message.endswith("now: requests fail with 402 until then.")
    assert "$-" not in alert.message and "pace" not in alert.message
    assert alert.remaining_usd == -0.5


def test_an_overspent_key_says_by_how_much_past_its_limit() -> None:
    about = About(
        subject="key:abc123",
        remaining_usd=-0.5,
        key_name="Customer A",
        key_label="sk-or-v1-abc...123",
        limit_usd=10.0,
    )
    th = Thresholds(warning_usd=2.0, critical_usd=0.5)
    alert = build_alert(
        Notice(C), alert_id="k", status=CRITICAL, th=th, now=T0, about=about, percents=(20.0, 5.0)
    )
    assert alert.message.startswith(
        'OpenRouter key "Customer A" (sk-or-v1-abc...123) is exhausted: '
        "overspent by $0.50 past its $10.00 limit, below 5% ($0.50)"
    )
    assert "402" in alert.message and "$-" not in alert.message


@pytest.mark.parametrize(
    ("notice", "about", "hours"),
    [
        (Notice(AlertType.CRITICAL), About(remaining_usd=1.0, source="account"), None),
        (
            Notice(AlertType.RESOLVED, resolves=AlertType.RUNWAY),
            About(remaining_usd=9.0, runway_hours=60.0, window_hours=24.0),
            48.0,
        ),
        (
            Notice(AlertType.WARNING),
            About(
                subject="key:h1", remaining_usd=1.5, key_name="batch", key_label="sk-or-v1-a...1",
                limit_usd=10.0,
            ),
            None,
        ),
    ],
)  # fmt: skip
def test_an_alert_comes_back_whole_from_its_task_argument(
    notice: Notice, about: About, hours: float | None
) -> None:
    alert = build_alert(
        notice, alert_id="a1", status=Status.WARNING, th=TH, now=T0, about=about,
        percents=(20.0, 5.0) if about.key_name else None, threshold_hours=hours,
    )  # fmt: skip
    assert Alert.from_dict(json.loads(json.dumps(alert.as_dict()))) == alert


@pytest.mark.parametrize(
    "data", [{}, {"id": "a1"}, {"id": "a1", "type": "nope", "subject": "account"}]
)
def test_what_is_not_an_alert_is_refused_in_one_line(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"^not an alert"):
        Alert.from_dict(data)


SPIKE = AlertType.SPIKE
BATCH = KeySpend("9f2c", "batch-agent", 13.9)


def spike_alert(notice: Notice, figures: SpikeFigures, line_usd: float = 2.55) -> Alert:
    about = About(subject="account:spike", remaining_usd=85.8, spike=figures)
    th = Thresholds(warning_usd=line_usd, critical_usd=0.0)
    return build_alert(notice, alert_id="s", status=WARNING, th=th, now=T0, about=about)


def test_a_spike_alert_names_the_key_behind_most_of_it_as_the_issue_shows() -> None:
    alert = spike_alert(Notice(SPIKE), SpikeFigures(60.0, 14.2, 0.51, (BATCH,)))
    assert alert.message == (
        "OpenRouter spend spike: $14.20 in the last 60 min, 28× the usual $0.51/h; "
        "most of it from key 'batch-agent' ($13.90)."
    )
    data = json.loads(json.dumps(alert.as_dict()))
    assert (data["type"], data["subject"], data["threshold_usd"]) == (
        "spike",
        "account:spike",
        2.55,
    )
    assert (data["window_minutes"], data["window_spend_usd"]) == (60.0, 14.2)
    assert (data["baseline_usd_per_hour"], data["factor"]) == (0.51, 27.84)
    assert data["top_keys"] == [{"hash": "9f2c", "name": "batch-agent", "spend_usd": 13.9}]
    assert Alert.from_dict(data) == alert


@pytest.mark.parametrize(
    ("figures", "message"),
    [
        (
            SpikeFigures(60.0, 14.2, 0.51),  # no management key: no key to name
            "OpenRouter spend spike: $14.20 in the last 60 min, 28× the usual $0.51/h.",
        ),
        (
            SpikeFigures(60.0, 6.0, 0.51, (KeySpend("h", "small", 2.0),)),
            "OpenRouter spend spike: $6.00 in the last 60 min, 12× the usual $0.51/h; "
            "the most from key 'small' ($2.00).",
        ),
        (
            SpikeFigures(0.2, 3.0, 0.0, (KeySpend("0123456789abcdef", "", 3.0),)),
            "OpenRouter spend spike: $3.00 in the last 12 s, where $0.00/h is usual; "
            "most of it from key 0123456789ab ($3.00).",
        ),
    ],
)
def test_a_spike_alert_reads_without_a_key_with_a_small_share_or_no_usual_spend(
    figures: SpikeFigures, message: str
) -> None:
    alert = spike_alert(Notice(SPIKE), figures)
    assert alert.message == message
    assert alert.as_dict()["top_keys"] == [
        {"hash": k.hash, "name": k.name, "spend_usd": k.spend_usd} for k in figures.top_keys
    ]


def test_a_resolved_spike_says_the_pace_is_back() -> None:
    alert = spike_alert(Notice(R, resolves=SPIKE), SpikeFigures(60.0, 0.8, 0.51))
    assert alert.message == (
        "OpenRouter spend is back to its usual pace: $0.80 in the last 60 min, 1.6× the usual "
        "$0.51/h."
    )
    data = alert.as_dict()
    assert (data["type"], data["resolves"], data["top_keys"]) == ("resolved", "spike", [])


@pytest.mark.parametrize(
    ("held", "field"),
    [
        ({"silenced_by": "s1"}, "silenced_by"),
        ({"acked_by": "a0"}, "acked_by"),
        ({"inhibited_by": "account"}, "inhibited_by"),
    ],
)
def test_a_held_alert_says_so_on_its_record_and_comes_back_whole(
    held: dict[str, str], field: str
) -> None:
    due = rules.Due(rules.ACCOUNT, Notice(W), WARNING, About(remaining_usd=1.0), TH)
    alert = alert_for(replace(due, **held), alert_id="a1", now=T0)
    data = json.loads(json.dumps(alert.as_dict()))
    assert set(data) == EXPECTED_KEYS | {field}
    assert data[field] == held[field]
    assert alert.delivers is False
    assert Alert.from_dict(data) == alert
    assert alert_for(due, alert_id="a1", now=T0).delivers is True
