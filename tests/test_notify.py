"""Alerts reach people: Apprise channels from the CLI and from a real worker, retried alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks import check_credits, notify
from credit_tasks.alerts import Alert
from credit_tasks.channels import load_channels
from credit_tasks.rules import AlertType, Status
from credit_tasks.simulator import Simulator
from credit_tasks.store import Commit, Store

from .conftest import run_cli, service_env, wait_for
from .receiver import Receiver, serve


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def other() -> Iterator[Receiver]:
    yield from serve()


def env_with(sim: Simulator, redis_server: str, urls: str) -> dict[str, str]:
    return service_env(sim, redis_server, CREDIT_ALERT_URLS=urls, CREDIT_ALERT_RETRY_S="0.1")


def the_alert(rdb: redis.Redis, alert_type: str) -> dict[str, str]:
    """The record of the one alert raised, an account alert of `alert_type` (no earlier
    test's worker can still be delivering into this test's data: the worker fixture drains)."""
    [alert_id] = rdb.lrange("openrouter:alerts:list", 0, -1)
    record = dict(rdb.hgetall(f"openrouter:alerts:{alert_id}"))
    assert (record["type"], record["subject"]) == (alert_type, "account")
    return record


def test_check_sends_the_alert_to_every_channel_with_the_mapped_type(
    sim: Simulator,
    redis_server: str,
    redis_url: str,
    tmp_path: Path,
    receiver: Receiver,
    other: Receiver,
    rdb: redis.Redis,
) -> None:
    balance(sim, 3.0)
    env = env_with(sim, redis_server, f"{receiver.url('/a')},{other.url('/b')}")
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 2
    for rec, path in ((receiver, "/a"), (other, "/b")):
        [(got_path, body)] = rec.posts
        assert got_path == path
        assert body["type"] == "failure"  # critical maps to Apprise's failure
        assert body["title"] == "OpenRouter credits: CRITICAL"
        assert body["message"].startswith("OpenRouter credits are critical: $3.00 left")
    record = the_alert(rdb, "critical")
    assert len(record["channels_ok"].split(",")) == 2
    assert record["channels_failed"] == ""


def test_a_failing_channel_is_retried_alone_and_the_others_not_repeated(
    sim: Simulator,
    redis_server: str,
    redis_url: str,
    tmp_path: Path,
    receiver: Receiver,
    other: Receiver,
    rdb: redis.Redis,
) -> None:
    balance(sim, 8.0)
    receiver.fail_next(2)
    env = env_with(sim, redis_server, f"{receiver.url('/flaky')},{other.url('/fine')}")
    run_cli(env, "check", cwd=tmp_path)
    assert receiver.paths() == ["/flaky"]  # two 500s, then delivered once
    assert other.paths() == ["/fine"]  # not repeated while the other was retried
    record = the_alert(rdb, "warning")
    assert len(record["channels_ok"].split(",")) == 2
    assert "delivery_error" not in record


def test_when_retries_run_out_the_failure_is_recorded_and_shown_by_status(
    sim: Simulator,
    redis_server: str,
    redis_url: str,
    tmp_path: Path,
    rdb: redis.Redis,
) -> None:
    balance(sim, 8.0)
    env = env_with(sim, redis_server, "json://127.0.0.1:1/nobody-listens")
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 1
    record = the_alert(rdb, "warning")
    assert record["delivered_at"]  # the Redis channel still got it
    assert "failed after 4 attempts" in record["delivery_error"]
    status = run_cli(env, "status", cwd=tmp_path).stdout
    assert "delivery failed: 1 channel(s) failed after 4 attempts" in status


def test_channel_urls_never_reach_redis_or_output(
    sim: Simulator,
    redis_server: str,
    redis_url: str,
    tmp_path: Path,
    receiver: Receiver,
    rdb: redis.Redis,
) -> None:
    balance(sim, 8.0)
    url = receiver.url("/hook-SECRET-TOKEN-123")
    env = env_with(sim, redis_server, url)
    outputs = [run_cli(env, *args, cwd=tmp_path) for args in (["check"], ["status", "--json"])]
    text = "".join(o.stdout + o.stderr for o in outputs)
    text += json.dumps(
        {k: rdb.hgetall(k) for k in rdb.scan_iter("openrouter:alerts:*") if rdb.type(k) == "hash"}
    )
    assert receiver.paths() == ["/hook-SECRET-TOKEN-123"]
    assert "SECRET-TOKEN" not in text


def test_a_bad_channel_url_is_said_in_one_line_and_the_check_still_runs(
    sim: Simulator, redis_server: str, rdb: redis.Redis, tmp_path: Path
) -> None:
    balance(sim, 2.0)  # critical: an alert is due
    env = env_with(sim, redis_server, "nosuchscheme://very-secret-token@host")
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 2  # the check's own verdict
    assert done.stderr.count("\n") == 1
    assert "CREDIT_ALERT_URLS entry 1" in done.stderr
    assert "alerts go to the Redis channel only" in done.stderr
    assert "very-secret-token" not in done.stderr + done.stdout
    assert rdb.hget("openrouter:credits:current", "status") == "critical"  # recorded
    alert = the_alert(rdb, "critical")
    assert alert["delivered_at"]  # published on the Redis channel
    assert alert["delivery_error"].startswith("CREDIT_ALERT_URLS entry 1")
    assert "very-secret-token" not in json.dumps(alert)


@pytest.mark.usefixtures("worker")
def test_the_worker_delivers_to_channels_and_retries_a_failed_one_through_celery(
    sim: Simulator, rdb: redis.Redis, worker_receiver: Receiver
) -> None:
    balance(sim, 2.0)
    worker_receiver.fail_next(2)
    result: dict[str, Any] = check_credits.delay().get(timeout=30)
    [alert] = result["alerts"]
    key = f"openrouter:alerts:{alert['id']}"
    wait_for(lambda: rdb.hget(key, "channels_ok"), timeout_s=30, what="the channel delivery")
    assert [body["type"] for _, body in worker_receiver.posts] == ["failure"]
    assert rdb.hget(key, "channels_failed") == ""


def test_load_channels_accepts_an_apprise_config_file(tmp_path: Path, receiver: Receiver) -> None:
    config = tmp_path / "apprise.txt"
    config.write_text(f"{receiver.url('/one')}\n{receiver.url('/two')}\n")
    assert len(load_channels(str(config))) == 2


def subscribed(rdb: redis.Redis) -> Any:
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    return pubsub


def an_alert(alert_id: str, when: datetime) -> Alert:
    return Alert(
        alert_id,
        AlertType.WARNING,
        "account",
        Status.WARNING,
        8.0,
        10.0,
        "OpenRouter credits are low: $8.00 left",
        when,
    )


def test_a_publication_is_atomic_so_racing_deliveries_publish_once(
    store: Store, rdb: redis.Redis
) -> None:
    """No claim to leave behind: a delivery killed half-way cannot hold back the next."""
    pubsub = subscribed(rdb)
    alert = an_alert("a1", datetime.now(UTC))
    barrier = threading.Barrier(20)
    outcomes: list[bool] = []

    def deliver() -> None:
        barrier.wait()
        outcomes.append(store.deliver(alert, datetime.now(UTC)))

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 19 + [True]
    got = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        got.append(json.loads(message["data"])["id"])
    assert got == ["a1"]
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == ["a1"]
    assert rdb.hget("openrouter:alerts:a1", "delivered_at")
    assert rdb.keys("openrouter:alerts:sending:*") == []
    pubsub.close()


def test_undelivered_alerts_are_found_between_their_ages_and_not_once_published(
    store: Store,
) -> None:
    now = datetime.now(UTC)
    committed = {
        "fresh": now - timedelta(seconds=5),
        "lost": now - timedelta(seconds=90),
        "stale": now - timedelta(hours=2),
        "sent": now - timedelta(seconds=90),
    }
    alerts = [an_alert(alert_id, when) for alert_id, when in committed.items()]
    assert store.commit(Commit(now, alerts=alerts))
    store.deliver(alerts[3], now)
    [lost] = store.undelivered(now, min_age_s=30, max_age_s=3600)
    assert lost == alerts[1]
    store.deliver(lost, now)
    assert store.undelivered(now, min_age_s=30, max_age_s=3600) == []


def test_a_check_on_the_worker_sends_again_an_alert_whose_message_was_lost(
    worker: Any, sim: Simulator, store: Store, rdb: redis.Redis
) -> None:
    """As when a failed-over broker lost the send_alert: the record is there, undelivered."""
    balance(sim, 50.0)
    alert = an_alert("lost-in-failover", datetime.now(UTC) - timedelta(seconds=60))
    assert store.commit(Commit(datetime.now(UTC), alerts=[alert]))
    pubsub = subscribed(rdb)
    assert check_credits.delay().get(timeout=30)["status"] == "ok"
    message = wait_for(lambda: pubsub.get_message(timeout=0.5), 15, "the lost alert")
    assert json.loads(message["data"])["id"] == "lost-in-failover"
    assert rdb.hget("openrouter:alerts:lost-in-failover", "delivered_at")
    check_credits.delay().get(timeout=30)  # published: not sent a third time
    assert pubsub.get_message(timeout=1.0) is None
    pubsub.close()


def test_the_in_process_retries_never_wait_more_than_two_minutes_at_a_time(
    store: Store, receiver: Receiver
) -> None:
    receiver.fail_next(100)
    [channel] = load_channels(receiver.url("/down"))
    alert = Alert(
        id="capped-backoff",
        type=AlertType.WARNING,
        subject="account",
        status=Status.WARNING,
        remaining_usd=8.0,
        threshold_usd=10.0,
        message="low",
        timestamp=datetime.now(UTC),
    )
    waits: list[float] = []
    notify.deliver_with_retries(
        store, alert, [channel], attempts=20, backoff_s=2, sleep=waits.append
    )
    assert waits[:7] == [2, 4, 8, 16, 32, 64, 120]
    assert len(waits) == 19 and max(waits) == 120
