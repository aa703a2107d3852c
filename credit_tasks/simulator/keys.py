"""An API key of the simulated account, and the shapes `/keys` and `/key` give it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .activity import DEFAULT_MODEL
from .workspaces import DEFAULT_WORKSPACE_ID

CREATOR_USER_ID = "user_2simu1atorXXXXXXXXXXXXXXXX"
WORKSPACE_ID = DEFAULT_WORKSPACE_ID
PERIODS = ("daily", "weekly", "monthly")
KEY_FIELDS = frozenset(
    {"name", "limit", "usage", "limit_reset", "disabled", "management", "created_at", "model"}
)


def period_labels(today: date) -> dict[str, str]:
    """The current UTC day, week (from Monday) and month, as the key's spend counters see them."""
    monday = today - timedelta(days=today.weekday())
    return {"daily": today.isoformat(), "weekly": monday.isoformat(), "monthly": f"{today:%Y-%m}"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def parse_time(text: str) -> datetime:
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
    workspace_id: str = DEFAULT_WORKSPACE_ID
    model: str = DEFAULT_MODEL
    # per period, its label and the usage when it began: usage_daily is usage less that
    bases: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def remaining(self) -> float | None:
        # negative once the key is overspent, as OpenRouter reports it
        return None if self.limit is None else self.limit - self.usage

    def sort_key(self) -> tuple[datetime, int]:
        return (parse_time(self.created_at), self.seq)

    def roll(self, labels: dict[str, str]) -> None:
        """Start a new day, week or month: its spend counts from the usage now."""
        for kind, label in labels.items():
            if self.bases.get(kind, ("", 0.0))[0] != label:
                self.bases[kind] = (label, self.usage)

    def spent(self, labels: dict[str, str]) -> dict[str, float]:
        """usage_daily, usage_weekly and usage_monthly."""
        self.roll(labels)
        return {f"usage_{kind}": max(0.0, self.usage - self.bases[kind][1]) for kind in PERIODS}

    def item(self, labels: dict[str, str]) -> dict[str, Any]:
        """The `/keys` item shape."""
        u, spent = self.usage, self.spent(labels)
        return {
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "creator_user_id": CREATOR_USER_ID,
            "workspace_id": self.workspace_id,
            "hash": self.hash,
            "label": label(self.secret),
            "name": self.name,
            "disabled": self.disabled,
            "limit": self.limit,
            "limit_remaining": self.remaining,
            "limit_reset": self.limit_reset,
            "include_byok_in_limit": False,
            "usage": u,
            **spent,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
        }

    def info(self, labels: dict[str, str], *, free_tier: bool, minimal: bool) -> dict[str, Any]:
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
            **self.spent(labels),
        }
