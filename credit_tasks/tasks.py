"""The Celery tasks: thin shells over the check, the store and delivery."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from celery import Task, shared_task
from pydantic import SecretStr

from . import history, notify
from .channels import Channel, load_channels
from .check import run_check
from .client import OpenRouterClient
from .errors import ConfigError, CreditTasksError, StoreError
from .settings import get_settings
from .store import Store

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _store() -> Store:
    return Store.from_settings(get_settings())


@lru_cache(maxsize=1)
def _client() -> OpenRouterClient:
    # one pooled HTTP client per worker process, created after the fork
    return OpenRouterClient(get_settings())


@shared_task(name="credit_tasks.check_credits")
def check_credits() -> dict[str, object]:
    """Check the balance, record it, and dispatch `send_alert` for each alert due."""
    now = datetime.now(UTC)
    try:
        result = run_check(get_settings(), _client(), _store(), now)
    except CreditTasksError as exc:
        # an expected failure (Redis away, bad settings): one line, and the next beat retries
        log.error("check_credits failed: %s", exc)
        return {"status": "unknown", "checked_at": now.isoformat(), "error": str(exc)}
    for alert in result.alerts:
        send_alert.delay(alert.as_dict())
    return result.as_dict()


@lru_cache(maxsize=1)
def _channels() -> list[Channel]:
    return load_channels(_secret(get_settings().credit_alert_urls))


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


@shared_task(
    name="credit_tasks.send_alert",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(StoreError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def send_alert(self: Task, alert: dict[str, Any]) -> dict[str, object]:
    """Publish one alert and send it to the Apprise channels; each gets it once.

    A redelivered or retried task does not publish again, and a retry after a channel
    failed sends only to the channels that failed.
    """
    settings, store = get_settings(), _store()
    try:
        channels = _channels()
    except ConfigError as exc:
        # publish on Redis all the same; the record says why no person was told
        log.error("send_alert: %s", exc)
        channels = []
        store.record_delivery_error(str(alert["id"]), str(exc))
    outcome = notify.deliver(store, alert, channels)
    if outcome.failed:
        attempts = settings.credit_alert_retry_attempts
        if self.request.retries + 1 < attempts:
            delay_s = settings.credit_alert_retry_s * 2**self.request.retries
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
