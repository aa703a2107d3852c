"""The package's own Celery app, configured from the settings.

It exists for `celery -A credit_tasks worker|beat|flower` and the `credit-monitor` command,
and is never made the current app: the tasks are shared tasks, so a host app that imports
them sends them through its own broker, whichever is imported first. A plain script with no
app of its own sends through this one by making it current (`app.set_current()`) or by
name (`app.send_task("credit_tasks.check_credits")`).
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from typing import Any

from celery import Celery
from celery.schedules import crontab

from .errors import ConfigError
from .settings import Settings, is_sentinel, load_settings, parse_sentinel_url

BEAT_ENTRY = "check-openrouter-credits"
REPORT_ENTRY = "openrouter-daily-report"
QUEUE = "credits"  # where the package's app sends its tasks
DEFAULT_QUEUE = "celery"  # Celery's, where another app's send_task("credit_tasks.…") lands


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat entry that runs `check_credits` every CREDIT_CHECK_INTERVAL_MINUTES, and
    `daily_report` at CREDIT_REPORT_HOUR_UTC when it is set."""
    return {
        **report_schedule(settings),
        BEAT_ENTRY: {
            "task": "credit_tasks.check_credits",
            "schedule": settings.check_interval_s,
            # lets the check skip a second beat's duplicate (see check_credits)
            "kwargs": {"scheduled": True, "interval_s": settings.check_interval_s},
            # a check still queued when the next is due is worthless: drop it
            "options": {"expires": settings.check_interval_s},
        },
    }


def report_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """`daily_report` at the top of CREDIT_REPORT_HOUR_UTC (UTC), for yesterday; none unset."""
    hour = settings.credit_report_hour_utc
    if hour is None:
        return {}
    return {
        REPORT_ENTRY: {
            "task": "credit_tasks.daily_report",
            "schedule": crontab(minute=0, hour=hour),
            # the task reports on "yesterday": one still queued at midnight would pick the
            # wrong day, so it is dropped then
            "options": {"expires": (24 - hour) * 3600 - 1},
        }
    }


def celery_config(settings: Settings | None = None) -> dict[str, Any]:
    """Celery settings for running credit_tasks standalone (JSON, UTC, the beat schedule).

    Without `settings` it loads them; under the `celery` command a bad one ends the process
    in one line and exit 3, whether the app or a `celeryconfig.py` asked.
    """
    settings = settings or _settings_or_exit()
    return {
        "broker_url": _normalized(settings.broker_url),
        "result_backend": _normalized(settings.result_backend),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "result_expires": 86400,
        "broker_connection_retry_on_startup": True,
        # a monitor outlives a Redis outage: reconnect forever (every 30 s at most), never exit
        "broker_connection_max_retries": None,
        # A dead worker's unacknowledged send_alert comes back after this (Redis's default:
        # 1 h). Shorter is not free: a retry waiting out its countdown is unacknowledged too,
        # and past this it runs twice; send_alert's countdowns stay under 2 min for that.
        # Living workers look for such messages every 10 s at most, not kombu's 100 s.
        "broker_transport_options": {
            "visibility_timeout": settings.credit_visibility_timeout_s,
            "unacked_restore_interval": max(
                1, min(10, int(settings.credit_visibility_timeout_s / 3))
            ),
            "unacked_restore_throttle": 1,
        }
        | _sentinel_transport(settings, settings.broker_url),
        "result_backend_transport_options": _sentinel_transport(settings, settings.result_backend),
        "worker_hijack_root_logger": False,
        # `worker --queues=credits` runs everything this app sends; a worker without
        # --queues reads both queues
        "task_routes": {"credit_tasks.*": {"queue": QUEUE}},
        "task_queues": {QUEUE: {}, DEFAULT_QUEUE: {}},
        "beat_schedule": beat_schedule(settings),
        **(redbeat_config(settings) if settings.credit_beat_scheduler == "redbeat" else {}),
    }


def _normalized(url: str) -> str:
    # kombu and Celery read the login and the db from the first Sentinel only
    return parse_sentinel_url(url).normalized() if is_sentinel(url) else url


def _sentinel_transport(settings: Settings, url: str) -> dict[str, Any]:
    """kombu's and Celery's own Sentinel options, for a `sentinel://` broker or backend."""
    if not is_sentinel(url):
        return {}
    return {
        "master_name": settings.credit_redis_sentinel_master,
        "sentinel_kwargs": settings.sentinel_options(),
    }


def _redbeat_redis(settings: Settings) -> tuple[str, dict[str, Any]]:
    """RedBeat's URL and client options: its own Sentinel support for a `sentinel://` URL."""
    sentinel = settings.sentinel
    if sentinel is None:
        return settings.redis_url, {}  # not the broker's options, which it would inherit
    host, port = sentinel.hosts[0]  # for its banner: the Sentinels are in the options
    return f"redis-sentinel://{host}:{port}/{sentinel.db}", {
        "sentinels": list(sentinel.hosts),
        "service_name": settings.credit_redis_sentinel_master,
        "db": sentinel.db,
        "username": sentinel.username,
        "password": sentinel.password,
        "socket_timeout": 5,
        "sentinel_kwargs": settings.sentinel_options(),
        # through a failover the master is away for a few seconds: wait, do not crash beat
        "retry_period": 60,
    }


def redbeat_config(settings: Settings) -> dict[str, Any]:
    """Beat on RedBeat: the schedule and a leader lock in Redis, so only one beat sends."""
    # a standby retries the lock this often, and a crashed leader's lock expires after 5 ×
    max_interval_s = max(1.0, min(30.0, settings.check_interval_s))
    url, options = _redbeat_redis(settings)
    return {
        "beat_scheduler": "credit_tasks.beat:RedBeatScheduler",
        "redbeat_redis_url": url,
        "redbeat_redis_options": options,
        "redbeat_key_prefix": f"{settings.credit_redis_prefix}:redbeat:",
        "redbeat_lock_timeout": math.ceil(5 * max_interval_s),
        "beat_max_loop_interval": max_interval_s,
    }


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        # `celery worker|beat` reads this while parsing its options: one line, not a traceback
        if "celery.bin.celery" in sys.modules:
            print(f"credit_tasks: {exc}", file=sys.stderr)
            raise SystemExit(3) from None
        raise


def standalone_config() -> dict[str, Any]:
    """The settings' Celery config with a `celeryconfig.py` on top, when one is importable:
    its values win, as Celery's convention has it.

    One mapping, not `add_defaults` beside `config_from_object`: the defaults an app adds are
    looked up before the object's values, so `celeryconfig.py` could not override them.
    """
    config = celery_config()
    try:
        module = importlib.import_module("celeryconfig")
    except ModuleNotFoundError as exc:
        if exc.name != "celeryconfig":
            raise
        return config
    config.update(
        (name, value)
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and value is not celery_config  # an older celeryconfig.py imported it
    )
    return config


# never the current app: a host's tasks must not follow this one's broker
app = Celery("credit_tasks", include=["credit_tasks.tasks"], set_as_current=False)
app.add_defaults(standalone_config)
