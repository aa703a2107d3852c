"""credit_tasks: Celery tasks that watch OpenRouter credits and alert before they run out.

The package's face is lazy: `import credit_tasks.rules` (or history, alerts, keyspace, the
simulator) loads none of Celery, Apprise, redis or httpx. `from credit_tasks import
check_credits` and `celery -A credit_tasks` load the tasks and the app on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .celery import app
    from .tasks import check_credits, credit_history, daily_report, send_alert

__all__ = ["app", "check_credits", "credit_history", "daily_report", "send_alert"]

_FROM = {
    "app": ".celery",
    "check_credits": ".tasks",
    "credit_history": ".tasks",
    "daily_report": ".tasks",
    "send_alert": ".tasks",
}


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name != "app":
        # the tasks are shared tasks: the package's app must exist for them to bind to it
        importlib.import_module(".celery", __name__)
    value = getattr(importlib.import_module(_FROM[name], __name__), name)
    globals()[name] = value
    return value
