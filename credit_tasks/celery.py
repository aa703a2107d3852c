"""The package's own Celery app, configured from the settings.

`celery -A credit_tasks worker|beat` runs it standalone, and `check_credits.delay()` from a
plain script sends through it. A host app that imports the tasks sends them through its
own broker instead, since they are shared tasks.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from .settings import Settings, get_settings

BEAT_ENTRY = "check-openrouter-credits"


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat entry that runs `check_credits` every CREDIT_CHECK_INTERVAL_MINUTES."""
    return {
        BEAT_ENTRY: {
            "task": "credit_tasks.check_credits",
            "schedule": settings.check_interval_s,
            # a check still queued when the next is due is worthless: drop it
            "options": {"expires": settings.check_interval_s},
        }
    }


def celery_config(settings: Settings | None = None) -> dict[str, Any]:
    """Celery settings for running credit_tasks standalone (JSON, UTC, the beat schedule)."""
    settings = settings or get_settings()
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "result_expires": 86400,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(settings),
    }


app = Celery("credit_tasks")
app.add_defaults(celery_config)
# celeryconfig.py beside the project, when importable, takes precedence (Celery's convention)
app.config_from_object("celeryconfig", silent=True)
