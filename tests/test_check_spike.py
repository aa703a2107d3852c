"""run_check and the spend: spikes and their key, the usual pace, the spend of the day, week
and month, and every workspace. The simulator over HTTP, a real Redis, fixed check times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from credit_tasks import notify
from credit_tasks.check import CheckResult, run_check
from credit_tasks.client import OpenRouterClient
from credit_tasks.keyspace import Keyspace
from credit_tasks.rules import AlertType
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator
from credit_tasks.store import Store

from .conftest import API_KEY, make_settings
from .test_check import _CountingConnection

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BATCH = "sk-or-v1-batch-agent-0000000000000001"
SENTENCE = (
    "OpenRouter spend spike: $14.20 in the last 60 min, 28× the usual $0.51/h; "
    "most of it from key 'batch-agent' ($13.90)."
)


def check(settings: Settings, store: Store, now: datetime) -> CheckResult:
    with OpenRouterClient(settings) as c:
        result = run_check(settings, c, store, now)
    for alert in result.alerts:
        notify.deliver(store, alert, now=now)
    return result


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def usual(sim: Simulator) -> str:
    """A week of $12.24 a day ($0.51/h) on /activity, and a batch key; its hash."""
    sim.set_today(T0.date().isoformat())
    sim.seed_activity(7, 12.24)
    return sim.add_key(BATCH, name="batch-agent", usage=2.0)


def loop(sim: Simulator, spent_usd: float, by_batch_usd: float, before_usd: float) -> None:
    """What a loop leaves behind: the balance down by `spent_usd`, most of it the batch key's."""
    balance(sim, before_usd - spent_usd)
    batch = sim.find(BATCH)
    sim.update_key(BATCH, usage=batch.usage + by_batch_usd)


def test_a_spike_names_the_key_behind_it_in_one_alert(
    sim: Simulator, settings: Settings, store: Store, usual: str, rdb: redis.Redis
) -> None:
    balance(sim, 100.0)
    first = check(settings, store, T0)
    assert first.as_dict()["spike"] == {
        "status": "ok",
        "window_minutes": 60.0,
        "window_spend_usd": 0.0,
        "baseline_usd_per_hour": 0.51,
        "factor": 0.0,
        "top_keys": [],
    }
    loop(sim, 14.2, 13.9, before_usd=100.0)
    second = check(settings, store, minutes(30))
    [alert] = second.alerts
    assert (alert.type, alert.subject) == (AlertType.SPIKE, "account:spike")
    assert alert.message == SENTENCE
    assert alert.top_keys is not None and alert.top_keys[0].hash == usual
    data = second.as_dict()
    assert data["spike"]["status"] == "warning"
    assert data["spike"]["factor"] == 27.84
    assert data["spike"]["top_keys"] == [{"hash": usual, "name": "batch-agent", "spend_usd": 13.9}]
    record = rdb.hgetall(f"openrouter:alerts:{alert.id}")
    assert record["message"] == SENTENCE and record["delivered_at"]
    assert json.loads(record["top_keys"])[0]["name"] == "batch-agent"
    # the keys' growth lives in one hash, a field per key: no Redis key per API key
    assert rdb.hlen("openrouter:keys:usage") == 2
    assert rdb.keys("openrouter:keys:usage*") == ["openrouter:keys:usage"]
    again = check(settings, store, minutes(40))
    assert again.alerts == []  # the spike lasts: quiet within the cooldown


def test_the_spike_resolves_once_the_window_spends_less_than_the_line_over_the_margin(
    sim: Simulator, redis_url: str, store: Store, usual: str
) -> None:
    settings = make_settings(sim, redis_url, credit_runway_warning_hours=0)  # spikes only
    balance(sim, 100.0)
    check(settings, store, T0)
    loop(sim, 14.2, 13.9, before_usd=100.0)
    assert [a.type for a in check(settings, store, minutes(30)).alerts] == [AlertType.SPIKE]
    assert check(settings, store, minutes(60)).alerts == []  # the loop is still in the window
    back = check(settings, store, minutes(95))  # its checks have left the window
    [resolved] = back.alerts
    assert (resolved.type, resolved.resolves) == (AlertType.RESOLVED, AlertType.SPIKE)
    assert resolved.message == (
        "OpenRouter spend is back to its usual pace: $0.00 in the last 60 min, 0.0× the usual "
        "$0.51/h."
    )
    assert back.as_dict()["spike"]["status"] == "ok"


