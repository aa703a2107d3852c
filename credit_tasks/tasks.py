"""The Celery tasks: thin shells over the check, the store and delivery.

They are shared tasks, bound to whichever app is current: the host's, or in the package's
own worker its app. Importing this module creates no app.

Each worker process holds one `Runtime` (settings, store, client, channels), built on first
use after the fork and closed when the process shuts down. `use_runtime` installs another
one, for tests or for a host that builds its own.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from datetime import date as datetime_date
from typing import Any

from celery import Task, shared_task
from celery.signals import (
    beat_embedded_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from kombu.exceptions import OperationalError

from . import notify, procs, report, rollup
from .alerts import Alert
from .check import run_check
from .errors import CreditTasksError, StoreError
from .runtime import Runtime
from .settings import load_settings

log = logging.getLogger(__name__)

# A retry waiting out its countdown is an unacknowledged message: keep countdowns well under
# CREDIT_VISIBILITY_TIMEOUT_S (default 300 s), or the Redis broker hands it out twice.
RETRY_MAX_S = 120
# A send_alert runs within a second: an alert still unpublished this long after it was
# committed lost its message (a failed-over broker, a killed worker), and the next check
# sends it again, unless it is old news by then.
REDISPATCH_AFTER_S = 30.0
REDISPATCH_WITHIN_S = 3600.0

_held: tuple[int, Runtime] | None = None


def runtime() -> Runtime:
    """This process's resources, built on first use; a forked child builds its own."""
    global _held
    if _held is None or _held[0] != os.getpid():
        # a parent's sockets are not ours to close after a fork: just let them go
        _held = (os.getpid(), Runtime(load_settings()))
    return _held[1]


def use_runtime(new: Runtime | None) -> None:
    """Install `new` as this process's resources (None: build afresh on next use)."""
    global _held
    if _held is not None and _held[0] == os.getpid() and _held[1] is not new:
        _held[1].close()
    _held = (os.getpid(), new) if new is not None else None


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    use_runtime(None)


_WORKER_PID = os.getpid()  # read in the worker's main process, before it forks


@worker_process_init.connect
@beat_embedded_init.connect
def _die_with_the_worker(**_: Any) -> None:
    """A pool process or an embedded beat never outlives its worker, even a SIGKILLed one."""
    if os.getpid() == _WORKER_PID:
        return  # `--pool=solo` (or threads) sends it in the worker itself: not a child of it
    procs.die_with_parent(_WORKER_PID)


@worker_ready.connect
def _warn_if_redis_evicts(**_: Any) -> None:
    """Once per worker, at start: an evicting Redis loses the alert state between checks."""
    try:
        with Runtime(load_settings()) as rt:  # its own: the pool's children build theirs
            warning = rt.store.eviction_warning()
    except CreditTasksError as exc:  # Redis away at start: the checks will say so
        log.debug("Redis eviction policy not checked: %s", exc)
        return
    if warning:
        log.warning("%s", warning)


@shared_task(name="credit_tasks.check_credits")
def check_credits(scheduled: bool = False, interval_s: float | None = None) -> dict[str, object]:
    """Check the balance, record it, and dispatch `send_alert` for each alert due.

    Beat sends `scheduled=True` and its interval: such a check is skipped when another
    scheduled check started less than half an interval ago (a second beat). A `.delay()`
    check never is.
    """
    now = datetime.now(UTC)
    try:
        rt = runtime()
        every_s = (interval_s or rt.settings.check_interval_s) if scheduled else None
        result = run_check(rt.settings, rt.client, rt.store, now, scheduled_every_s=every_s)
    except CreditTasksError as exc:
        # an expected failure (Redis away, bad settings): one line, and the next beat retries
        log.error("check_credits failed: %s", exc)
        return {"status": "unknown", "checked_at": now.isoformat(), "error": str(exc)}
    for alert in result.alerts:
        _dispatch(alert)
    if not result.skipped:
        _redispatch_lost(rt, now)
    return result.as_dict()


