"""The simulated account: its balance, its keys, their spend, and the shapes OpenRouter gives them.

Thread-safe: every public method holds the account's lock, and the routes hold it while they
read several figures for one answer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PAGE_SIZE = 100  # /keys items per page, as OpenRouter serves them
LIMIT_RESETS: tuple[str | None, ...] = (None, "daily", "weekly", "monthly")
CREATOR_USER_ID = "user_2simu1atorXXXXXXXXXXXXXXXX"
WORKSPACE_ID = "5f1d7c2e-0b6a-4c1e-9a43-51a7e0c0d001"  # the default workspace
_KEY_FIELDS = frozenset(
    {"name", "limit", "usage", "limit_reset", "disabled", "management", "created_at"}
)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def label(key: str) -> str:
    # OpenRouter shows the first 12 characters ("sk-or-v1-" + 3) and the last 3.
    return f"{key[:12]}...{key[-3:]}" if len(key) > 18 else f"{key[:3]}..."


@dataclass
class Key:
    secret: str
    hash: str
    name: str
    limit: float | None
    usage: float
    limit_reset: str | None
    disabled: bool
    management: bool
    created_at: str
    updated_at: str
    seq: int

    @property
    def remaining(self) -> float | None:
        # negative once the key is overspent, as OpenRouter reports it
        return None if self.limit is None else self.limit - self.usage

    def sort_key(self) -> tuple[datetime, int]:
        return (_parse_time(self.created_at), self.seq)

    def item(self) -> dict[str, Any]:
        """The `/keys` item shape."""
        u = self.usage
        return {
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "creator_user_id": CREATOR_USER_ID,
            "workspace_id": WORKSPACE_ID,
            "hash": self.hash,
            "label": label(self.secret),
            "name": self.name,
            "disabled": self.disabled,
            "limit": self.limit,
            "limit_remaining": self.remaining,
            "limit_reset": self.limit_reset,
            "include_byok_in_limit": False,
            "usage": u,
            "usage_daily": u,
            "usage_weekly": u,
            "usage_monthly": u,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
        }

    def info(self, *, free_tier: bool, minimal: bool) -> dict[str, Any]:
        """The `/key` shape: the current one, or the older minimal one."""
        if minimal:
            return {
                "label": label(self.secret),
                "limit": self.limit,
                "usage": self.usage,
                "limit_remaining": self.remaining,
                "is_free_tier": free_tier,
                "rate_limit": {"requests": 40, "interval": "10s"},
            }
        u = self.usage
        return {
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_monthly": 0,
            "byok_usage_weekly": 0,
            "creator_user_id": CREATOR_USER_ID,
            "expires_at": None,
            "include_byok_in_limit": False,
            "is_free_tier": free_tier,
            "is_management_key": self.management,
            "is_provisioning_key": self.management,
            "label": label(self.secret),
            "limit": self.limit,
            "limit_remaining": self.remaining,
            "limit_reset": self.limit_reset,
            "rate_limit": {
                "interval": "1h",
                "note": "This field is deprecated and safe to ignore.",
                "requests": 1000,
            },
            "usage": u,
            "usage_daily": u,
            "usage_monthly": u,
            "usage_weekly": u,
        }


class Account:
    """An OpenRouter account: credits, usage, keys, continuous spend and auto top-up."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self._credits = 0.0
        self._usage = 0.0
        self._by_secret: dict[str, Key] = {}
        self._by_hash: dict[str, Key] = {}
        self._order: tuple[list[Key], list[Key]] | None = None
        self._seq = 0
        self._spend_hash: str | None = None
        self._spend_rate = 0.0
        self._last_accrual = time.monotonic()
        self._topup_below: float | None = None
        self._topup_usd = 0.0
        self._raw_items: list[object] = []

    def reset(self) -> None:
        with self.lock:
            self._clear()

    def set_account(self, *, total_credits: float, total_usage: float = 0.0) -> None:
        with self.lock:
            self.accrue()
            self._credits, self._usage = float(total_credits), float(total_usage)

    def add_key(
        self,
        key: str,
        *,
        name: str = "Default",
        limit: float | None = None,
        usage: float = 0.0,
        limit_reset: str | None = None,
        disabled: bool = False,
        management: bool = False,
        created_at: str | None = None,
    ) -> str:
        """Register (or replace) a key; returns its hash."""
        if not key:
            raise ValueError("key must be a non-empty string")
        if limit_reset not in LIMIT_RESETS:
            raise ValueError(f"limit_reset must be one of {LIMIT_RESETS}")
        stamp = created_at or _now_iso()
        _parse_time(stamp)  # reject bad timestamps now, not on the next /keys request
        with self.lock:
            self.accrue()
            self._seq += 1
            entry = Key(
                key,
                hashlib.sha256(key.encode()).hexdigest(),
                name,
                None if limit is None else float(limit),
                float(usage),
                limit_reset,
                bool(disabled),
                bool(management),
                stamp,
                stamp,
                self._seq,
            )
            self._by_secret[key] = self._by_hash[entry.hash] = entry
            self._order = None
            return entry.hash

    def add_fleet(self, count: int, *, prefix: str = "fleet") -> None:
        """Add `count` capped keys with varied limits and usages, some nearly exhausted."""
        base = datetime.now(UTC)
        limits = (5.0, 10.0, 25.0, 50.0, 100.0)
        for i in range(count):
            limit = limits[i % len(limits)]
            fraction = (i * 37 % 100) / 100  # spreads usage over 0-99 % of the limit
            self.add_key(
                "sk-or-v1-" + hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest(),
                name=f"{prefix}-{i:05d}",
                limit=limit,
                usage=round(limit * fraction, 4),
                limit_reset=LIMIT_RESETS[i % 4],
                disabled=i % 50 == 49,
                created_at=(base - timedelta(minutes=i + 1)).isoformat(),
            )

    def update_key(self, key_or_hash: str, **fields: Any) -> None:
        unknown = set(fields) - _KEY_FIELDS
        if unknown:
            raise ValueError(f"unknown key fields: {sorted(unknown)}")
        if fields.get("limit_reset") not in LIMIT_RESETS:
            raise ValueError(f"limit_reset must be one of {LIMIT_RESETS}")
        if "created_at" in fields:
            _parse_time(fields["created_at"])
        with self.lock:
            self.accrue()
            entry = self.find(key_or_hash)
            for name, value in fields.items():
                if name in ("limit", "usage") and value is not None:
                    value = float(value)
                setattr(entry, name, value)
            entry.updated_at = _now_iso()
            self._order = None

    def add_raw_key_item(self, item: object) -> None:
        """List `item` as it is in /keys, before every key: a server sending what cannot be read."""
        with self.lock:
            self._raw_items.append(item)

    def reset_key_usage(self, key_or_hash: str) -> None:
        """What a daily/weekly/monthly limit reset does: the key's usage back to 0."""
        self.update_key(key_or_hash, usage=0.0)

    def set_spend(self, *, key: str | None, usd_per_hour: float) -> None:
        """Spend continuously; key=None charges the account only."""
        with self.lock:
            self.accrue()
            self._spend_hash = None if key is None else self.find(key).hash
            self._spend_rate = float(usd_per_hour)

    def set_topup(self, *, below_usd: float | None, topup_usd: float = 0.0) -> None:
        with self.lock:
            self.accrue()
            self._topup_below = None if below_usd is None else float(below_usd)
            self._topup_usd = float(topup_usd)

    def state(self) -> dict[str, Any]:
        """Account and keys without the key strings."""
        with self.lock:
            self.accrue()
            keys = [
                {
                    "hash": k.hash,
                    "name": k.name,
                    "label": label(k.secret),
                    "limit": k.limit,
                    "usage": k.usage,
                    "limit_remaining": k.remaining,
                    "disabled": k.disabled,
                    "management": k.management,
                }
                for k in self._by_hash.values()
            ]
            return {
                "total_credits": self._credits,
                "total_usage": self._usage,
                "balance": self._credits - self._usage,
                "keys": keys,
            }

    # -- for the routes, which hold the lock across one answer --------------------------------
    def find(self, key_or_hash: str) -> Key:
        entry = self._by_secret.get(key_or_hash) or self._by_hash.get(key_or_hash)
        if entry is None:
            raise KeyError("no such key")  # never echo the key string
        return entry

    def by_secret(self, token: str) -> Key | None:
        return self._by_secret.get(token)

    def by_hash(self, key_hash: str) -> Key | None:
        return self._by_hash.get(key_hash)

    def accrue(self) -> None:
        """Charge the spend since the last call, then top up if the balance fell too low."""
        now = time.monotonic()
        amount = self._spend_rate * (now - self._last_accrual) / 3600.0
        self._last_accrual = now
        entry = self._by_hash.get(self._spend_hash) if self._spend_hash else None
        if entry is not None:
            # A disabled or capped-out key cannot spend, as on OpenRouter.
            room = 0.0 if entry.disabled else entry.remaining
            amount = amount if room is None else min(amount, max(room, 0.0))
            entry.usage += amount
        self._usage += amount
        if self._topup_below is not None and self._credits - self._usage < self._topup_below:
            self._credits += self._topup_usd

    def totals(self) -> tuple[float, float]:
        """`total_credits` and `total_usage`, as `/credits` answers them."""
        return self._credits, self._usage

    def keys_page(self, offset: int, include_disabled: bool) -> list[object]:
        """One `/keys` page: the raw items first, then the API keys, most recent first."""
        raw = self._raw_items[offset : offset + PAGE_SIZE]
        start = max(offset - len(self._raw_items), 0)
        page = self._ordered(include_disabled)[start : start + PAGE_SIZE - len(raw)]
        return [*raw, *(k.item() for k in page)]

    def _ordered(self, include_disabled: bool) -> list[Key]:
        # Sorted once per change of the key set, so paging 10,000 keys only slices.
        if self._order is None:
            api_keys = [k for k in self._by_hash.values() if not k.management]
            everything = sorted(api_keys, key=Key.sort_key, reverse=True)
            self._order = (everything, [k for k in everything if not k.disabled])
        return self._order[0] if include_disabled else self._order[1]
