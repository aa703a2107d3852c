"""Shared fixtures: a real redis-server on a free port, the simulator over HTTP, a real worker.

Data lives in Redis db 0 and is flushed before each test; the Celery broker and results live
in db 1, so a flush never pulls the queues from under a running worker. The worker lives for
the session, but each test that uses it gets it idle with empty queues, and drains it again
when done, so a late task of one test never writes into the next one's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks.celery import DEFAULT_QUEUE, QUEUE
from credit_tasks.procs import RedisServer, wait_until
from credit_tasks.procs import free_port as free_port  # for the tests that import it here
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator
from credit_tasks.store import Store

from .receiver import Receiver, serve

API_KEY = "sk-or-v1-test-ordinary-0123456789abcdef0123456789abcdef"
MANAGEMENT_KEY = "sk-or-v1-test-management-fedcba9876543210fedcba9876543210"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_for(predicate: Any, timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy, or fail the test."""
    try:
        return wait_until(predicate, timeout_s, what)
    except TimeoutError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the session; yields its base URL (no db)."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    except FileNotFoundError:
        pytest.exit("redis-server is not installed: run `make test` (it installs it)", 2)
    yield server.url()
    server.stop()


@pytest.fixture(scope="session")
def sim_server() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


@pytest.fixture
def sim(sim_server: Simulator) -> Simulator:
    """The simulator, reset, with an ordinary key (no cap) and a management key."""
    sim_server.reset()
    sim_server.set_account(total_credits=100.0, total_usage=0.0)
    sim_server.add_key(API_KEY, name="App")
    sim_server.add_key(MANAGEMENT_KEY, name="Management", management=True)
    return sim_server


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """URL of the flushed data db."""
    client = redis.Redis.from_url(f"{redis_server}/0")
    client.flushdb()
    client.close()
    return f"{redis_server}/0"


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def make_settings(sim: Simulator, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openrouter_api_key": API_KEY,
        "openrouter_management_key": MANAGEMENT_KEY,
        "openrouter_base_url": sim.base_url,
        "redis_url": redis_url,
        "credit_retry_attempts": 3,
        "credit_retry_budget_s": 3.0,
        "credit_http_timeout_s": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(sim: Simulator, redis_url: str) -> Settings:
    return make_settings(sim, redis_url)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store.from_settings(settings)
    yield s
    s.close()


def service_env(sim: Simulator, redis_server: str, **extra: str) -> dict[str, str]:
    """Environment for a CLI or worker subprocess pointed at the test services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_"))
    }
    env.update(
        OPENROUTER_API_KEY=API_KEY,
        OPENROUTER_MANAGEMENT_KEY=MANAGEMENT_KEY,
        OPENROUTER_BASE_URL=sim.base_url,
        REDIS_URL=f"{redis_server}/0",
        CELERY_BROKER_URL=f"{redis_server}/1",
        CELERY_RESULT_BACKEND=f"{redis_server}/1",
        CREDIT_RETRY_ATTEMPTS="3",
        CREDIT_RETRY_BUDGET_S="3",
        CREDIT_HTTP_TIMEOUT_S="2",
    )
    env.update(extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, cwd: Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "credit-monitor"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="session")
def worker_receiver() -> Iterator[Receiver]:
    """The Apprise json:// channel the session worker delivers alerts to."""
    yield from serve()


SERVICE_PREFIXES = ("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_")
QUEUES = (QUEUE, DEFAULT_QUEUE)  # the package's and Celery's default, lists in the broker db
UNACKED_KEYS = ("unacked", "unacked_index")  # kombu's Redis transport: delivered, not yet acked


@dataclass
class SessionWorker:
    """The session's worker subprocess, seen through this process's app."""

    app: Any
    hostname: str
    broker_url: str
    log_path: Path

    def busy(self) -> list[str]:
        """What the worker still has to do: tasks running, prefetched, waiting for their ETA,
        and messages queued for it. Empty when it is idle."""
        inspect = self.app.control.inspect(destination=[self.hostname], timeout=5.0, limit=1)
        held: list[str] = []
        # the worker first, then the queue: a task it runs can only queue more while it runs
        for state in ("active", "reserved", "scheduled"):
            replies = getattr(inspect, state)()
            if not replies:
                held.append(f"{state}: no answer from {self.hostname}")
                continue
            for task in replies.get(self.hostname, []):
                request = task.get("request", task)  # a scheduled entry wraps its request
                held.append(f"{state} {request.get('name')}[{request.get('id')}]")
        broker = redis.Redis.from_url(self.broker_url)
        try:
            for queue in QUEUES:
                if queued := broker.llen(queue):
                    held.append(f"{queued} message(s) queued in {queue}")
        finally:
            broker.close()
        return held

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait until the worker is idle, then empty its queues, the unacknowledged ones too:
        nothing a test started can run in the next one."""
        deadline = time.monotonic() + timeout_s
        while held := self.busy():
            if time.monotonic() > deadline:
                pytest.fail(f"the session worker is still busy after {timeout_s} s: {held}")
            time.sleep(0.05)
        # only once idle: a message purged mid-task would lose its acknowledgement
        self.app.control.purge()
        broker = redis.Redis.from_url(self.broker_url)
        try:
            broker.delete(*UNACKED_KEYS)
        finally:
            broker.close()
        if held := self.busy():
            pytest.fail(f"the session worker took work while its queues were emptied: {held}")


@pytest.fixture(scope="session")
def session_worker(
    sim_server: Simulator,
    redis_server: str,
    worker_receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SessionWorker]:
    """A real prefork Celery worker (subprocess) for the whole session, on the test broker.

    Tests ask for `worker`, which hands it over idle; only module fixtures that outlive a
    test (Flower) ask for this one.
    """
    env = service_env(
        sim_server,
        redis_server,
        CREDIT_ALERT_URLS=worker_receiver.url("/worker"),
        CREDIT_ALERT_RETRY_S="0.2",
    )
    from credit_tasks import app, tasks

    logdir = tmp_path_factory.mktemp("worker")
    log = (logdir / "worker.log").open("w")
    # This process's app reads its defaults from the environment when first configured: that
    # happens here, with the worker's variables; the environment and the settings cache are
    # then left as they were found.
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(SERVICE_PREFIXES):
                patch.delenv(name)
        for name, value in env.items():
            if name.startswith(SERVICE_PREFIXES):
                patch.setenv(name, value)
        app.conf.update(
            broker_url=env["CELERY_BROKER_URL"], result_backend=env["CELERY_RESULT_BACKEND"]
        )
        # the tests send as a plain script does: through the package's app, made current
        app.set_current()
        proc = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "credit_tasks",
                "worker",
                "--loglevel=INFO",
                "--pool=prefork",
                "--concurrency=4",
                "--hostname=test@%h",
                "-E",  # task events, for Flower
                "--without-gossip",
                "--without-mingle",
            ],
            env=env,
            cwd=logdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        pongs = wait_for(
            lambda: proc.poll() is not None or app.control.ping(timeout=0.5),
            timeout_s=30,
            what="the worker to answer a ping",
        )
        assert proc.poll() is None, (logdir / "worker.log").read_text()
    tasks.use_runtime(None)  # nothing built from the worker's variables stays
    [[hostname]] = [list(pong) for pong in pongs]
    yield SessionWorker(app, hostname, env["CELERY_BROKER_URL"], logdir / "worker.log")
    proc.terminate()
    try:
        # a warm shutdown can wait on the broker for a while; the session is over anyway
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    log.close()


RedisProcess = RedisServer  # a test's own redis-server: stop() and start() keep its port


@pytest.fixture
def worker(
    session_worker: SessionWorker,
    redis_server: str,
    worker_receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SessionWorker]:
    """The session worker, idle, its queues empty and the data db flushed; drained again after.

    Every test that sends tasks asks for this, so no task of one test runs in another.
    """
    # Celery prefers these variables to the app's own broker, as long as the test runs
    monkeypatch.setenv("CELERY_BROKER_URL", session_worker.broker_url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", session_worker.broker_url)
    _start_clean(session_worker, redis_server, worker_receiver)
    yield session_worker
    _start_clean(session_worker, redis_server, worker_receiver)


def _start_clean(worker: SessionWorker, redis_server: str, receiver: Receiver) -> None:
    worker.drain()
    receiver.reset()
    client = redis.Redis.from_url(f"{redis_server}/0")
    client.flushdb()  # only now: a task still running could write into it
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Any]:
    """Start redis-servers of this test's own: `own_redis("--requirepass", "pw", tls=False)`."""
    started: list[RedisProcess] = []

    def start(*args: str, tls: bool = False) -> RedisProcess:
        server = RedisProcess(tmp_path, *args, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
