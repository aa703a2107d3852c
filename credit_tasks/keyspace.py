"""Every Redis key and the pub/sub channel, built from `CREDIT_REDIS_PREFIX` in one place."""

from __future__ import annotations

from dataclasses import dataclass

ALERTS_LIST_CAP = 100  # alerts:list keeps the newest ids only


@dataclass(frozen=True)
class Keyspace:
    """Key names for one prefix; with the default prefix they are the original utility's."""

    prefix: str = "openrouter"

    @property
    def current(self) -> str:
        return f"{self.prefix}:credits:current"

    @property
    def timeline(self) -> str:
        return f"{self.prefix}:credits:timeline"

    @property
    def monitoring_status(self) -> str:
        return f"{self.prefix}:monitoring:status"

    @property
    def check_lock(self) -> str:
        return f"{self.prefix}:monitoring:lock"

    @property
    def scheduled_guard(self) -> str:
        """Held for half an interval by each scheduled check, so a second beat's is skipped."""
        return f"{self.prefix}:monitoring:scheduled"

    @property
    def alerts_list(self) -> str:
        return f"{self.prefix}:alerts:list"

    @property
    def alert_state(self) -> str:
        return f"{self.prefix}:alerts:state"

    @property
    def channel(self) -> str:
        return f"{self.prefix}-alerts"

    def alert(self, alert_id: str) -> str:
        return f"{self.prefix}:alerts:{alert_id}"

    @property
    def keys_current(self) -> str:
        return f"{self.prefix}:keys:current"

    def alert_last(self, alert_type: str, subject: str = "account") -> str:
        """The cooldown marker; the account's keeps the original name, others add the subject."""
        base = f"{self.prefix}:alerts:last:{alert_type}"
        return base if subject == "account" else f"{base}:{subject}"
