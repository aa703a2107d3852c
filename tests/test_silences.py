"""Silences and acks as written on the command line and kept in Redis: parsing, codec, text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from credit_tasks import silences
from credit_tasks.errors import InputError
from credit_tasks.rules import ACCOUNT, RUNWAY, Ack, AlertState, Silence, Status, Subject

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["account", "account:runway", "account:spike", "key:ab12", "*"])
def test_every_documented_subject_is_accepted(text: str) -> None:
    assert silences.parse_subject(text) == text


@pytest.mark.parametrize("text", ["", "acount", "key:", "key:a b", "runway", "account:*", "**"])
def test_an_unknown_subject_is_refused_naming_the_ones_allowed(text: str) -> None:
    with pytest.raises(InputError, match=r"^SUBJECT must be account, account:runway, .* not"):
        silences.parse_subject(text)


@pytest.mark.parametrize("text", ["any", "warning", "critical", "unknown", "resolved", "runway"])
def test_every_alert_type_and_any_is_accepted(text: str) -> None:
    assert silences.parse_type(text) == text


@pytest.mark.parametrize("text", ["", "warn", "ANY", "ok"])
def test_an_unknown_type_is_refused_naming_the_ones_allowed(text: str) -> None:
    with pytest.raises(InputError, match=r"^TYPE must be any or an alert type \(warning, "):
        silences.parse_type(text)


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("90m", timedelta(minutes=90)),
        ("6h", timedelta(hours=6)),
        ("2d", timedelta(days=2)),
        ("30s", timedelta(seconds=30)),
        ("1.5h", timedelta(minutes=90)),
        ("366d", timedelta(days=366)),
    ],
)
def test_a_duration_reads_like_90m_6h_or_2d(text: str, length: timedelta) -> None:
    assert silences.parse_duration(text) == length


@pytest.mark.parametrize(
    "text", ["", "90", "0h", "0m", "-5m", "6 hours", "2w", "h", "367d", "99999999999999999999d"]
)
def test_a_duration_that_cannot_be_read_or_is_not_positive_is_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"^DURATION must look like 90m, 6h or 2d"):
        silences.parse_duration(text)


@pytest.mark.parametrize(("text", "required"), [(None, True), ("", True), ("  ", False)])
def test_a_missing_or_blank_reason_is_refused(text: str | None, required: bool) -> None:
    with pytest.raises(InputError, match=r"^--reason TEXT is required"):
        silences.parse_reason(text, required=required)


def test_an_ack_may_go_without_a_reason() -> None:
    assert silences.parse_reason(None, required=False) == ""
    assert silences.parse_reason("  on it ", required=False) == "on it"


@pytest.mark.parametrize("text", ["list", "state", "../x", "5F0C" * 4, "abc"])
def test_an_alert_id_that_is_not_hex_names_no_alert(text: str) -> None:
    with pytest.raises(InputError, match=r"^no alert .*credit-monitor status"):
        silences.parse_alert_id(text)


def test_a_silence_and_an_ack_come_back_from_their_stored_json() -> None:
    silence = silences.new_silence("s1", "key:ab", "warning", timedelta(hours=6), "a test", T0)
    assert silence.ends_at == T0 + timedelta(hours=6)
    assert silences.decode_silence(silences.encode_silence(silence)) == silence
    ack = Ack(Subject.key("ab"), T0, "a1", "on it", acked_at=T0 + timedelta(minutes=5))
    assert silences.decode_ack(silences.encode_ack(ack)) == ack


@pytest.mark.parametrize("raw", ["", "{}", "[1]", '{"id": "x", "ends_at": "soon"}'])
def test_a_stored_record_this_version_cannot_read_is_left_out(raw: str) -> None:
    assert silences.decode_silence(raw) is None
    assert silences.decode_ack(raw) is None


@pytest.mark.parametrize(
    ("subject", "kind", "state"),
    [
        ("account", "warning", ACCOUNT),
        ("account", "unknown", ACCOUNT),
        ("account", "runway", RUNWAY),
        ("key:ab", "critical", Subject.key("ab")),
    ],
)
def test_an_alert_belongs_to_its_subjects_state_and_a_runway_alert_to_the_runway(
    subject: str, kind: str, state: Subject
) -> None:
    assert silences.state_subject({"subject": subject, "type": kind}) == state


def record(kind: str = "warning", minutes_after: float = 0) -> dict[str, str]:
    sent = T0 + timedelta(minutes=minutes_after)
    return {"id": "a1", "subject": "account", "type": kind, "timestamp": sent.isoformat()}


def test_an_ack_names_the_episode_of_the_alert_it_acknowledges() -> None:
    state = AlertState(Status.WARNING, since=T0, last_sent={"warning": T0})
    ack = silences.ack_for("a1", record(minutes_after=60), state, "on it", T0 + timedelta(hours=2))
    assert (ack.subject, ack.since, ack.alert_id, ack.reason) == (ACCOUNT, T0, "a1", "on it")


@pytest.mark.parametrize(
    ("alert", "state", "says"),
    [
        (record("resolved"), AlertState(), "a resolved notice"),
        (record(), AlertState(Status.OK, since=T0), r"has ended \(account is ok now\)"),
        (record(), AlertState(Status.CRITICAL, since=T0 + timedelta(minutes=5)), "has ended"),
    ],
)
def test_an_alert_whose_condition_has_ended_cannot_be_acked(
    alert: dict[str, str], state: AlertState, says: str
) -> None:
    with pytest.raises(InputError, match=says):
        silences.ack_for("a1", alert, state, "", T0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (20, "under a minute"),
        (600, "10m"),
        (3600 * 5 + 59 * 60, "5h 59m"),
        (86400 * 2 + 7200, "2d 2h"),
    ],
)
def test_the_remaining_time_reads_in_days_hours_and_minutes(seconds: float, text: str) -> None:
    assert silences.remaining(seconds) == text


def test_a_silence_row_gives_its_remaining_seconds() -> None:
    silence = Silence("s1", "*", "any", T0 + timedelta(hours=1), "maintenance", created_at=T0)
    row = silences.silence_row(silence, T0 + timedelta(minutes=15))
    assert row["remaining_s"] == 45 * 60
    assert silences.silence_line(silence, T0) == (
        "s1  * any  1h 0m left (until 2026-03-04 13:00 UTC): maintenance"
    )


@pytest.mark.parametrize(
    ("held", "note"),
    [
        ({"silenced_by": "s1"}, "silenced by s1"),
        ({"acked_by": "a1"}, "a repeat of acknowledged alert a1"),
        ({"inhibited_by": "account"}, "held back while the account is critical"),
        ({"silenced_by": ""}, None),
    ],
)
def test_a_held_alert_says_what_held_it(held: dict[str, str], note: str | None) -> None:
    assert silences.held_note(held) == note
