"""Fleet races: many checks at once on a prefork worker, and two beats sending the same check."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks import check_credits
from credit_tasks.alerts import alert_for
from credit_tasks.celery import BEAT_ENTRY, beat_schedule
from credit_tasks.check import SKIPPED_SCHEDULED, policy
from credit_tasks.rules import ACCOUNT, RUNWAY, Observation, decide
from credit_tasks.settings import Settings
from credit_tasks.silences import new_silence
from credit_tasks.simulator import Simulator
from credit_tasks.store import Commit, Store

from .conftest import BIN, SessionWorker, service_env, wait_for
from .receiver import Receiver

INTERVAL_S = 3.0
SENDING = "Sending due task"


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


@pytest.fixture
def channel(rdb: redis.Redis) -> Iterator[Any]:
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    yield pubsub
    pubsub.close()


def published(pubsub: Any, wait_s: float = 1.0) -> list[dict[str, Any]]:
    out = []
    while (msg := pubsub.get_message(timeout=wait_s)) is not None:
        if msg["type"] == "message":
            out.append(json.loads(msg["data"]))
    return out


def test_fifty_concurrent_checks_on_four_processes_notify_once(
    worker: Any,
    sim: Simulator,
    rdb: redis.Redis,
    channel: Any,
    worker_receiver: Receiver,
) -> None:
    balance(sim, 2.0)  # below the $5 critical threshold
    sim.inject("delay", delay_s=0.1, times=200)  # every request a little slow: they overlap
    results = [r.get(timeout=90) for r in [check_credits.delay() for _ in range(50)]]
    raised = [a for r in results for a in r.get("alerts", [])]
    assert [a["type"] for a in raised] == ["critical"]
    assert sum(bool(r["skipped"]) for r in results) >= 10  # they really ran at once
    assert {r["status"] for r in results if not r["skipped"]} == {"critical"}
    alert_id = raised[0]["id"]
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{alert_id}", "channels_ok"),
        what="the alert to reach the Apprise channel",
    )
    assert [(m["id"], m["type"]) for m in published(channel)] == [(alert_id, "critical")]
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == [alert_id]
    assert rdb.keys("openrouter:alerts:[0-9a-f]*") == [f"openrouter:alerts:{alert_id}"]
    ours = [p for _, p in worker_receiver.posts if "$2.00 left" in p["message"]]
    assert [p["title"] for p in ours] == ["OpenRouter credits: CRITICAL"]  # people: once too


def test_concurrent_alert_decisions_commit_one_transition_without_the_check_lock(
    store: Store, settings: Settings
) -> None:
    """The compare-and-set commit alone, 40 threads deciding "critical" at the same moment."""
    now = datetime.now(UTC)
    the_policy = policy(settings)
    observed = Observation(remaining_usd=1.0, source="account")
    start = threading.Barrier(40)
    committed: list[str] = []

    def one() -> None:
        start.wait()
        while True:
            loaded = store.load([ACCOUNT, RUNWAY], now, now)
            decision = decide(observed, loaded.states, the_policy, now)
            alerts = [
                alert_for(d, alert_id=f"{threading.get_ident():x}", now=now) for d in decision.dues
            ]
            change = Commit(now, states=decision.states, alerts=alerts)
            if store.commit(change, loaded):
                committed.extend(a.id for a in alerts)
                return

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(committed) == 1
    assert store.redis.lrange("openrouter:alerts:list", 0, -1) == committed


def test_forty_concurrent_decisions_with_a_silence_commit_one_silenced_transition(
    store: Store, settings: Settings, rdb: redis.Redis, channel: Any
) -> None:
    """The same race with a silence in force: one decision, recorded as silenced, not sent."""
    now = datetime.now(UTC)
    store.add_silence(new_silence("s1", "account", "any", timedelta(hours=1), "known", now))
    the_policy = policy(settings)
    observed = Observation(remaining_usd=1.0, source="account")
    start = threading.Barrier(40)
    committed: list[str] = []

    def one() -> None:
        start.wait()
        while True:
            loaded = store.load([ACCOUNT, RUNWAY], now, now)
            decision = decide(observed, loaded.states, the_policy, now, loaded.silencing)
            alerts = [
                alert_for(d, alert_id=f"{threading.get_ident():x}", now=now) for d in decision.dues
            ]
            change = Commit(now, states=decision.states, alerts=alerts)
            if store.commit(change, loaded):
                committed.extend(a.id for a in alerts if not a.delivers)
                return

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(committed) == 1
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == committed
    assert rdb.hget(f"openrouter:alerts:{committed[0]}", "silenced_by") == "s1"
    assert published(channel, wait_s=0.3) == []


def test_the_beat_entry_marks_its_checks_as_scheduled_with_the_interval() -> None:
    settings = Settings(_env_file=None, credit_check_interval_minutes=5)  # type: ignore[call-arg]
    entry = beat_schedule(settings)[BEAT_ENTRY]
    assert entry["kwargs"] == {"scheduled": True, "interval_s": 300.0}


def test_a_scheduled_check_is_skipped_within_half_an_interval_but_a_delay_check_never(
    worker: Any, sim: Simulator, rdb: redis.Redis
) -> None:
    balance(sim, 50.0)
    first = check_credits.delay(scheduled=True, interval_s=4.0).get(timeout=30)
    second = check_credits.delay(scheduled=True, interval_s=4.0).get(timeout=30)
    ad_hoc = check_credits.delay().get(timeout=30)
    assert (first["skipped"], second["skipped"], ad_hoc["skipped"]) == (False, True, False)
    assert second["note"] == SKIPPED_SCHEDULED
    assert second["status"] == "ok"  # the stored status, for whoever reads the result
    guard_ms = rdb.pttl("openrouter:monitoring:scheduled")
    assert 0 < guard_ms <= 2000
    # the guard is the clock under test: let the rest of half the interval pass, no more
    time.sleep(guard_ms / 1000 + 0.05)
    assert check_credits.delay(scheduled=True, interval_s=4.0).get(timeout=30)["skipped"] is False
    assert rdb.xlen("openrouter:credits:timeline") == 3


class Beats:
    """Beat subprocesses and their logs."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def two_beats(sim: Simulator, redis_server: str, tmp_path: Path) -> Iterator[Beats]:
    """Two file-scheduler beats at once, each with its own schedule file, on the test broker."""
    env = service_env(sim, redis_server, CREDIT_CHECK_INTERVAL_MINUTES=str(INTERVAL_S / 60))
    beats = Beats()
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        log = home / "beat.log"
        with log.open("wb") as out:
            beats.procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "celery"),
                        "-A",
                        "credit_tasks",
                        "beat",
                        "--loglevel=INFO",
                        f"--schedule={home / 'schedule'}",
                        f"--pidfile={home / 'beat.pid'}",
                    ],
                    env=env,
                    cwd=home,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        beats.logs.append(log)
        # the scenario, not a wait for an event: a third of an interval out of phase, as two
        # beats started by hand would be
        time.sleep(INTERVAL_S / 3)
    yield beats
    beats.stop()


def sends(log: Path) -> int:
    return log.read_text().count(SENDING)


def test_two_beats_at_once_give_one_history_point_per_interval_and_one_alert(
    worker: SessionWorker, sim: Simulator, rdb: redis.Redis, channel: Any, two_beats: Beats
) -> None:
    balance(sim, 3.0)  # critical all along
    wait_for(lambda: min(map(sends, two_beats.logs)) >= 5, 40, "five sends from each beat")
    for proc_log in two_beats.logs:
        assert "ERROR" not in proc_log.read_text()
    two_beats.stop()  # what they sent is final now
    wait_for(lambda: not worker.busy(), 30, "the last checks to finish")
    sent = [sends(log) for log in two_beats.logs]
    points = rdb.xlen("openrouter:credits:timeline")
    # each beat sent every interval; only one check per interval ran
    assert max(sent) - 1 <= points <= max(sent) + 1, (sent, points)
    assert points < sum(sent) - 2
    [message] = published(channel)
    assert message["type"] == "critical"
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == [message["id"]]
