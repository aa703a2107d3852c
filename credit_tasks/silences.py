"""Silences and acks as people write them and Redis keeps them: parsing, the codec, the text.

Pure: the current time is an argument. What a silence or an ack does to a decision is the
rules' business (`rules.Silence`, `rules.Ack`, `rules.decide`); this module turns the
command line into those records, refuses bad input in one line, and says what is active.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from .errors import InputError
from .rules import ANY_SUBJECT, ANY_TYPE, Ack, AlertState, AlertType, Silence, Status, Subject

SUBJECTS = ("account", "account:runway", "account:spike")  # besides key:<hash> and *
MAX_DURATION = timedelta(days=366)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_KEY_SUBJECT = re.compile(r"key:[^\s:*]+")
_ALERT_ID = re.compile(r"[0-9a-f]{6,64}")  # ids are hex: anything else names no alert


def parse_subject(text: str) -> str:
    """`account`, `account:runway`, `account:spike`, `key:<hash>` or `*`."""
    if text == ANY_SUBJECT or text in SUBJECTS or _KEY_SUBJECT.fullmatch(text):
        return text
    raise InputError(
        f"SUBJECT must be {', '.join(SUBJECTS)}, key:<hash> or {ANY_SUBJECT}, not {text!r}"
    )


def alert_types() -> list[str]:
    return [t.value for t in AlertType]


def parse_type(text: str) -> str:
    """An alert type, or `any`."""
    if text == ANY_TYPE or text in alert_types():
        return text
    raise InputError(
        f"TYPE must be {ANY_TYPE} or an alert type ({', '.join(alert_types())}), not {text!r}"
    )


def parse_duration(text: str) -> timedelta:
    """`90m`, `6h`, `2d` (or `30s`): more than nothing, at most a year."""
    match = _DURATION.fullmatch(text.strip())
    seconds = float(match[1]) * _UNITS[match[2]] if match else 0.0
    if 0 < seconds <= MAX_DURATION.total_seconds():
        return timedelta(seconds=seconds)
    raise InputError(
        f"DURATION must look like 90m, 6h or 2d, more than zero and at most "
        f"{MAX_DURATION.days}d, not {text!r}"
    )


def parse_reason(text: str | None, *, required: bool) -> str:
    """The reason, stripped; a blank one is refused, a missing one when `required`."""
    if text is None and not required:
        return ""
    reason = (text or "").strip()
    if not reason:
        raise InputError("--reason TEXT is required: say why, so the rest of the team knows")
    return reason


def parse_alert_id(text: str) -> str:
    if _ALERT_ID.fullmatch(text):
        return text
    raise unknown_alert(text)


def unknown_alert(alert_id: str) -> InputError:
    return InputError(
        f"no alert {alert_id!r}: `credit-monitor status` shows the recent alerts with their ids"
    )


def new_silence(
    silence_id: str, subject: str, alert_type: str, length: timedelta, reason: str, now: datetime
) -> Silence:
    return Silence(silence_id, subject, alert_type, now + length, reason, created_at=now)


def encode_silence(silence: Silence) -> str:
    return json.dumps(
        {
            "id": silence.id,
            "subject": silence.subject,
            "type": silence.type,
            "created_at": _iso(silence.created_at),
            "ends_at": silence.ends_at.isoformat(),
            "reason": silence.reason,
        }
    )


def decode_silence(raw: str) -> Silence | None:
    """The silence, or None for a record this version cannot read (it is then ignored)."""
    try:
        data = json.loads(raw)
        return Silence(
            id=str(data["id"]),
            subject=str(data["subject"]),
            type=str(data["type"]),
            ends_at=datetime.fromisoformat(data["ends_at"]),
            reason=str(data.get("reason") or ""),
            created_at=_when(data.get("created_at")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def encode_ack(ack: Ack) -> str:
    return json.dumps(
        {
            "subject": str(ack.subject),
            "since": ack.since.isoformat(),
            "alert_id": ack.alert_id,
            "reason": ack.reason,
            "acked_at": _iso(ack.acked_at),
        }
    )


def decode_ack(raw: str) -> Ack | None:
    """The ack, or None for a record this version cannot read (it is then ignored)."""
    try:
        data = json.loads(raw)
        return Ack(
            subject=Subject.parse(str(data["subject"])),
            since=datetime.fromisoformat(data["since"]),
            alert_id=str(data["alert_id"]),
            reason=str(data.get("reason") or ""),
            acked_at=_when(data.get("acked_at")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def state_subject(record: dict[str, str]) -> Subject:
    """The alert state a stored alert belongs to: a runway alert is about the account, but
    the runway keeps its own state (`account:runway`)."""
    subject, kind = record.get("subject", ""), record.get("type", "")
    if subject == "account" and f"account:{kind}" in SUBJECTS:
        try:
            return Subject.parse(f"account:{kind}")
        except ValueError:
            pass  # a subject this version does not judge
    return Subject.parse(subject)


def ack_for(
    alert_id: str, record: dict[str, str], state: AlertState, reason: str, now: datetime
) -> Ack:
    """The ack of the condition `record` alerted about, or InputError when it has ended."""
    kind = record.get("type", "")
    if kind == AlertType.RESOLVED.value:
        raise InputError(f"alert {alert_id} is a resolved notice: there is nothing to acknowledge")
    if kind == AlertType.REPORT.value:
        raise InputError(f"alert {alert_id} is a daily report: there is nothing to acknowledge")
    subject = state_subject(record)
    sent_at = datetime.fromisoformat(record["timestamp"])
    if state.status is Status.OK or state.since is None or state.since > sent_at:
        raise InputError(
            f"alert {alert_id} is about a condition that has ended ({subject} is "
            f"{state.status.value} now): ack the newest alert `credit-monitor status` shows"
        )
    return Ack(subject, state.since, alert_id, reason, acked_at=now)


def remaining(seconds: float) -> str:
    """`1d 4h`, `5h 59m`, `12m`, or `under a minute`."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def silence_row(silence: Silence, now: datetime) -> dict[str, object]:
    """A silence as `silence list --json` and `status --json` give it."""
    return {
        "id": silence.id,
        "subject": silence.subject,
        "type": silence.type,
        "reason": silence.reason,
        "created_at": _iso(silence.created_at),
        "ends_at": silence.ends_at.isoformat(),
        "remaining_s": max(0, int((silence.ends_at - now).total_seconds())),
    }


