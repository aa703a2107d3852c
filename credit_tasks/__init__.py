"""credit_tasks: Celery tasks that watch OpenRouter credits and alert before they run out.

The package's face is lazy: `import credit_tasks.rules` (or history, alerts, keyspace, the
simulator) loads none of Celery, Apprise, redis or httpx. `from credit_tasks import
check_credits` and `celery -A credit_tasks` load the tasks and the app on first use.

The tasks are shared tasks: they go through the current app, a host's own. The package's
`app` never makes itself current; a plain script with no app of its own calls
`app.set_current()` first, or sends by name with `app.send_task`.
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
    value = getattr(importlib.import_module(_FROM[name], __name__), name)
    globals()[name] = value
    return value
