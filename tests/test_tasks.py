"""The Celery tasks through a real prefork worker on the test broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from credit_tasks import check_credits, credit_history, send_alert
from credit_tasks.simulator import Simulator

from .conftest import API_KEY, MANAGEMENT_KEY, wait_for
from .receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


def messages(pubsub: Any, wait_s: float = 1.0) -> list[dict[str, Any]]:
    out = []
    while (msg := pubsub.get_message(timeout=wait_s)) is not None:
        if msg["type"] == "message":
            out.append(json.loads(msg["data"]))
    return out


@pytest.fixture
def channel(rdb: redis.Redis) -> Any:
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    yield pubsub
    pubsub.close()


def test_the_tasks_are_registered_under_their_public_names() -> None:
    assert check_credits.name == "credit_tasks.check_credits"
    assert send_alert.name == "credit_tasks.send_alert"
    assert credit_history.name == "credit_tasks.credit_history"


def test_check_credits_records_a_point_and_returns_a_summary_without_secrets(
    sim: Simulator, rdb: redis.Redis
) -> None:
    balance(sim, 42.0)
    result = check_credits.delay().get(timeout=30)
    assert result["status"] == "ok"
    assert result["remaining_usd"] == 42.0
    assert result["source"] == "account"
    assert rdb.xlen("openrouter:credits:timeline") == 1
    text = json.dumps(result)
    assert API_KEY not in text and MANAGEMENT_KEY not in text


def test_a_low_balance_is_delivered_on_the_channel_through_send_alert(
    sim: Simulator, rdb: redis.Redis, channel: Any
) -> None:
    balance(sim, 7.5)
    result = check_credits.delay().get(timeout=30)
    assert [a["type"] for a in result["alerts"]] == ["warning"]
    alert_id = result["alerts"][0]["id"]
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{alert_id}", "delivered_at"),
        what="send_alert to deliver",
    )
    got = messages(channel)
    assert [(m["id"], m["type"], m["remaining_usd"]) for m in got] == [(alert_id, "warning", 7.5)]


def test_many_concurrent_checks_yield_one_notification(
    sim: Simulator, rdb: redis.Redis, channel: Any
) -> None:
    balance(sim, 2.0)
    sim.inject("delay", delay_s=0.2, times=40)
    results = [r.get(timeout=60) for r in [check_credits.delay() for _ in range(40)]]
    raised = [a for r in results for a in r.get("alerts", [])]
    assert [a["type"] for a in raised] == ["critical"]
    assert any(r.get("skipped") for r in results)
    alert_id = raised[0]["id"]
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{alert_id}", "delivered_at"),
        what="the critical alert to be delivered",
    )
    assert [(m["id"], m["type"]) for m in messages(channel)] == [(alert_id, "critical")]
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == [alert_id]


def test_send_alert_publishes_an_alert_id_once_however_often_it_runs(
    rdb: redis.Redis, channel: Any
) -> None:
    alert = {
        "id": "a1b2c3",
        "type": "warning",
        "subject": "account",
        "status": "warning",
        "remaining_usd": 8.0,
        "threshold_usd": 10.0,
        "message": "low",
        "timestamp": "2026-11-26T12:00:00+00:00",
        "resolves": None,
    }
    first = send_alert.delay(alert).get(timeout=30)
    again = send_alert.delay(alert).get(timeout=30)
    assert first["delivered"] is True
    assert again["delivered"] is False
    assert [m["id"] for m in messages(channel)] == ["a1b2c3"]
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == ["a1b2c3"]


def test_credit_history_returns_buckets_in_time_order_with_a_summary(sim: Simulator) -> None:
    for usd in (30.0, 25.0, 40.0, 35.0):
        balance(sim, usd)
        check_credits.delay().get(timeout=30)
    answer = credit_history.delay(hours=1).get(timeout=30)
    assert answer["bucket_s"] == 1  # a young history: buckets of a second, from its first check
    assert sum(b["checks"] for b in answer["buckets"]) == 4
    assert min(b["min_usd"] for b in answer["buckets"]) == 25.0
    assert answer["buckets"][-1]["last_usd"] == 35.0
    stamps = [b["start"] for b in answer["buckets"]]
    assert stamps == sorted(stamps)
    summary = answer["summary"]
    assert summary["first_remaining_usd"] == 30.0
    assert summary["last_remaining_usd"] == 35.0
    assert summary["min_remaining_usd"] == 25.0
    assert summary["max_remaining_usd"] == 40.0
    assert summary["spend_usd"] == pytest.approx(10.0)  # the top-up to 40 is not negative spend


def test_an_api_outage_is_a_result_not_a_crash(sim: Simulator) -> None:
    sim.inject("status", status=503, times=100)
    result = check_credits.delay().get(timeout=30)
    assert result["status"] == "unknown"
    assert "503" in result["error"]


def test_the_worker_checks_every_capped_key_and_alerts_on_the_low_one(
    sim: Simulator, rdb: redis.Redis, channel: Any
) -> None:
    balance(sim, 80.0)
    low = sim.add_key("sk-or-v1-worker-customer", name="Customer W", limit=10.0, usage=9.9)
    sim.add_key("sk-or-v1-worker-fine", name="Fine", limit=10.0, usage=1.0)
    result = check_credits.delay().get(timeout=30)
    assert result["keys"] == {
        "checked": 3,
        "ok": 2,
        "warning": 0,
        "critical": 1,
        "unreadable": 0,
    }
    [alert] = result["alerts"]
    key = f"openrouter:alerts:{alert['id']}"
    wait_for(lambda: rdb.hget(key, "delivered_at"), what="the key alert to be delivered")
    [message] = messages(channel)
    assert message["id"] == alert["id"]
    assert (message["subject"], message["type"]) == (f"key:{low}", "critical")
    assert message["key_name"] == "Customer W"
    assert "sk-or-v1-worker-customer" not in json.dumps(message)


def test_the_worker_waits_for_an_hour_of_history_before_it_projects_the_runway(
    sim: Simulator,
) -> None:
    balance(sim, 500.0)
    first = check_credits.delay().get(timeout=30)
    assert first["runway_hours"] is None
    balance(sim, 499.0)
    second = check_credits.delay().get(timeout=30)
    # a dollar in a split second is a burst, not a pace: no runway, and no runway alert
    assert (second["burn_rate_usd_per_hour"], second["runway_hours"]) == (None, None)
    assert second["alerts"] == []


BATCH = "sk-or-v1-worker-batch-agent-0001"


def test_the_worker_alerts_a_spike_naming_the_key_behind_it(
    sim: Simulator, rdb: redis.Redis, channel: Any, worker_receiver: Receiver
) -> None:
    sim.seed_activity(7, 24.0)  # usually $1/h
    batch = sim.add_key(BATCH, name="batch-agent", usage=1.0)
    balance(sim, 80.0)
    assert check_credits.delay().get(timeout=30)["spike"]["status"] == "ok"
    balance(sim, 70.0)
    sim.update_key(batch, usage=10.0)  # $10 in a moment, $9 of it the batch key's
    result = check_credits.delay().get(timeout=30)
    [alert] = result["alerts"]
    assert alert["type"] == "spike"
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{alert['id']}", "delivered_at"),
        what="the spike to be delivered",
    )
    [message] = messages(channel)
    assert (message["id"], message["subject"]) == (alert["id"], "account:spike")
    assert message["message"] == (
        "OpenRouter spend spike: $10.00 in the last 60 min, 10× the usual $1.00/h; "
        "most of it from key 'batch-agent' ($9.00)."
    )
    assert message["top_keys"] == [{"hash": batch, "name": "batch-agent", "spend_usd": 9.0}]
    assert (message["window_spend_usd"], message["factor"]) == (10.0, 10.0)
    assert BATCH not in json.dumps(message)
    wait_for(lambda: worker_receiver.posts, what="the spike on the Apprise channel")
    [(_, post)] = worker_receiver.posts
    assert post["type"] == "warning" and post["title"] == "OpenRouter credits: SPIKE"


def test_a_top_up_through_the_worker_is_no_spike(sim: Simulator, channel: Any) -> None:
    sim.seed_activity(7, 24.0)
    balance(sim, 20.0)
    check_credits.delay().get(timeout=30)
    balance(sim, 120.0)  # $100 bought
    result = check_credits.delay().get(timeout=30)
    assert result["alerts"] == []
    assert (result["spike"]["status"], result["spike"]["window_spend_usd"]) == ("ok", 0.0)
    assert messages(channel, wait_s=0.5) == []


def test_credit_history_asked_for_more_than_is_kept_gives_the_retention(sim: Simulator) -> None:
    check_credits.delay().get(timeout=30)
    answer = credit_history.delay(hours=1e20).get(timeout=30)
    assert answer["hours"] == 90 * 24  # the default retention: nothing older exists
    assert sum(b["checks"] for b in answer["buckets"]) == 1