def ack_row(ack: Ack) -> dict[str, object]:
    """An ack as `status --json` gives it."""
    return {
        "subject": str(ack.subject),
        "alert_id": ack.alert_id,
        "since": ack.since.isoformat(),
        "reason": ack.reason,
        "acked_at": _iso(ack.acked_at),
    }


def silence_line(silence: Silence, now: datetime) -> str:
    left = remaining((silence.ends_at - now).total_seconds())
    return (
        f"{silence.id}  {silence.subject} {silence.type}  {left} left "
        f"(until {silence.ends_at:%Y-%m-%d %H:%M} UTC): {silence.reason}"
    )


def ack_line(ack: Ack) -> str:
    why = f": {ack.reason}" if ack.reason else ""
    return f"{ack.subject}  since {ack.since:%Y-%m-%d %H:%M} UTC, alert {ack.alert_id}{why}"


def held_note(record: Mapping[str, object]) -> str | None:
    """Why an alert was recorded but not delivered, or None when it was meant to go out."""
    if record.get("silenced_by"):
        return f"silenced by {record['silenced_by']}"
    if record.get("acked_by"):
        return f"a repeat of acknowledged alert {record['acked_by']}"
    if record.get("inhibited_by"):
        return f"held back while the {record['inhibited_by']} is critical"
    return None
