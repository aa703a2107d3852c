"""Alert latency: from the check that crosses a threshold to its message on the channel.

A real prefork worker (`celery -A credit_tasks worker`, a subprocess on the bench's
redis-server) runs `check_credits` as beat would send it; the balance alternates between ok
and critical, so every check is a crossing: `critical`, then `resolved`. The clock starts at
the check's own start (the alert's `timestamp`) and, for comparison, at the enqueue.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from celery import Celery

from credit_tasks.procs import stop_process

from .common import (
    API_KEY,
    BIN,
    DB_BROKER,
    DB_LATENCY,
    MANAGEMENT_KEY,
    BenchError,
    Services,
    flushdb,
    prime,
    set_balance,
    summary_ms,
    wait_for,
)

CHANNEL = "openrouter-alerts"  # the default prefix's channel, which subscribers listen on
CRITICAL_USD = 2.0
OK_USD = 50.0  # far above the warning threshold and its recovery margin
WARMUP_CROSSINGS = 2  # the worker's first check builds its clients; not a crossing to time
ALERT_TIMEOUT_S = 15.0
CONCURRENCY = 2  # one worker process per core of the machine the targets are for
API_SAMPLES = 100


def _worker_env(svc: Services) -> dict[str, str]:
    """This environment without the monitor's settings, pointed at the bench's services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_"))
    }
    env.update(
        OPENROUTER_API_KEY=API_KEY,
        OPENROUTER_MANAGEMENT_KEY=MANAGEMENT_KEY,
        OPENROUTER_BASE_URL=svc.sim.base_url,
        REDIS_URL=svc.url(DB_LATENCY),
        CELERY_BROKER_URL=svc.url(DB_BROKER),
        CELERY_RESULT_BACKEND=svc.url(DB_BROKER),
        CREDIT_RETRY_ATTEMPTS="2",
        CREDIT_RETRY_BUDGET_S="5",
        CREDIT_HTTP_TIMEOUT_S="5",
    )
    return env


def api_time(base_url: str, samples: int) -> dict[str, Any]:
    """The API's own time on loopback: raw GETs of /key and /credits on a pooled client."""
    key_s: list[float] = []
    credits_s: list[float] = []
    reads = (
        ("key", {"Authorization": f"Bearer {API_KEY}"}, key_s),
        ("credits", {"Authorization": f"Bearer {MANAGEMENT_KEY}"}, credits_s),
    )
    with httpx.Client(base_url=base_url, timeout=5.0) as http:
        http.get("key", headers=reads[0][1]).raise_for_status()  # opens the connection
        for _ in range(samples):
            # in the check's order, so each pair meets the same load
            for path, auth, out in reads:
                started = time.perf_counter()
                http.get(path, headers=auth).raise_for_status()
                out.append(time.perf_counter() - started)
    key, credits = summary_ms(key_s), summary_ms(credits_s)
    return {
        "key": key,
        "credits": credits,
        "per_check_ms": round(key["mean_ms"] + credits["mean_ms"], 4),
    }


def _next_alert(pubsub: Any, wanted: str) -> tuple[dict[str, Any], float]:
    """The next alert of type `wanted` and the wall time it arrived; others are skipped."""
    deadline = time.monotonic() + ALERT_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=left)
        arrived = time.time()
        if message is None or message["type"] != "message":
            continue
        alert = json.loads(message["data"])
        if alert.get("type") == wanted and alert.get("subject") == "account":
            return alert, arrived
    raise BenchError(f"no {wanted!r} alert on {CHANNEL} within {ALERT_TIMEOUT_S:g} s")


def _start_worker(svc: Services, logdir: Path) -> subprocess.Popen[bytes]:
    log = (logdir / "worker.log").open("wb")
    try:
        return subprocess.Popen(
            [
                str(BIN / "celery"),
                *("-A", "credit_tasks", "worker", "--loglevel=INFO", "--pool=prefork"),
                *(f"--concurrency={CONCURRENCY}", "--hostname=bench@%h"),
                *("--without-gossip", "--without-mingle"),
            ],
            env=_worker_env(svc),
            cwd=logdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so the worker and its pool can be stopped as one
        )
    finally:
        log.close()  # the child holds its own copy


def _tail(logdir: str, chars: int = 2000) -> str:
    return (Path(logdir) / "worker.log").read_text(errors="replace")[-chars:]


def run(svc: Services, *, crossings: int) -> dict[str, Any]:
    """Time `crossings` threshold crossings through a real worker, less the API's own time."""
    prime(svc.sim, OK_USD)
    for db in (DB_LATENCY, DB_BROKER):
        flushdb(svc.url(db))
    # an app of the bench's own: the package's global app stays untouched
    app = Celery("bench-latency", broker=svc.url(DB_BROKER), set_as_current=False)
    app.conf.update(broker_connection_retry_on_startup=True, task_serializer="json")
    listener: Any = redis.Redis.from_url(svc.url(DB_LATENCY), decode_responses=True)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    from_start: list[float] = []
    from_enqueue: list[float] = []
    with tempfile.TemporaryDirectory(prefix="credit-bench-worker-") as logdir:
        proc = _start_worker(svc, Path(logdir))
        try:
            wait_for(
                lambda: proc.poll() is not None or app.control.ping(timeout=0.5),
                60,
                "the worker to answer a ping",
            )
            if proc.poll() is not None:
                raise BenchError(f"the worker exited at start:\n{_tail(logdir)}")
            pubsub.subscribe(CHANNEL)
            api: dict[str, Any] = {}
            for i in range(WARMUP_CROSSINGS + crossings):
                if i == WARMUP_CROSSINGS:
                    # measured once the worker has settled, like the crossings that follow
                    api = api_time(svc.sim.base_url, API_SAMPLES)
                critical = i % 2 == 0
                set_balance(svc.sim, CRITICAL_USD if critical else OK_USD)
                sent = time.time()
                app.send_task("credit_tasks.check_credits")
                try:
                    alert, arrived = _next_alert(pubsub, "critical" if critical else "resolved")
                except BenchError as exc:
                    raise BenchError(f"{exc}; the worker's log ends:\n{_tail(logdir)}") from None
                if i < WARMUP_CROSSINGS:
                    continue
                started = datetime.fromisoformat(alert["timestamp"]).timestamp()
                from_start.append(arrived - started)
                from_enqueue.append(arrived - sent)
        finally:
            pubsub.close()
            listener.close()
            stop_process(proc, grace_s=30)
            app.close()
    for db in (DB_LATENCY, DB_BROKER):
        flushdb(svc.url(db))
    api_ms = api["per_check_ms"]
    start_stats, enqueue_stats = summary_ms(from_start), summary_ms(from_enqueue)
    return {
        "crossings": crossings,
        "worker": {"pool": "prefork", "concurrency": CONCURRENCY},
        "api": api,
        "from_check_start": start_stats,
        "from_enqueue": enqueue_stats,
        "beyond_api_p50_ms": round(start_stats["median_ms"] - api_ms, 4),
        "beyond_api_p95_ms": round(start_stats["p95_ms"] - api_ms, 4),
        "enqueue_beyond_api_p95_ms": round(enqueue_stats["p95_ms"] - api_ms, 4),
    }
