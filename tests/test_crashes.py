"""Crashes: workers killed with SIGKILL mid-`send_alert` and mid-check.

These workers are dedicated ones on their own broker db (5), so the session worker never
takes their tasks. Killing a prefork child and killing the whole worker differ: the main
process of a worker whose child died rejects the task back to the queue at once (send_alert
is `acks_late` + `reject_on_worker_lost`); a whole dead worker leaves the message unacknowledged
in Redis, and another worker restores it after CREDIT_VISIBILITY_TIMEOUT_S.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from credit_tasks.celery import celery_config
from credit_tasks.check import SKIPPED_RUNNING, lock_timeout_s
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator

from .conftest import BIN, make_settings, service_env, wait_for

BROKER_DB = 5
VISIBILITY_TIMEOUT_S = 3
RECEIVER_DELAY_S = 1.5
ALERT = {
    "id": "c0ffee00c0ffee00",
    "type": "critical",
    "subject": "account",
    "status": "critical",
    "remaining_usd": 1.0,
    "threshold_usd": 5.0,
    "message": "OpenRouter credits are critical: $1.00 left",
    "timestamp": "2026-11-26T12:00:00+00:00",
    "resolves": None,
}


class SlowReceiver:
    """An Apprise json:// endpoint that records each POST on arrival, then answers late."""

    def __init__(self, delay_s: float) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.arrivals.append((time.monotonic(), json.loads(body)))
                time.sleep(delay_s)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # answering a killed client fails: that is the point

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/slow"

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


@pytest.fixture(scope="module", autouse=True)
def own_broker_urls() -> Iterator[None]:
    """Celery reads these variables before an app's own broker; a shell may set them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CELERY_BROKER_URL", raising=False)
        patch.delenv("CELERY_RESULT_BACKEND", raising=False)
        yield


@pytest.fixture(scope="module")
def slow_receiver() -> Iterator[SlowReceiver]:
    rec = SlowReceiver(RECEIVER_DELAY_S)
    thread = threading.Thread(target=rec.server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


class Worker:
    """A prefork worker subprocess in its own process group, with its log in a file."""

    def __init__(self, env: dict[str, str], home: Path, concurrency: int = 1) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "worker.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "credit_tasks",
                    "worker",
                    "--loglevel=INFO",
                    "--pool=prefork",
                    f"--concurrency={concurrency}",
                    f"--hostname=crash-{time.monotonic_ns()}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                env=env,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        wait_for(lambda: "ready." in self.log(), 30, "the worker to be ready")

    def log(self) -> str:
        return self.log_path.read_text()

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def kill_child(self) -> int:
        [child] = self.children()
        os.kill(child, signal.SIGKILL)
        return child

    def kill_all(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def crash_env(
    sim_server: Simulator, redis_server: str, slow_receiver: SlowReceiver
) -> dict[str, str]:
    broker = f"{redis_server}/{BROKER_DB}"
    return service_env(
        sim_server,
        redis_server,
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker,
        CREDIT_ALERT_URLS=slow_receiver.url,
        CREDIT_HTTP_TIMEOUT_S="1",
        CREDIT_RETRY_BUDGET_S="1",
        CREDIT_VISIBILITY_TIMEOUT_S="60",  # longer than any task here: no restore of our own
    )


@pytest.fixture(scope="module")
def client_app(crash_env: dict[str, str]) -> Iterator[Celery]:
    """This process's view of the dedicated broker: sends tasks and reads results."""
    app = Celery("crash-tests", broker=crash_env["CELERY_BROKER_URL"], set_as_current=False)
    app.conf.update(result_backend=crash_env["CELERY_RESULT_BACKEND"])
    yield app
    app.close()