def test_a_top_up_is_never_spend_so_never_a_spike(
    sim: Simulator, settings: Settings, store: Store, usual: str
) -> None:
    balance(sim, 8.0)
    check(settings, store, T0)
    balance(sim, 58.0)  # $50 bought
    result = check(settings, store, minutes(30))
    assert [a.type for a in result.alerts] == [AlertType.RESOLVED]  # the low balance ended
    assert result.as_dict()["spike"]["window_spend_usd"] == 0.0
    assert result.as_dict()["spike"]["status"] == "ok"


def test_without_a_usual_pace_there_is_no_spike_and_the_result_says_why(
    sim: Simulator, settings: Settings, store: Store
) -> None:
    sim.add_key(BATCH, name="batch-agent")
    balance(sim, 100.0)
    check(settings, store, T0)
    loop(sim, 50.0, 50.0, before_usd=100.0)
    result = check(settings, store, minutes(30))
    assert result.alerts == []
    data = result.as_dict()
    assert data["spike"] is None
    assert data["note"] == (
        "spike: no usual pace to compare with yet: /activity shows no spend in 7 days, "
        "and the stored history covers less than 24 h"
    )


def test_a_spike_factor_of_0_reads_no_activity_and_measures_nothing(
    sim: Simulator, redis_url: str, store: Store, usual: str
) -> None:
    settings = make_settings(sim, redis_url, credit_spike_factor=0)
    balance(sim, 100.0)
    check(settings, store, T0)
    loop(sim, 14.2, 13.9, before_usd=100.0)
    result = check(settings, store, minutes(30))
    assert (result.alerts, result.as_dict()["spike"], result.note) == ([], None, None)
    assert "/activity" not in sim.requests()


def test_activity_is_read_once_per_utc_day(
    sim: Simulator, settings: Settings, store: Store, usual: str
) -> None:
    balance(sim, 100.0)
    for n in range(3):
        check(settings, store, minutes(30 * n))
    assert sim.requests()["/activity"] == 1
    sim.set_today("2026-11-27")
    check(settings, store, T0 + timedelta(days=1))
    assert sim.requests()["/activity"] == 2


def test_a_failed_activity_read_is_tried_again_an_hour_later_not_at_every_check(
    sim: Simulator, settings: Settings, store: Store, usual: str
) -> None:
    balance(sim, 100.0)
    sim.inject("status", status=400, path="/activity")
    first = check(settings, store, T0)
    assert first.as_dict()["spike"] is None
    assert "/activity failed (OpenRouter answered 400" in (first.note or "")
    check(settings, store, minutes(30))
    assert sim.requests()["/activity"] == 1
    assert check(settings, store, minutes(61)).as_dict()["spike"] is not None
    assert sim.requests()["/activity"] == 2


def test_without_the_management_key_the_history_gives_the_usual_pace_after_24_hours(
    sim: Simulator, redis_url: str, store: Store
) -> None:
    settings = make_settings(
        sim, redis_url, openrouter_management_key=None, credit_initial_balance=100.0
    )
    usage = 0.0
    for hours_back in range(26, 0, -2):  # a check every 2 h, spending $1 each time
        sim.update_key(API_KEY, usage=usage)
        result = check(settings, store, T0 - timedelta(hours=hours_back))
        usage += 1.0
        covered = hours_back <= 2  # only the last check sees 24 h behind it
        assert (result.as_dict()["spike"] is not None) is covered, hours_back
    sim.update_key(API_KEY, usage=usage + 0.25)
    check(settings, store, minutes(-30))
    sim.update_key(API_KEY, usage=usage + 10.25)  # $10 in half an hour, 20× the usual $0.50/h
    [alert] = check(settings, store, T0).alerts
    assert alert.type is AlertType.SPIKE
    assert alert.message == (
        "OpenRouter spend spike: $10.00 in the last 60 min, 20× the usual $0.50/h."
    )
    assert alert.top_keys == ()  # no management key: no key can be named


