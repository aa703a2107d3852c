"""Alert delivery: the one path both `send_alert` and `credit-monitor check` use."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from .store import Store

log = logging.getLogger(__name__)


def deliver(store: Store, alert: dict[str, Any], now: datetime | None = None) -> bool:
    """Store and publish `alert` once; False when it had already been delivered."""
    delivered = store.deliver(alert, now or datetime.now(UTC))
    if delivered:
        log.info(
            "alert %s %s delivered: %s", alert.get("type"), alert.get("id"), alert.get("message")
        )
    else:
        log.info("alert %s already delivered; not publishing again", alert.get("id"))
    return delivered
