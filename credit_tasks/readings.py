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


@dataclass(frozen=True)
class KeyListing:
    """The enabled keys `/keys` lists, and the items it sent that could not be read."""

    keys: list[KeyInfo] = field(default_factory=list)
    # each unreadable item's hash, or "item N of page P" when it has none
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reading:
    """One check's reading: the snapshot, and the keys or why they could not be listed."""

    snapshot: Snapshot
    listing: KeyListing | None  # None when the listing failed
    keys_error: FetchError | None = None