def _redispatch_lost(rt: Runtime, now: datetime) -> None:
    """Dispatch again the recent alerts whose delivery never happened; publishing is once."""
    try:
        lost = rt.store.undelivered(now, REDISPATCH_AFTER_S, REDISPATCH_WITHIN_S)
    except StoreError as exc:
        log.warning("lost alerts not looked for: %s", exc)
        return
    for alert in lost:
        log.warning("alert %s was never delivered: sending it again", alert.id)
        _dispatch(alert)


def _dispatch(alert: Alert) -> None:
    """Queue `send_alert`; when the broker refuses, deliver here: the alert is committed."""
    try:
        send_alert.delay(alert.as_dict())  # the one place an alert becomes a dict
        return
    except OperationalError:
        # its text may name the broker URL; the cooldown would otherwise swallow this alert
        log.error("send_alert not queued (broker unreachable): delivering %s here", alert.id)
    try:
        rt = runtime()
        outcome = _deliver(rt, alert)
        if outcome.failed:  # no queue to retry through: say so on the record
            notify.give_up(rt.store, alert, outcome.failed, attempts=1)
    except CreditTasksError as exc:
        log.error("alert %s could not be delivered: %s", alert.id, exc)


def _deliver(rt: Runtime, alert: Alert) -> notify.Outcome:
    return notify.deliver(rt.store, alert, rt.channels, channels_error=rt.channels_error)


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
def send_alert(self: Task, data: dict[str, Any]) -> dict[str, object]:
    """Publish one alert and send it to the Apprise channels; each gets it once.

    A redelivered or retried task does not publish again, and a retry after a channel
    failed sends only to the channels that failed.
    """
    try:
        alert = Alert.from_dict(data)
    except ValueError as exc:  # sent by hand, or by another version: say so, do not retry
        log.error("send_alert refused its argument: %s", exc)
        return {"id": data.get("id") if isinstance(data, dict) else None, "error": str(exc)}
    rt = runtime()
    outcome = _deliver(rt, alert)
    if outcome.failed:
        attempts = rt.settings.credit_alert_retry_attempts
        if self.request.retries + 1 < attempts:
            delay_s = min(rt.settings.credit_alert_retry_s * 2**self.request.retries, RETRY_MAX_S)
            raise self.retry(countdown=delay_s, max_retries=attempts)
        notify.give_up(rt.store, alert, outcome.failed, attempts)
    return {
        "id": alert.id,
        "type": alert.type.value,
        "delivered": outcome.published,
        "channels_failed": len(outcome.failed),
    }


@shared_task(name="credit_tasks.credit_history")
def credit_history(hours: float = 24) -> dict[str, object]:
    """The last `hours` in at most 1,000 buckets (min, max, last), oldest first, summarized."""
    end = datetime.now(UTC)
    rt = runtime()
    # nothing older than the retention is kept, and the clock cannot go back 1e20 hours
    hours = min(float(hours), rt.settings.retention_s / 3600)
    width_s, buckets = rt.store.buckets(end - timedelta(hours=hours), end)
    return rollup.report(hours, width_s, buckets)


@shared_task(name="credit_tasks.daily_report")
def daily_report(date: str | None = None) -> dict[str, object]:
    """Build the report of `date` (yesterday, UTC, by default), keep it and deliver it once.

    However many beats or workers send it, one stores the date's report (SET NX) and only
    that one delivers it, as a message of type `report`; the others say it went out.
    """
    now = datetime.now(UTC)
    day = date or report.yesterday(now)
    try:
        day = datetime_date.fromisoformat(day).isoformat()
    except (TypeError, ValueError):  # sent by hand: say so, do not build a report of nothing
        log.error("daily_report refused its date %r: use YYYY-MM-DD", day)
        return {"date": None, "error": f"not a date: {day!r} (use YYYY-MM-DD)"}
    try:
        rt = runtime()
        the_report = rt.report(day)
        if not rt.store.save_report(day, the_report.as_dict()):
            log.info("the report of %s went out already", day)
            return {"date": day, "skipped": True}
        status = rt.store.current().get("status")
    except CreditTasksError as exc:
        log.error("daily_report failed: %s", exc)
        return {"date": day, "error": str(exc)}
    _dispatch(report.as_alert(the_report, status, now))
    return the_report.as_dict() | {"skipped": False}
