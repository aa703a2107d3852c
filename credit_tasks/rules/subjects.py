"""What a decision takes: the subjects alerts are about, the figures observed, the policy."""

from __future__ import annotations

from dataclasses import dataclass

from .states import Thresholds


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
