"""A highly available beat on RedBeat: two beats at once, one sends, the other takes over."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from credit_tasks.celery import QUEUE, celery_config
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator

from .conftest import BIN, service_env, wait_for

Beat = tuple[subprocess.Popen[bytes], Path]
SENDING = "Sending due task"


def test_the_redbeat_setting_switches_beat_to_redbeat_on_the_data_redis() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url="redis://r:6379/3", credit_beat_scheduler="redbeat"
    )
    conf = celery_config(settings)
    assert conf["beat_scheduler"] == "credit_tasks.beat:RedBeatScheduler"
    assert conf["redbeat_redis_url"] == "redis://r:6379/3"
    assert conf["redbeat_key_prefix"] == "openrouter:redbeat:"
    assert conf["redbeat_lock_timeout"] > conf["beat_max_loop_interval"]
    assert "beat_scheduler" not in celery_config(Settings(_env_file=None))  # type: ignore[call-arg]


@pytest.fixture
def queue(redis_server: str) -> Iterator[redis.Redis]:
    """The beats' broker (db 2), away from the session worker's queue, and RedBeat's db 3."""
    for db in (2, 3):
        redis.Redis.from_url(f"{redis_server}/{db}").flushdb()
    client = redis.Redis.from_url(f"{redis_server}/2", decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def beats(
    sim_server: Simulator, redis_server: str, queue: redis.Redis, tmp_path: Path
) -> Iterator[list[Beat]]:
    env = service_env(
        sim_server,
        redis_server,
        REDIS_URL=f"{redis_server}/3",
        CELERY_BROKER_URL=f"{redis_server}/2",
        CELERY_RESULT_BACKEND=f"{redis_server}/2",
        CREDIT_BEAT_SCHEDULER="redbeat",
        CREDIT_CHECK_INTERVAL_MINUTES="0.02",  # every 1.2 s
    )
    started: list[Beat] = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        log = tmp_path / name / "beat.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "celery"), "-A", "credit_tasks", "beat", "--loglevel=INFO"],
                env=env,
                cwd=tmp_path / name,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append((proc, log))
    yield started
    for proc, _ in started:
        proc.terminate()
    for proc, _ in started:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sends(beat: Beat) -> int:
    return beat[1].read_text().count(SENDING)


def queued_tasks(queue: redis.Redis) -> list[str]:
    return [json.loads(m)["headers"]["task"] for m in queue.lrange(QUEUE, 0, -1)]


def test_two_beats_on_redbeat_run_at_once_and_only_the_lock_holder_sends_check_credits(
    beats: list[Beat], queue: redis.Redis
) -> None:
    wait_for(lambda: len(queued_tasks(queue)) >= 4, 30, "four scheduled checks")
    assert all(proc.poll() is None for proc, _ in beats), "both beats are running"
    leader, standby = sorted(beats, key=sends, reverse=True)
    assert sends(standby) == 0
    assert "Acquired lock" in leader[1].read_text()
    assert "Acquired lock" not in standby[1].read_text()
    tasks = queued_tasks(queue)
    assert set(tasks) == {"credit_tasks.check_credits"}
    # every message is one of the leader's sends: a second sender would double them
    assert sends(leader) - 1 <= len(tasks) <= sends(leader)

    leader[0].terminate()
    leader[0].wait(timeout=15)
    wait_for(lambda: sends(standby) >= 2, 30, "the standby beat to take over")
    assert "Acquired lock" in standby[1].read_text()
    for _, log in beats:  # configured explicitly, not by RedBeat's deprecated fallbacks
        assert "will stop falling back" not in log.read_text()