@pytest.fixture
def broker(crash_env: dict[str, str]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(crash_env["CELERY_BROKER_URL"], decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="module")
def crash_worker(
    crash_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    worker = Worker(crash_env, tmp_path_factory.mktemp("crash-worker"))
    worker.wait_ready()
    yield worker
    worker.stop()


@pytest.fixture
def channel(rdb: redis.Redis) -> Iterator[Any]:
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    yield pubsub
    pubsub.close()


def published(pubsub: Any) -> list[str]:
    out = []
    while (msg := pubsub.get_message(timeout=0.5)) is not None:
        if msg["type"] == "message":
            out.append(json.loads(msg["data"])["id"])
    return out


def test_the_visibility_timeout_comes_from_its_setting_not_redis_one_hour_default() -> None:
    settings = Settings(_env_file=None, credit_visibility_timeout_s=42)  # type: ignore[call-arg]
    conf = celery_config(settings)
    assert conf["broker_transport_options"]["visibility_timeout"] == 42
    default = celery_config(Settings(_env_file=None))  # type: ignore[call-arg]
    assert default["broker_transport_options"]["visibility_timeout"] == 300
    assert default["broker_connection_max_retries"] is None  # reconnect forever


def test_a_child_killed_mid_send_alert_is_redelivered_at_once_and_published_once(
    crash_worker: Worker,
    client_app: Celery,
    broker: redis.Redis,
    rdb: redis.Redis,
    channel: Any,
    slow_receiver: SlowReceiver,
) -> None:
    before = slow_receiver.count()
    client_app.send_task("credit_tasks.send_alert", args=[ALERT])
    wait_for(lambda: slow_receiver.count() > before, 20, "send_alert to reach the channel")
    killed_at = time.monotonic()
    crash_worker.kill_child()  # mid-send: the channel has not answered yet
    wait_for(lambda: slow_receiver.count() > before + 1, 20, "the redelivered send_alert")
    redelivered_s = slow_receiver.arrivals[-1][0] - killed_at
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{ALERT['id']}", "channels_ok"),
        10,
        "the channel to be recorded as done",
    )
    assert "WorkerLostError" in crash_worker.log()
    assert crash_worker.proc.poll() is None  # the worker lives on with a new child
    assert redelivered_s < 10  # rejected back to the queue, not waiting for the 60 s timeout
    assert published(channel) == [ALERT["id"]]  # the Redis channel: exactly once
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == [ALERT["id"]]
    # people: at least once; the first request reached the channel before the kill
    assert [a[1]["message"] for a in slow_receiver.arrivals[before:]] == [ALERT["message"]] * 2
    assert broker.hlen("unacked") == 0


def test_a_whole_worker_killed_mid_send_alert_is_restored_after_the_visibility_timeout(
    crash_env: dict[str, str],
    redis_server: str,
    rdb: redis.Redis,
    channel: Any,
    slow_receiver: SlowReceiver,
    tmp_path: Path,
) -> None:
    lone = f"{redis_server}/{BROKER_DB + 1}"  # no other worker there to take the task
    env = {
        **crash_env,
        "CELERY_BROKER_URL": lone,
        "CELERY_RESULT_BACKEND": lone,
        "CREDIT_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
    }
    broker = redis.Redis.from_url(lone, decode_responses=True)
    broker.flushdb()
    first = Worker(env, tmp_path / "first")
    first.wait_ready()
    alert = {**ALERT, "id": "dead0000dead0000"}
    before = slow_receiver.count()
    with Celery("crash-tests-lone", broker=lone, set_as_current=False) as app:
        app.send_task("credit_tasks.send_alert", args=[alert])
    wait_for(lambda: slow_receiver.count() > before, 20, "send_alert to reach the channel")
    first.kill_all()
    killed_at = time.monotonic()
    assert broker.hlen("unacked") == 1  # the message waits, unacknowledged, in Redis
    second = Worker(env, tmp_path / "second")
    try:
        wait_for(lambda: slow_receiver.count() > before + 1, 30, "the restored send_alert")
        restored_s = slow_receiver.arrivals[-1][0] - killed_at
        wait_for(
            lambda: rdb.hget(f"openrouter:alerts:{alert['id']}", "channels_ok"),
            10,
            "the channel to be recorded as done",
        )
    finally:
        second.stop()
    assert VISIBILITY_TIMEOUT_S <= restored_s < VISIBILITY_TIMEOUT_S + 15
    assert published(channel) == [alert["id"]]
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == [alert["id"]]
    assert broker.hlen("unacked") == 0
    broker.close()


def test_a_check_killed_mid_flight_leaves_a_lock_that_expires_then_the_next_check_runs(
    crash_worker: Worker,
    crash_env: dict[str, str],
    client_app: Celery,
    broker: redis.Redis,
    sim: Simulator,
    redis_url: str,
    rdb: redis.Redis,
) -> None:
    settings = make_settings(sim, redis_url, credit_http_timeout_s=1, credit_retry_budget_s=1)
    timeout_s = lock_timeout_s(settings)
    sim.inject("hang", path="/key", delay_s=30)
    client_app.send_task("credit_tasks.check_credits")
    wait_for(lambda: sim.requests().get("/key") and rdb.exists("openrouter:monitoring:lock"))
    crash_worker.kill_child()
    killed_at = time.monotonic()
    assert 0 < rdb.pttl("openrouter:monitoring:lock") <= timeout_s * 1000
    blocked = client_app.send_task("credit_tasks.check_credits").get(timeout=30)
    assert blocked["skipped"] is True and blocked["note"] == SKIPPED_RUNNING
    wait_for(
        lambda: not rdb.exists("openrouter:monitoring:lock"),
        timeout_s + 2,
        "the dead check's lock to expire",
    )
    freed_s = time.monotonic() - killed_at
    after = client_app.send_task("credit_tasks.check_credits").get(timeout=30)
    assert after["skipped"] is False
    assert after["status"] == "ok"
    assert rdb.xlen("openrouter:credits:timeline") == 1
    assert freed_s <= timeout_s + 1
