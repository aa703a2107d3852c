"""Secrets stay secret: a full run with failures and alerts, then every place is scanned.

The run: a worker at DEBUG level and the CLI, on a Redis with a password, alerting to an
Apprise channel whose URL carries a token, through a simulator that misbehaves in the ways
that tempt code to print what it holds (errors echoing the key, a label that is the whole
key, HTML, outages, a refused key, a failing channel). Then Redis (every key and value of the
data and Celery dbs, queued message bodies decoded), the worker's log, the task results,
the CLI's output and the exceptions' full text are searched for each secret.
"""

from __future__ import annotations

import base64
import json
import subprocess
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from credit_tasks.client import OpenRouterClient
from credit_tasks.errors import FetchError
from credit_tasks.simulator import Simulator

from .conftest import API_KEY, BIN, MANAGEMENT_KEY, make_settings, run_cli, service_env, wait_for
from .receiver import Receiver, serve

REDIS_PASSWORD = "redis-pw-4b1d9e7c2a"
WRONG_PASSWORD = "wrong-pw-8e2f6a0c3d"
CHANNEL_TOKEN = "chan-token-5c8e1f4a9b"
SECRETS = {
    "the API key": API_KEY,
    "the management key": MANAGEMENT_KEY,
    "the channel token": CHANNEL_TOKEN,
    "the Redis password": REDIS_PASSWORD,
    "a wrong Redis password": WRONG_PASSWORD,
}


def leaks(text: str) -> list[str]:
    """Which secrets `text` holds, whole or as a telling middle part."""
    found = []
    for name, secret in SECRETS.items():
        middle = secret[12:-3] if len(secret) > 24 else secret  # labels show 12 + 3 chars
        if secret in text or middle in text:
            found.append(name)
    return found


def redis_dump(client: redis.Redis) -> str:
    """Every key and value of one db as text, with queued Celery message bodies decoded."""
    lines = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "string":
            value = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = f"<{kind}>"
        lines.append(f"{key} {value}")
        for item in value if isinstance(value, list) else [value]:
            lines.extend(_decoded_bodies(item))
    return "\n".join(lines)


def _decoded_bodies(value: object) -> list[str]:
    # kombu keeps a task's args base64-encoded inside a JSON envelope
    try:
        envelope = json.loads(str(value))
        raw = envelope["body"] if isinstance(envelope, dict) else json.loads(envelope[0])["body"]
        return [base64.b64decode(raw).decode()]
    except (ValueError, KeyError, TypeError, IndexError):
        return []


@pytest.fixture(autouse=True)
def own_broker_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery reads these variables before an app's own broker; a shell may set them."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)