def test_the_spend_of_the_day_week_and_month_sums_every_key_with_the_management_key(
    sim: Simulator, settings: Settings, store: Store, rdb: redis.Redis
) -> None:
    sim.set_today(T0.date().isoformat())
    sim.add_key("sk-or-v1-spender-a-000000001", name="A", usage=90.0, usage_daily=1.5,
                usage_weekly=4.0, usage_monthly=20.0)  # fmt: skip
    sim.add_key("sk-or-v1-spender-b-000000001", name="B", usage=9.0, usage_daily=0.5,
                usage_weekly=1.0, usage_monthly=2.0)  # fmt: skip
    result = check(settings, store, T0).as_dict()
    assert (result["spend_today_usd"], result["spend_week_usd"], result["spend_month_usd"]) == (
        2.0,
        5.0,
        22.0,
    )
    current = rdb.hgetall("openrouter:credits:current")
    assert (current["spend_today_usd"], current["spend_month_usd"]) == ("2.0", "22.0")


def test_without_the_management_key_the_spend_is_the_watched_keys_own(
    sim: Simulator, redis_url: str, store: Store
) -> None:
    sim.set_today(T0.date().isoformat())
    sim.add_key(API_KEY, name="App", usage=30.0, usage_daily=3.0, usage_weekly=7.0)
    sim.add_key("sk-or-v1-other-key-00000001", name="Other", usage=5.0, usage_daily=5.0)
    settings = make_settings(sim, redis_url, openrouter_management_key=None)
    result = check(settings, store, T0).as_dict()
    assert (result["spend_today_usd"], result["spend_week_usd"], result["spend_month_usd"]) == (
        3.0,
        7.0,
        7.0,
    )


@pytest.mark.parametrize("workspaces", ["two", "404"])
def test_the_keys_of_every_workspace_are_checked_with_their_workspace_name(
    sim: Simulator, settings: Settings, store: Store, workspaces: str
) -> None:
    if workspaces == "404":
        sim.configure(no_workspaces=True)  # an account from before workspaces
    else:
        sim.add_workspace("Research")
        sim.add_key("sk-or-v1-lab-key-0000000001", name="Lab", workspace="Research",
                    limit=10.0, usage=9.9)  # fmt: skip
    balance(sim, 80.0)
    result = check(settings, store, T0)
    table = {row["name"]: row["workspace"] for row in store.keys_table()}
    if workspaces == "404":
        assert table == {"App": None}
        assert sim.requests()["/keys"] == 1
    else:
        assert table == {"App": "Default Workspace", "Lab": "Research"}
        [alert] = result.alerts
        assert alert.key_name == "Lab"


def test_a_spike_check_reading_activity_still_costs_three_redis_round_trips(
    sim: Simulator, settings: Settings, redis_url: str, usual: str
) -> None:
    pool = redis.ConnectionPool.from_url(
        redis_url, connection_class=_CountingConnection, decode_responses=True
    )
    counted = Store(redis.Redis(connection_pool=pool), Keyspace(), retention_s=86400.0)
    for i in range(250):  # three pages of keys, each with its usage samples
        sim.add_key(f"sk-or-v1-rt-{i}", name=f"k{i}", usage=1.0)
    balance(sim, 100.0)
    check(settings, counted, minutes(-1))  # loads the scripts once
    _CountingConnection.sends = 0
    with OpenRouterClient(settings) as c:
        run_check(settings, c, counted, T0)
    _CountingConnection.sends = 0
    sim.set_today("2026-11-27")  # a new day: /activity is read between load and commit
    with OpenRouterClient(settings) as c:
        run_check(settings, c, counted, T0 + timedelta(days=1))
    assert sim.requests()["/activity"] == 2
    assert _CountingConnection.sends == 3
    loop(sim, 14.2, 13.9, before_usd=100.0)
    _CountingConnection.sends = 0
    with OpenRouterClient(settings) as c:
        result: Any = run_check(settings, c, counted, T0 + timedelta(days=1, minutes=30))
    assert [a.type for a in result.alerts] == [AlertType.SPIKE]
    assert _CountingConnection.sends == 3
    counted.close()
