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

    def rollup(self, width_s: int) -> str:
        """The history's buckets of `width_s` seconds, a sorted set scored by bucket start."""
        return f"{self.prefix}:credits:rollup:{width_s}"

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
    def silences(self) -> str:
        """Active silences, id → JSON with their end; ended ones are dropped by the next check."""
        return f"{self.prefix}:alerts:silences"

    @property
    def acks(self) -> str:
        """Acknowledged conditions, subject → JSON naming the episode (the state's `since`)."""
        return f"{self.prefix}:alerts:state:acks"

    @property
    def silences_version(self) -> str:
        """Bumped by every write of a silence or an ack: a check's commit compares it."""
        return f"{self.prefix}:alerts:silences:version"

    @property
    def channel(self) -> str:
        return f"{self.prefix}-alerts"

    def alert(self, alert_id: str) -> str:
        return f"{self.prefix}:alerts:{alert_id}"

    @property
    def keys_current(self) -> str:
        return f"{self.prefix}:keys:current"

    @property
    def keys_by_remaining(self) -> str:
        """The key hashes scored by what each has left, for a page of the least first."""
        return f"{self.prefix}:keys:by_remaining"

    @property
    def alerts_sent(self) -> str:
        """Per alert type, how many alerts were published since the data began."""
        return f"{self.prefix}:alerts:sent"

    @property
    def keys_usage(self) -> str:
        """Per key hash, its recent usage samples (see `spike`): one hash for every key."""
        return f"{self.prefix}:keys:usage"

    def keys_daily(self, day: str) -> str:
        """Per key hash, its `usage_daily` as last seen on `day` (YYYY-MM-DD)."""
        return f"{self.prefix}:keys:daily:{day}"

    def alerts_daily(self, day: str) -> str:
        """Per alert type, how many alerts `day` (YYYY-MM-DD) raised."""
        # not a hex word after alerts: (like "daily"): those are alert ids
        return f"{self.prefix}:alerts:tally:{day}"

    @property
    def spend_baseline(self) -> str:
        """The usual hourly spend from /activity, fetched once per UTC day."""
        return f"{self.prefix}:spend:baseline"

    def report(self, day: str) -> str:
        """The daily report of `day`; set once (NX), which makes it go out once."""
        return f"{self.prefix}:reports:{day}"

    def alert_last(self, alert_type: str, subject: str = "account") -> str:
        """The cooldown marker; the account's keeps the original name, others add the subject."""
        base = f"{self.prefix}:alerts:last:{alert_type}"
        return base if subject == "account" else f"{base}:{subject}"