@pytest.fixture
def channel_receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def stack(
    sim: Simulator, own_redis: Any, channel_receiver: Receiver, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Celery, Path, str]]:
    """A password Redis, a DEBUG worker on it and an app to send tasks; yields env, app, log."""
    server = own_redis("--requirepass", REDIS_PASSWORD)
    base = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}"
    channel_url = f"json://alertbot:{CHANNEL_TOKEN}@127.0.0.1:{channel_receiver.port}/hook"
    env = service_env(
        sim,
        base,
        REDIS_URL=f"{base}/0",
        CELERY_BROKER_URL=f"{base}/1",
        CELERY_RESULT_BACKEND=f"{base}/1",
        CREDIT_ALERT_URLS=channel_url,
        CREDIT_ALERT_RETRY_S="0.1",
        CREDIT_UNKNOWN_AFTER_FAILURES="2",
        CREDIT_HTTP_TIMEOUT_S="1",
        CREDIT_RETRY_BUDGET_S="1",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(str(BIN / "celery"), "-A", "credit_tasks", "worker", "--loglevel=DEBUG"),
                *("--concurrency=2", "--without-gossip", "--without-mingle", "-E"),
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app = Celery("secrets", broker=f"{base}/1", backend=f"{base}/1", set_as_current=False)
    try:
        wait_for(lambda: "ready." in log.read_text(), 30, "the DEBUG worker")
        yield env, app, log, base
    finally:
        app.close()
        proc.terminate()
        proc.wait(timeout=30)


def run_task(app: Celery, name: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = app.send_task(name, kwargs=kwargs).get(timeout=60)
    return result


def test_no_secret_reaches_redis_logs_task_messages_results_output_or_exceptions(
    sim: Simulator,
    stack: tuple[dict[str, str], Celery, Path, str],
    channel_receiver: Receiver,
    redis_url: str,
    tmp_path: Path,
) -> None:
    env, app, log, base = stack
    results: list[dict[str, Any]] = []
    check = "credit_tasks.check_credits"

    sim.set_account(total_credits=4.0, total_usage=1.0)  # $3: critical
    channel_receiver.fail_next(1)  # the channel fails once: a send_alert retry
    results.append(run_task(app, check))
    sim.inject("status", status=401, path="/key", message=f"key {API_KEY} is disabled")
    results.append(run_task(app, check))  # refused, and the server echoed the key
    sim.inject("status", status=403, path="/credits", message=f"{MANAGEMENT_KEY} is not allowed")
    results.append(run_task(app, check))
    sim.inject("body", path="/key", body=f"<html>{API_KEY}</html>", content_type="text/html")
    results.append(run_task(app, check))
    sim.inject("status", status=503, times=20)
    results.append(run_task(app, check))  # an outage: retried, then unknown
    sim.clear_faults()
    sim.set_account(total_credits=60.0, total_usage=1.0)
    results.append(run_task(app, check))  # recovered: resolved
    results.append(run_task(app, "credit_tasks.credit_history", hours=1))
    raised = [a["id"] for r in results for a in r.get("alerts", [])]
    assert [a["type"] for r in results for a in r.get("alerts", [])] == [
        "critical", "unknown", "resolved",
    ]  # fmt: skip
    data = redis.Redis.from_url(f"{base}/0", decode_responses=True)
    for alert_id in raised:
        wait_for(
            lambda alert_id=alert_id: data.hget(f"openrouter:alerts:{alert_id}", "channels_ok"),
            60,
            f"alert {alert_id} to reach the channel",
        )

    outputs = []
    wrong_password = base.replace(REDIS_PASSWORD, WRONG_PASSWORD)
    for extra, args in [
        ({}, ["check"]),
        ({}, ["check", "--json"]),
        ({}, ["status"]),
        ({}, ["status", "--json"]),
        ({}, ["history", "1"]),
        ({}, ["keys", "--json"]),
        ({"REDIS_URL": f"{wrong_password}/0"}, ["check"]),
        ({"REDIS_URL": f"{wrong_password}/0"}, ["status"]),
        ({"OPENROUTER_API_KEY": API_KEY + " x"}, ["check"]),
        ({"CREDIT_ALERT_URLS": f"nosuchscheme://{CHANNEL_TOKEN}@host"}, ["check"]),
    ]:
        outputs.append(run_cli({**env, **extra}, *args, cwd=tmp_path))
    sim.inject("status", status=401, path="/key", message=f"key {API_KEY} is disabled")
    outputs.append(run_cli(env, "check", cwd=tmp_path))
    # last, so that no later check overwrites what it stores: a label that is the whole key
    sim.inject("data", path="/key", data={"usage": 1.0, "limit": None, "label": API_KEY})
    results.append(run_task(app, check))

    # the exceptions themselves, with their causes, as a traceback would print them
    errors = []
    settings = make_settings(sim, redis_url, credit_retry_attempts=1)
    for kind, kwargs in [
        ("status", {"status": 401, "message": f"no {API_KEY}"}),
        ("error_in_200", {"status": 500, "message": f"oops {API_KEY}"}),
        ("body", {"body": f'{{"error": {{"code": 403, "message": "{API_KEY}"}}}}'}),
        ("reset", {}),
    ]:
        sim.inject(kind, path="/key", **kwargs)  # type: ignore[arg-type]
        with OpenRouterClient(settings) as client, pytest.raises(FetchError) as info:
            client.fetch_snapshot(datetime.now(UTC))
        errors.append("".join(traceback.format_exception(info.value)))

    celery_db = redis.Redis.from_url(f"{base}/1", decode_responses=True)
    places = {
        "Redis db 0 (data)": redis_dump(data),
        "Redis db 1 (broker, results)": redis_dump(celery_db),
        "the worker's DEBUG log": log.read_text(errors="replace"),
        "task results": json.dumps(results),
        "CLI output": "".join(o.stdout + o.stderr for o in outputs),
        "exception messages": "\n".join(errors),
        "what the channel received": json.dumps(channel_receiver.posts),
    }
    data.close()
    celery_db.close()

    # the run did what it should, so the scan had something to look at
    statuses = [r.get("status") for r in results]
    assert statuses == ["critical", "unknown", "unknown", "unknown", "unknown", "ok", None, "ok"]
    assert "credit_tasks.send_alert" in places["the worker's DEBUG log"]
    assert "'id': '" in places["the worker's DEBUG log"]  # task args are logged at DEBUG
    assert "openrouter:alerts:" in places["Redis db 0 (data)"]
    assert "celery-task-meta-" in places["Redis db 1 (broker, results)"]
    assert "refused the password" in places["CLI output"]
    assert "OPENROUTER_API_KEY is invalid" in places["CLI output"]
    assert "***" in places["exception messages"]  # the echoed key, masked
    assert "CREDIT_ALERT_URLS entry 1" in places["CLI output"]  # said, and the check ran
    assert [o.returncode for o in outputs].count(3) >= 4
    assert {place: leaks(text) for place, text in places.items()} == {p: [] for p in places}
