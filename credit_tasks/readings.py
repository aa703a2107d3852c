"""What the OpenRouter client hands the check: plain, frozen readings, never a secret."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from .errors import FetchError

SOURCES = ("key_limit", "account", "initial_balance", "payment_required", "none")


@dataclass(frozen=True)
class Snapshot:
    """What one read of OpenRouter says about the money."""

    checked_at: datetime
    remaining_usd: float | None
    usage_usd: float | None
    source: str
    limit_usd: float | None
    limit_remaining_usd: float | None
    account_balance_usd: float | None
    key_label: str | None
    is_free_tier: bool | None
    # /credits said 403 (the management key is not one) and the key's own cap stood in
    credits_forbidden: str | None = None
    # the watched key's spend in the current UTC day, week and month; None in older answers
    usage_daily_usd: float | None = None
    usage_weekly_usd: float | None = None
    usage_monthly_usd: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The snapshot as JSON-safe values, `checked_at` as an ISO 8601 UTC string."""
        out: dict[str, object] = dataclasses.asdict(self)
        out["checked_at"] = self.checked_at.isoformat()
        return out


@dataclass(frozen=True)
class KeyInfo:
    """One API key of the account as `/keys` lists it; never the key itself."""

    hash: str
    name: str
    label: str
    limit_usd: float | None
    remaining_usd: float | None  # negative when the key is overspent
    usage_usd: float
    limit_reset: str | None
    workspace: str | None = None  # its workspace's name, when the account has workspaces
    usage_daily_usd: float | None = None
    usage_weekly_usd: float | None = None
    usage_monthly_usd: float | None = None


@dataclass(frozen=True)
class Activity:
    """One `/activity` row: a day's spend on one model through one provider."""

    date: str  # YYYY-MM-DD
    model: str
    provider: str
    usage_usd: float
    requests: int


@dataclass(frozen=True)
class KeyListing:
    """The enabled keys `/keys` lists (one per hash), and the items that could not be read."""

    keys: list[KeyInfo] = field(default_factory=list)
    # each unreadable item's hash, or "item N of page P" when it has none
    unreadable: list[str] = field(default_factory=list)
    note: str | None = None  # duplicates ignored, or why the listing stopped before its end
    # every key of the account is named, in `keys` or `unreadable`, or was disabled: the
    # listing reached its last page and no skipped item lacked a hash
    complete: bool = True


@dataclass(frozen=True)
class Reading:
    """One check's reading: the snapshot, and the keys or why they could not be listed."""

    snapshot: Snapshot
    listing: KeyListing | None  # None when the listing failed
    keys_error: FetchError | None = None
