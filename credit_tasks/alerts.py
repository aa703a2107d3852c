"""Alerts as people and programs receive them: the record, and the sentence it carries.

Pure: built from a rules `Notice` and the figures of the subject it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .rules import About, AlertType, Due, KeySpend, Notice, SpikeFigures, Status, Thresholds
from .text import duration, money, span

TOP_UP_URL = "https://openrouter.ai/settings/credits"
KEYS_URL = "https://openrouter.ai/settings/keys"


@dataclass(frozen=True)
class Alert:
    """One alert as published on the channel and stored in Redis."""

    id: str
    type: AlertType
    subject: str
    status: Status
    remaining_usd: float | None
    threshold_usd: float | None
    message: str
    timestamp: datetime
    resolves: AlertType | None = None
    threshold_percent: float | None = None
    runway_hours: float | None = None
    threshold_hours: float | None = None
    key_name: str | None = None
    key_label: str | None = None
    silenced_by: str | None = None  # the silence's id
    acked_by: str | None = None  # the acknowledged alert whose repeat this is
    inhibited_by: str | None = None  # "account"
    window_minutes: float | None = None
    window_spend_usd: float | None = None
    baseline_usd_per_hour: float | None = None
    factor: float | None = None  # the observed ratio; None when nothing is usually spent
    top_keys: tuple[KeySpend, ...] | None = None  # a spike's; empty without the management key
    report: dict[str, object] | None = None  # a daily report's figures

    @property
    def delivers(self) -> bool:
        """Whether it is published and sent; a silenced, acked or inhibited one is only recorded."""
        return self.silenced_by is None and self.acked_by is None and self.inhibited_by is None

    def as_dict(self) -> dict[str, object]:
        """JSON-safe; the fields of key, runway, spike and report messages, and of held ones,
        appear only there."""
        out: dict[str, object] = {
            "id": self.id,
            "type": self.type.value,
            "subject": self.subject,
            "status": self.status.value,
            "remaining_usd": self.remaining_usd,
            "threshold_usd": self.threshold_usd,
            "message": self.message,
            "timestamp": self.timestamp.isoformat(),
            "resolves": self.resolves.value if self.resolves else None,
        }
        extras = {
            "threshold_percent": self.threshold_percent,
            "runway_hours": self.runway_hours,
            "threshold_hours": self.threshold_hours,
            "key_name": self.key_name,
            "key_label": self.key_label,
            "silenced_by": self.silenced_by,
            "acked_by": self.acked_by,
            "inhibited_by": self.inhibited_by,
            "window_minutes": self.window_minutes,
            "window_spend_usd": self.window_spend_usd,
            "baseline_usd_per_hour": self.baseline_usd_per_hour,
            "report": self.report,
        }
        out |= {k: v for k, v in extras.items() if v is not None}
        if self.top_keys is not None:  # a spike's ratio is null when nothing is usually spent
            out["factor"] = self.factor
            out["top_keys"] = [
                {"hash": k.hash, "name": k.name, "spend_usd": k.spend_usd} for k in self.top_keys
            ]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The alert `as_dict` gave, back from a task's argument; ValueError when it is not one."""
        try:
            resolves = data.get("resolves")
            return cls(
                id=str(data["id"]),
                type=AlertType(data["type"]),
                subject=str(data["subject"]),
                status=Status(data["status"]),
                remaining_usd=_number(data.get("remaining_usd")),
                threshold_usd=_number(data.get("threshold_usd")),
                message=str(data["message"]),
                timestamp=datetime.fromisoformat(str(data["timestamp"])),
                resolves=AlertType(resolves) if resolves else None,
                threshold_percent=_number(data.get("threshold_percent")),
                runway_hours=_number(data.get("runway_hours")),
                threshold_hours=_number(data.get("threshold_hours")),
                key_name=_text_or_none(data.get("key_name")),
                key_label=_text_or_none(data.get("key_label")),
                silenced_by=_text_or_none(data.get("silenced_by")),
                acked_by=_text_or_none(data.get("acked_by")),
                inhibited_by=_text_or_none(data.get("inhibited_by")),
                window_minutes=_number(data.get("window_minutes")),
                window_spend_usd=_number(data.get("window_spend_usd")),
                baseline_usd_per_hour=_number(data.get("baseline_usd_per_hour")),
                factor=_number(data.get("factor")),
                top_keys=_top_keys(data.get("top_keys")),
                report=dict(data["report"]) if data.get("report") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an alert ({type(exc).__name__}: {exc})") from None


def _number(value: object) -> float | None:
    return None if value is None else float(str(value))


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _top_keys(value: object) -> tuple[KeySpend, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("top_keys is not a list")
    return tuple(KeySpend(str(k["hash"]), str(k["name"]), float(k["spend_usd"])) for k in value)


def pace(about: About) -> str:
    """`, about 19 h at the pace of the last 3 h`, or nothing when there is no projection.

    The span is the history really observed, which may be shorter than the burn window.
    """
    if about.runway_hours is None or about.window_hours is None:
        return ""
    return f", {duration(about.runway_hours)} at the pace of the last {span(about.window_hours)}"


def window_text(minutes: float) -> str:
    """`60 min`, or `12 s` under a minute."""
    return f"{minutes:g} min" if minutes >= 1 else f"{minutes * 60:.0f} s"


def times_text(ratio: float) -> str:
    """`28×`, or `5.3×` under ten."""
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


def _spike_message(notice: Notice, spike: SpikeFigures) -> str:
    spent = f"{money(spike.window_spend_usd)} in the last {window_text(spike.window_minutes)}"
    usual = f"{money(spike.baseline_usd_per_hour)}/h"
    ratio = spike.ratio
    against = (
        f"{times_text(ratio)} the usual {usual}" if ratio is not None else f"where {usual} is usual"
    )
    if notice.type is AlertType.RESOLVED:
        return f"OpenRouter spend is back to its usual pace: {spent}, {against}."
    text = f"OpenRouter spend spike: {spent}, {against}"
    if spike.top_keys:
        top = spike.top_keys[0]
        who = f"key '{top.name}'" if top.name else f"key {top.hash[:12]}"
        share = "most of it" if top.spend_usd * 2 >= spike.window_spend_usd else "the most"
        text += f"; {share} from {who} ({money(top.spend_usd)})"
    return text + "."


def _overspent(about: About) -> bool:
    return about.remaining_usd is not None and about.remaining_usd < 0


def remaining_text(about: About) -> str:
    """`$8.00 left, about 19 h at …'s pace`, or `overspent by $0.50` below zero."""
    if _overspent(about):
        return f"overspent by {money(-(about.remaining_usd or 0.0))}"
    return f"{money(about.remaining_usd)} left{pace(about)}"


def _key_message(
    notice: Notice, about: About, threshold_usd: float | None, percent: float | None
) -> str:
    who = f'OpenRouter key "{about.key_name}" ({about.key_label})'
    left = f"{money(about.remaining_usd)} of its {money(about.limit_usd)} limit left"
    if about.remaining_usd is not None and about.remaining_usd < 0:
        left = f"overspent by {money(-about.remaining_usd)} past its {money(about.limit_usd)} limit"
    below = f"below {percent:g}% ({money(threshold_usd)})" if percent else "below its threshold"
    if notice.type is AlertType.WARNING:
        return f"{who} is low: {left}, {below}; raise its limit at {KEYS_URL}."
    if notice.type is AlertType.CRITICAL and _overspent(about):
        return (
            f"{who} is exhausted: {left}, {below}; raise its limit at {KEYS_URL} now: "
            "its requests fail with 402 until then."
        )
    if notice.type is AlertType.CRITICAL:
        return (
            f"{who} is nearly exhausted: {left}, {below}; raise its limit at {KEYS_URL} now, "
            "or its requests will fail with 402."
        )
    return f"{who} is back to normal: {left}."


def message_for(
    notice: Notice,
    about: About,
    *,
    threshold_usd: float | None = None,
    threshold_percent: float | None = None,
    threshold_hours: float | None = None,
) -> str:
    """A sentence a person can act on."""
    if about.key_name is not None or about.subject.startswith("key:"):
        return _key_message(notice, about, threshold_usd, threshold_percent)
    if about.spike is not None:
        return _spike_message(notice, about.spike)
    left = remaining_text(about)
    fix = (
        f"raise the key's limit at {KEYS_URL}"
        if about.source == "key_limit"
        else f"top up at {TOP_UP_URL}"
    )
    kind, ends = notice.type, notice.resolves
    if kind is AlertType.WARNING:
        return (
            f"OpenRouter credits are low: {left}, below the {money(threshold_usd)} "
            f"warning threshold; {fix}."
        )
    if kind is AlertType.CRITICAL:
        after = (
            ": requests fail with 402 until then"
            if _overspent(about)
            else ", or requests will fail with 402"
        )
        return (
            f"OpenRouter credits are critical: {left}, below the {money(threshold_usd)} "
            f"critical threshold; {fix} now{after}."
        )
    if kind is AlertType.RUNWAY:
        return (
            f"OpenRouter credits will run out soon: {left}, under the {threshold_hours:g} h "
            f"runway threshold; {fix}."
        )
    if kind is AlertType.UNKNOWN:
        return f"OpenRouter credits cannot be checked: {about.reason or 'the last checks failed'}."
    if ends is AlertType.UNKNOWN:
        return f"OpenRouter credits can be checked again: {left}."
    if ends is AlertType.RUNWAY:
        return f"OpenRouter credits runway is back above {threshold_hours:g} h: {left}."
    return (
        f"OpenRouter credits are back to normal: {left}, above the "
        f"{money(threshold_usd)} {ends or 'alert'} threshold."
    )


def build_alert(
    notice: Notice,
    *,
    alert_id: str,
    status: Status,
    th: Thresholds,
    now: datetime,
    about: About,
    percents: tuple[float, float] | None = None,
    threshold_hours: float | None = None,
) -> Alert:
    """The full alert for a notice; `percents` (warning, critical) for a key's thresholds."""
    kind = notice.resolves if notice.type is AlertType.RESOLVED else notice.type
    runway = kind is AlertType.RUNWAY
    spike = about.spike if kind is AlertType.SPIKE else None
    threshold_usd = None
    if spike is not None:
        threshold_usd = round(th.warning_usd, 6)  # the spend where the spike begins
    elif kind in (AlertType.WARNING, AlertType.CRITICAL):
        threshold_usd = th.for_status(Status(kind.value))
    percent = None
    if percents is not None and kind in (AlertType.WARNING, AlertType.CRITICAL):
        percent = percents[0] if kind is AlertType.WARNING else percents[1]
    hours = threshold_hours if runway else None
    return Alert(
        id=alert_id,
        type=notice.type,
        subject=about.subject,
        status=status,
        remaining_usd=about.remaining_usd,
        threshold_usd=threshold_usd,
        message=message_for(
            notice,
            about,
            threshold_usd=threshold_usd,
            threshold_percent=percent,
            threshold_hours=hours,
        ),
        timestamp=now,
        resolves=notice.resolves,
        threshold_percent=percent,
        runway_hours=about.runway_hours if runway else None,
        threshold_hours=hours,
        key_name=about.key_name,
        key_label=about.key_label,
        **(_spike_fields(spike) if spike is not None else {}),
    )


def _spike_fields(spike: SpikeFigures) -> dict[str, Any]:
    ratio = spike.ratio
    return {
        "window_minutes": spike.window_minutes,
        "window_spend_usd": round(spike.window_spend_usd, 6),
        "baseline_usd_per_hour": round(spike.baseline_usd_per_hour, 6),
        "factor": None if ratio is None else round(ratio, 2),
        "top_keys": spike.top_keys,
    }


def alert_for(due: Due, *, alert_id: str, now: datetime) -> Alert:
    """The full alert for an alert the decision calls for, with what holds it back, if anything."""
    alert = build_alert(
        due.notice,
        alert_id=alert_id,
        status=due.status,
        th=due.thresholds,
        now=now,
        about=due.about,
        percents=due.percents,
        threshold_hours=due.threshold_hours,
    )
    return replace(
        alert, silenced_by=due.silenced_by, acked_by=due.acked_by, inhibited_by=due.inhibited_by
    )
