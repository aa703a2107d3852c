"""The team's "we know": silences and acks, as the decision reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .states import AlertType
from .subjects import Subject

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
