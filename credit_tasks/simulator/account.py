"""The simulated account: its balance, keys, workspaces, spend and the activity it leaves.

The keys' shapes are in keys.py, the workspaces' in workspaces.py, the spend by day and model
in activity.py. Thread-safe: every public method holds the account's lock, and the routes
hold it while they read several figures for one answer.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .activity import DEFAULT_MODEL, MODELS, Ledger
from .keys import KEY_FIELDS, PERIODS, Key, label, now_iso, parse_time, period_labels
from .workspaces import DEFAULT_WORKSPACE_ID, DEFAULT_WORKSPACE_NAME, Workspace

PAGE_SIZE = 100  # /keys items per page, as OpenRouter serves them
LIMIT_RESETS: tuple[str | None, ...] = (None, "daily", "weekly", "monthly")


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
        # a key that spends fast for a while: (hash, usd per hour, from, until) in monotonic s
        self._loop: tuple[str, float, float, float] | None = None
        self._today: date | None = None
        self.ledger = Ledger()
        stamp = now_iso()
        self.workspaces = {
            DEFAULT_WORKSPACE_ID: Workspace(
                DEFAULT_WORKSPACE_ID, DEFAULT_WORKSPACE_NAME, "default", stamp
            )
        }

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
        workspace: str | None = None,
        model: str = DEFAULT_MODEL,
        usage_daily: float | None = None,
        usage_weekly: float | None = None,
        usage_monthly: float | None = None,
    ) -> str:
        """Register (or replace) a key; returns its hash.

        `workspace` is a workspace id or name (the default one when None). The key's spend in
        the current day, week and month is 0 unless given (a week's covers the day's, and a
        month's the week's, when not given).
        """
        if not key:
            raise ValueError("key must be a non-empty string")
        if limit_reset not in LIMIT_RESETS:
            raise ValueError(f"limit_reset must be one of {LIMIT_RESETS}")
        if model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}")
        stamp = created_at or now_iso()
        parse_time(stamp)  # reject bad timestamps now, not on the next /keys request
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
                self._workspace(workspace).id,
                model,
            )
            weekly = usage_weekly if usage_weekly is not None else usage_daily
            monthly = usage_monthly if usage_monthly is not None else weekly
            labels = period_labels(self.today())
            for kind, spent in zip(PERIODS, (usage_daily, weekly, monthly), strict=True):
                entry.bases[kind] = (labels[kind], entry.usage - float(spent or 0.0))
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
        unknown = set(fields) - KEY_FIELDS
        if unknown:
            raise ValueError(f"unknown key fields: {sorted(unknown)}")
        if fields.get("limit_reset") not in LIMIT_RESETS:
            raise ValueError(f"limit_reset must be one of {LIMIT_RESETS}")
        if "created_at" in fields:
            parse_time(fields["created_at"])
        if fields.get("model", DEFAULT_MODEL) not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}")
        with self.lock:
            self.accrue()
            entry = self.find(key_or_hash)
            for name, value in fields.items():
                if name in ("limit", "usage") and value is not None:
                    value = float(value)
                if name == "usage":  # a usage set by hand is not spend of this day or week
                    moved = value - entry.usage
                    entry.bases = {
                        k: (label, base + moved) for k, (label, base) in entry.bases.items()
                    }
                setattr(entry, name, value)
            entry.updated_at = now_iso()
            self._order = None

    def add_raw_key_item(self, item: object) -> None:
        """List `item` as it is in /keys, before every key: a server sending what cannot be read."""
        with self.lock:
            self._raw_items.append(item)

    def add_workspace(self, name: str) -> str:
        """Add a workspace (its id follows from its name); returns its id."""
        if not name:
            raise ValueError("a workspace needs a name")
        with self.lock:
            workspace = Workspace.named(name, now_iso())
            self.workspaces.setdefault(workspace.id, workspace)
            return workspace.id

    def _workspace(self, id_or_name: str | None) -> Workspace:
        if id_or_name is None:
            return self.workspaces[DEFAULT_WORKSPACE_ID]
        for w in self.workspaces.values():
            if id_or_name in (w.id, w.name, w.slug):
                return w
        raise KeyError("no such workspace")

    def add_activity(
        self,
        day: str,
        usage: float,
        *,
        model: str = DEFAULT_MODEL,
        requests: int | None = None,
        key: str | None = None,
        workspace: str | None = None,
    ) -> None:
        """Record spend on a past day, as /activity will show it once the day is complete."""
        with self.lock:
            when = date.fromisoformat(day)
            entry = self.find(key) if key is not None else None
            where = entry.workspace_id if entry else self._workspace(workspace).id
            self.ledger.add(
                when, model, entry.hash if entry else None, where, float(usage), requests
            )

    def seed_activity(self, days: int, usd_per_day: float) -> None:
        """The same spend on each of the last `days` completed days: a usual pace."""
        for back in range(1, days + 1):
            self.add_activity((self.today() - timedelta(days=back)).isoformat(), usd_per_day)

    def set_today(self, day: str | None) -> None:
        """The simulator's UTC date (None: the real one), for tests that fix the time."""
        with self.lock:
            self._today = None if day is None else date.fromisoformat(day)

    def today(self) -> date:
        return self._today or datetime.now(UTC).date()

    def set_loop(
        self, *, key: str, usd_per_hour: float, after_s: float = 0.0, for_s: float | None = None
    ) -> None:
        """Make `key` spend `usd_per_hour` besides the steady spend: from `after_s` seconds on,
        for `for_s` seconds (None: until stopped, usd_per_hour=0 stops it)."""
        with self.lock:
            self.accrue()
            start = time.monotonic() + float(after_s)
            end = math.inf if for_s is None else start + float(for_s)
            self._loop = (self.find(key).hash, float(usd_per_hour), start, end)

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
        now, last = time.monotonic(), self._last_accrual
        self._last_accrual = now
        spenders = [(self._spend_hash, self._spend_rate, -math.inf, math.inf)]
        if self._loop is not None:
            spenders.append(self._loop)
        labels = period_labels(self.today())
        for key_hash, rate, start, end in spenders:
            seconds = max(0.0, min(now, end) - max(last, start))
            if seconds > 0 and rate > 0:
                self._charge(key_hash, rate * seconds / 3600.0, labels)
        if self._topup_below is not None and self._credits - self._usage < self._topup_below:
            self._credits += self._topup_usd

    def _charge(self, key_hash: str | None, amount: float, labels: dict[str, str]) -> None:
        entry = self._by_hash.get(key_hash) if key_hash else None
        if entry is not None:
            # A disabled or capped-out key cannot spend, as on OpenRouter.
            room = 0.0 if entry.disabled else entry.remaining
            amount = amount if room is None else min(amount, max(room, 0.0))
            entry.roll(labels)  # what was spent before a new day began stays in the old one
            entry.usage += amount
        self._usage += amount
        model = entry.model if entry else DEFAULT_MODEL
        where = entry.workspace_id if entry else DEFAULT_WORKSPACE_ID
        self.ledger.add(self.today(), model, key_hash if entry else None, where, amount)

    def totals(self) -> tuple[float, float]:
        """`total_credits` and `total_usage`, as `/credits` answers them."""
        return self._credits, self._usage

    def keys_page(
        self, offset: int, include_disabled: bool, workspace_id: str | None = None
    ) -> list[object]:
        """One `/keys` page of one workspace (the default one when None): the raw items first,
        then the API keys, most recent first."""
        default = workspace_id in (None, DEFAULT_WORKSPACE_ID)
        raws = self._raw_items if default else []
        raw = raws[offset : offset + PAGE_SIZE]
        start = max(offset - len(raws), 0)
        keys = self._ordered(include_disabled)
        if not default or len(self.workspaces) > 1:
            wanted = workspace_id or DEFAULT_WORKSPACE_ID
            keys = [k for k in keys if k.workspace_id == wanted]
        page = keys[start : start + PAGE_SIZE - len(raw)]
        labels = period_labels(self.today())
        return [*raw, *(k.item(labels) for k in page)]

    def _ordered(self, include_disabled: bool) -> list[Key]:
        # Sorted once per change of the key set, so paging 10,000 keys only slices.
        if self._order is None:
            api_keys = [k for k in self._by_hash.values() if not k.management]
            everything = sorted(api_keys, key=Key.sort_key, reverse=True)
            self._order = (everything, [k for k in everything if not k.disabled])
        return self._order[0] if include_disabled else self._order[1]
