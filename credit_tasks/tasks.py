"""The Celery tasks: thin shells over the check, the store and delivery."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from celery import Task, shared_task
from kombu.exceptions import OperationalError
from pydantic import SecretStr

from . import history, notify
from .channels import Channel, load_channels
from .check import run_check
from .client import OpenRouterClient
from .errors import ConfigError, CreditTasksError, StoreError
from .settings import get_settings
from .store import Store

log = logging.getLogger(__name__)

# A retry waiting out its countdown is an unacknowledged message: keep countdowns well under
# CREDIT_VISIBILITY_TIMEOUT_S (default 300 s), or the Redis broker hands it out twice.
RETRY_MAX_S = 120


@lru_cache(maxsize=1)
def _store() -> Store:
    return Store.from_settings(get_settings())


@lru_cache(maxsize=1)
def _client() -> OpenRouterClient:
    # one pooled HTTP client per worker process, created after the fork
    return OpenRouterClient(get_settings())


@shared_task(name="credit_tasks.check_credits")
def check_credits(scheduled: bool = False, interval_s: float | None = None) -> dict[str, object]:
    """Check the balance, record it, and dispatch `send_alert` for each alert due.

    Beat sends `scheduled=True` and its interval: such a check is skipped when another
    scheduled check started less than half an interval ago (a second beat). A `.delay()`
    check never is.
    """
    now = datetime.now(UTC)
    try:
        settings = get_settings()
        every_s = (interval_s or settings.check_interval_s) if scheduled else None
        result = run_check(settings, _client(), _store(), now, scheduled_every_s=every_s)
    except CreditTasksError as exc:
        # an expected failure (Redis away, bad settings): one line, and the next beat retries
        log.error("check_credits failed: %s", exc)
        return {"status": "unknown", "checked_at": now.isoformat(), "error": str(exc)}
    for alert in result.alerts:
        _dispatch(alert.as_dict())
    return result.as_dict()


def _dispatch(alert: dict[str, Any]) -> None:
    """Queue `send_alert`; when the broker refuses, deliver here: the alert is committed."""
    try:
        send_alert.delay(alert)
        return
    except OperationalError:
        # its text may name the broker URL; the cooldown would otherwise swallow this alert
        log.error("send_alert not queued (broker unreachable): delivering %s here", alert["id"])
    try:
        outcome = _deliver(_store(), alert)
        if outcome.failed:  # no queue to retry through: say so on the record
            notify.give_up(_store(), alert, outcome.failed, attempts=1)
    except CreditTasksError as exc:
        log.error("alert %s could not be delivered: %s", alert["id"], exc)


@lru_cache(maxsize=1)
def _channels() -> list[Channel]:
    return load_channels(_secret(get_settings().credit_alert_urls))


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _deliver(store: Store, alert: dict[str, Any]) -> notify.Outcome:
    """Publish and send `alert`; a bad CREDIT_ALERT_URLS means Redis only, said on the record."""
    try:
        channels, error = _channels(), None
    except ConfigError as exc:
        log.error("send_alert: %s", exc)
        channels, error = [], str(exc)
    outcome = notify.deliver(store, alert, channels)
    if error:  # after delivery, which writes the record when it is new
        store.record_delivery_error(str(alert["id"]), error)
    return outcome


@shared_task(
    name="credit_tasks.send_alert",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(StoreError,),
    retry_backoff=True,
    retry_backoff_max=RETRY_MAX_S,
    max_retries=8,
)
def send_alert(self: Task, alert: dict[str, Any]) -> dict[str, object]:
    """Publish one alert and send it to the Apprise channels; each gets it once.

    A redelivered or retried task does not publish again, and a retry after a channel
    failed sends only to the channels that failed.
    """
    settings, store = get_settings(), _store()
    outcome = _deliver(store, alert)
    if outcome.failed:
        attempts = settings.credit_alert_retry_attempts
        if self.request.retries + 1 < attempts:
            delay_s = min(settings.credit_alert_retry_s * 2**self.request.retries, RETRY_MAX_S)
            raise self.retry(countdown=delay_s, max_retries=attempts)
        notify.give_up(store, alert, outcome.failed, attempts)
    return {
        "id": alert.get("id"),
        "type": alert.get("type"),
        "delivered": outcome.published,
        "channels_failed": len(outcome.failed),
    }


@shared_task(name="credit_tasks.credit_history")
def credit_history(hours: float = 24) -> dict[str, object]:
    """History points of the last `hours`, oldest first, with their summary."""
    end = datetime.now(UTC)
    points = _store().history(end - timedelta(hours=float(hours)), end)
    return history.report(float(hours), points)
