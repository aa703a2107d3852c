"""Alert delivery: the one path both `send_alert` and `credit-monitor check` use.

An alert is published on the Redis channel once, then sent to each Apprise channel that has
not had it yet; only the channels that failed are tried again. The worker retries through
Celery; the CLI retries in-process, bounded, before it exits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from . import channels as apprise_channels
from .alerts import Alert
from .channels import Channel
from .store import Store

MAX_BACKOFF_S = 120.0  # as send_alert's countdowns: 20 attempts must not sleep for days

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did: published on Redis now, and the channels still failing."""

    published: bool
    failed: list[str]


def deliver(
    store: Store,
    alert: Alert,
    channels: Sequence[Channel] = (),
    now: datetime | None = None,
    *,
    channels_error: str | None = None,
) -> Outcome:
    """Publish `alert` once and send it to every channel that has not had it yet.

    `channels_error` (a bad CREDIT_ALERT_URLS) is written on the alert's record. An alert
    held back by a silence, an ack or the account is never published or sent, whoever asks.
    """
    now = now or datetime.now(UTC)
    alert_id = alert.id
    if not alert.delivers:
        log.info("alert %s %s held back: not delivered", alert.type.value, alert_id)
        return Outcome(False, [])
    published = store.deliver(alert, now)
    if channels_error:  # after the delivery, which writes the record when it is new
        store.record_delivery_error(alert_id, channels_error)
    if published:
        log.info("alert %s %s published: %s", alert.type.value, alert_id, alert.message)
    failed: list[str] = []
    if channels:
        done = store.channels_done(alert_id)
        failed = apprise_channels.send(channels, alert, skip=done)
        ok = [c.id for c in channels if c.id not in done and c.id not in failed]
        store.record_channels(alert_id, ok=ok, failed=failed)
    return Outcome(published, failed)


def give_up(store: Store, alert: Alert, failed: Sequence[str], attempts: int) -> None:
    """Record on the alert that some channels never took it, for `credit-monitor status`."""
    error = (
        f"{len(failed)} channel(s) failed after {attempts} attempts: {', '.join(failed)} "
        "(channel ids; check CREDIT_ALERT_URLS)"
    )
    log.error("alert %s: %s", alert.id, error)
    store.record_delivery_error(alert.id, error)


def deliver_with_retries(
    store: Store,
    alert: Alert,
    channels: Sequence[Channel],
    *,
    attempts: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    channels_error: str | None = None,
) -> Outcome:
    """`deliver`, retrying failed channels in-process with backoff; for the CLI."""
    outcome = deliver(store, alert, channels, channels_error=channels_error)
    for attempt in range(1, attempts):
        if not outcome.failed:
            return outcome
        sleep(min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
        outcome = deliver(store, alert, channels)
    if outcome.failed:
        give_up(store, alert, outcome.failed, attempts)
    return outcome
