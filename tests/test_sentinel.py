"""Redis behind Sentinel: one REDIS_URL for broker, results, store and RedBeat, and a failover.

The deployment is real and started here: Debian's redis-server as master and replica, and
three redis-sentinel (quorum 2), the master and the Sentinels each with a password of their
own. A worker and a RedBeat beat check every 2 s; the master is SIGKILLed while a check is in
flight and a warning is due.

The guarantee across a failover: the alert decision is made once (a commit waits for the
replica before the alert is dispatched, so the new master has it), and the alert reaches
people at least once, twice at most: a publication the dead master made but could not pass
on is made again, with the same alert id, by the new one. An alert whose send_alert message
died with the master is sent again by a later check (`store.undelivered`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks.celery import celery_config
from credit_tasks.procs import RedisSentinel, RedisServer, wait_until
from credit_tasks.settings import Settings, redact_url
from credit_tasks.simulator import Simulator
from credit_tasks.store import connect

from .conftest import BIN, run_cli, service_env, wait_for
from .receiver import Receiver, serve

MASTER_PASSWORD = "master-pw-4c1d9e0a"
SENTINEL_PASSWORD = "sentinel-pw-77ab20f3"
MASTER_NAME = "credits"
INTERVAL_S = 2.0


def sentinel_url(sentinels: list[RedisSentinel], db: int, *, on_every: bool = False) -> str:
    """The password on the first Sentinel; the db at the end, or on each with `on_every`."""
    first, *others = sentinels
    each = f"/{db}" if on_every else ""
    parts = [f"sentinel://:{MASTER_PASSWORD}@127.0.0.1:{first.port}{each}"]
    parts += [f"sentinel://127.0.0.1:{s.port}{each}" for s in others]
    return ";".join(parts) + ("" if on_every else f"/{db}")


@dataclass
class Deployment:
    master: RedisServer
    replica: RedisServer
    sentinels: list[RedisSentinel]

    def url(self, db: int, *, on_every: bool = False) -> str:
        return sentinel_url(self.sentinels, db, on_every=on_every)

    def ask(self, sentinel: RedisSentinel, *command: str) -> Any:
        client = redis.Redis(
            port=sentinel.port, password=SENTINEL_PASSWORD, decode_responses=True, socket_timeout=2
        )
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def master_port(self) -> int | None:
        """The master's port as a majority of the Sentinels name it."""
        ports = []
        for sentinel in self.sentinels:
            try:
                reply = self.ask(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            except redis.RedisError:
                continue
            ports.append(int(reply[1]) if reply else None)
        top = max(set(ports), key=ports.count, default=None)
        return top if ports.count(top) >= 2 else None

    def data(self) -> redis.Redis:
        """The data db of whichever server is the master, through the Sentinels."""
        return connect(
            self.url(0),
            sentinel_master=MASTER_NAME,
            sentinel_options={"password": SENTINEL_PASSWORD, "socket_timeout": 2},
            socket_timeout=2,
            socket_connect_timeout=1,
        )


def replication_up(server: RedisServer) -> bool:
    client = redis.Redis(port=server.port, password=MASTER_PASSWORD, decode_responses=True)
    try:
        return client.info("replication").get("master_link_status") == "up"
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    auth = ("--requirepass", MASTER_PASSWORD, "--masterauth", MASTER_PASSWORD)
    started: list[Any] = []
    try:
        master = RedisServer(tmp_path / "master", *auth).start()
        started.append(master)
        follow = ("--replicaof", "127.0.0.1", str(master.port))
        replica = RedisServer(tmp_path / "replica", *auth, *follow).start()
        started.append(replica)
        wait_for(lambda: replication_up(replica), 20, "the replica to sync")
        sentinels = []
        for name in ("s1", "s2", "s3"):
            sentinel = RedisSentinel(
                tmp_path / name,
                master.port,
                name=MASTER_NAME,
                quorum=2,
                password=SENTINEL_PASSWORD,
                master_password=MASTER_PASSWORD,
            ).start()
            started.append(sentinel)
            sentinels.append(sentinel)
        found = Deployment(master, replica, sentinels)

        def everyone_known() -> bool:
            for sentinel in sentinels:
                state = found.ask(sentinel, "SENTINEL", "MASTER", MASTER_NAME)
                known = (str(state["num-slaves"]), str(state["num-other-sentinels"]))
                if known != ("1", "2"):
                    return False
            return True

        wait_for(everyone_known, 30, "the Sentinels to know the replica and each other")
        yield found
    finally:
        for process in reversed(started):
            process.stop()


class Service:
    """A Celery worker or beat in its own process group, its log in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], home: Path, name: str) -> None:
        self.log_path = home / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def env(
    sim: Simulator, deployment: Deployment, receiver: Receiver, redis_server: str
) -> dict[str, str]:
    return service_env(
        sim,
        redis_server,
        REDIS_URL=deployment.url(0),  # as the README writes it: the db at the end
        # Celery reads these two itself, from the first Sentinel: the db on each
        CELERY_BROKER_URL=deployment.url(1, on_every=True),
        CELERY_RESULT_BACKEND=deployment.url(1, on_every=True),
        CREDIT_REDIS_SENTINEL_MASTER=MASTER_NAME,
        CREDIT_REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD,
        CREDIT_BEAT_SCHEDULER="redbeat",
        CREDIT_CHECK_INTERVAL_MINUTES=str(INTERVAL_S / 60),
        CREDIT_ALERT_URLS=receiver.url("/people"),
        CREDIT_VISIBILITY_TIMEOUT_S="10",
    )


@pytest.fixture
def services(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    worker_argv = [str(BIN / "celery"), "-A", "credit_tasks", "worker", "--loglevel=INFO"]
    worker_argv += ["--concurrency=2", "--without-gossip", "--without-mingle"]
    worker_argv += ["--hostname=sentinel-test@%h"]
    worker = Service(worker_argv, env, tmp_path, "worker")
    beat = Service(
        [str(BIN / "celery"), "-A", "credit_tasks", "beat", "--loglevel=INFO"],
        env,
        tmp_path,
        "beat",
    )
    yield worker, beat
    beat.stop()
    worker.stop()


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


def points_since(data: redis.Redis, since_ms: int) -> int:
    try:
        return len(data.xrange("openrouter:credits:timeline", min=since_ms))
    except redis.RedisError:
        return 0  # mid-failover: no master to read yet


def first_point_since(data: redis.Redis, since_ms: int) -> int | None:
    """The time (ms) of the first check recorded at or after `since_ms`."""
    try:
        entries = data.xrange("openrouter:credits:timeline", min=since_ms, count=1)
    except redis.RedisError:
        return None  # mid-failover: no master to read yet
    return int(entries[0][0].split("-")[0]) if entries else None


def warnings(data: redis.Redis) -> list[dict[str, str]]:
    try:
        ids = data.lrange("openrouter:alerts:list", 0, -1)
        records = [data.hgetall(f"openrouter:alerts:{alert_id}") for alert_id in ids]
    except redis.RedisError:
        return []
    return [r for r in records if r.get("type") == "warning"]


def test_one_sentinel_url_configures_broker_backend_store_and_redbeat_by_their_own_support() -> (
    None
):
    url = "sentinel://:pw@h1:26379;sentinel://h2:26380/3"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        redis_url=url,
        credit_beat_scheduler="redbeat",
        credit_redis_sentinel_master="credits",
        credit_redis_sentinel_password="spw",
    )
    conf = celery_config(settings)
    # kombu and Celery read the login and db from the first Sentinel: every part carries them
    normalized = "sentinel://:pw@h1:26379/3;sentinel://:pw@h2:26380/3"
    assert conf["broker_url"] == conf["result_backend"] == normalized
    for options in (conf["broker_transport_options"], conf["result_backend_transport_options"]):
        assert options["master_name"] == "credits"
        assert options["sentinel_kwargs"]["password"] == "spw"
    assert conf["broker_transport_options"]["visibility_timeout"] == 300
    assert conf["redbeat_redis_url"] == "redis-sentinel://h1:26379/3"
    redbeat = conf["redbeat_redis_options"]
    assert redbeat["sentinels"] == [("h1", 26379), ("h2", 26380)]
    assert (redbeat["service_name"], redbeat["password"], redbeat["db"]) == ("credits", "pw", 3)
    assert redbeat["sentinel_kwargs"]["password"] == "spw"
    assert "pw" not in redact_url(url) and "***" in redact_url(url)
    assert "spw" not in repr(settings)
    plain = celery_config(Settings(_env_file=None))  # type: ignore[call-arg]
    assert "master_name" not in plain["broker_transport_options"]
    assert plain["result_backend_transport_options"] == {}


@pytest.mark.timeout(240)
def test_a_master_killed_mid_check_fails_over_checks_resume_and_the_alert_arrives(
    sim: Simulator,
    deployment: Deployment,
    services: tuple[Service, Service],
    receiver: Receiver,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    worker, beat = services
    balance(sim, 50.0)
    data = deployment.data()
    wait_for(lambda: points_since(data, 0) >= 2, 60, "two checks through the Sentinels")
    status = run_cli(env, "status", cwd=tmp_path)
    assert status.returncode == 0, status.stderr

    # each check now takes over half a second, so the kill lands inside one
    sim.configure(latency_ms=300)
    balance(sim, 8.0)  # a warning is due
    asked = sim.requests().get("/key", 0)
    wait_for(lambda: sim.requests().get("/key", 0) > asked, 10, "a check to be in flight")
    old_port = deployment.master.port
    assert deployment.master.proc is not None
    deployment.master.proc.kill()
    killed = time.monotonic()

    promoted_port = wait_for(
        lambda: (port := deployment.master_port()) not in (None, old_port) and port,
        30,
        "the Sentinels to promote the replica",
    )
    assert promoted_port == deployment.replica.port
    promoted_ms = int(time.time() * 1000)
    promoted_s = time.monotonic() - killed
    # the checks' own times, not how soon this test's client finds the new master
    first = wait_for(lambda: first_point_since(data, promoted_ms), 40, "checks to resume")
    resumed_s = (first - promoted_ms) / 1000

    [record] = wait_for(
        lambda: [w for w in warnings(data) if w.get("delivered_at")] or None,
        40,
        "the warning to be delivered",
    )
    wait_until(lambda: receiver.posts, 15, "the warning to reach people")
    time.sleep(3 * INTERVAL_S)  # a duplicate, if any, would come by now
    # one decision, on the new master: no second warning decided after the failover
    assert len(warnings(data)) == 1
    posts = [body for _, body in receiver.posts if body["title"].endswith("WARNING")]
    assert 1 <= len(posts) <= 2, posts
    assert {body["message"] for body in posts} == {record["message"]}
    print(
        f"failover: promoted {promoted_s:.1f} s after the kill, checks resumed "
        f"{resumed_s:.1f} s after that; the warning reached people {len(posts)} time(s)"
    )
    assert resumed_s < 30

    assert worker.proc.poll() is None and beat.proc.poll() is None
    status = run_cli(env, "status", cwd=tmp_path)
    assert status.returncode == 1, status.stderr  # warning
    for text in (worker.log(), beat.log(), status.stdout, status.stderr):
        assert MASTER_PASSWORD not in text and SENTINEL_PASSWORD not in text


def test_a_wrong_sentinel_password_or_master_name_is_one_line_without_a_password(
    deployment: Deployment, env: dict[str, str], tmp_path: Path
) -> None:
    wrong = env | {"CREDIT_REDIS_SENTINEL_PASSWORD": "not-the-sentinel-password"}
    done = run_cli(wrong, "status", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("credit-monitor: the Sentinels of sentinel://:***@127.0.0.1:")
    assert done.stderr.endswith(
        "refused their password: set CREDIT_REDIS_SENTINEL_PASSWORD to the Sentinels' requirepass\n"
    )
    for secret in (MASTER_PASSWORD, SENTINEL_PASSWORD, "not-the-sentinel-password"):
        assert secret not in done.stdout + done.stderr
    unknown = env | {"CREDIT_REDIS_SENTINEL_MASTER": "nobody"}
    done = run_cli(unknown, "status", cwd=tmp_path)
    assert done.returncode == 3
    assert "no Sentinel of sentinel://:***@127.0.0.1:" in done.stderr
    assert "names a master for 'nobody'" in done.stderr and MASTER_PASSWORD not in done.stderr
