"""The simulator's workspaces, its spend by day and model, a looping key, and the keys' spend
of the day, week and month, over a real socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest

from credit_tasks.simulator import Simulator
from credit_tasks.simulator.workspaces import DEFAULT_WORKSPACE_ID

from .schema import problems

ORDINARY = "sk-or-v1-test-ordinary-0123456789"
MANAGEMENT = "sk-or-v1-test-management-9876543210"
TODAY = date(2026, 11, 26)  # a Thursday


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        simulator.set_today(TODAY.isoformat())
        simulator.set_account(total_credits=100.0)
        simulator.add_key(ORDINARY, name="App")
        simulator.add_key(MANAGEMENT, name="Admin", management=True)
        yield simulator


def get(sim: Simulator, path: str, key: str = MANAGEMENT) -> httpx.Response:
    return httpx.get(sim.base_url + path, headers={"Authorization": f"Bearer {key}"}, timeout=5)


def days_ago(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def test_workspaces_list_the_default_one_and_those_added_with_a_total() -> None:
    with Simulator() as sim:
        sim.add_key(MANAGEMENT, name="Admin", management=True)
        research = sim.add_workspace("Research")
        body = get(sim, "/workspaces").json()
        assert problems("workspaces_page", body) == []
        assert [(w["id"], w["name"]) for w in body["data"]] == [
            (DEFAULT_WORKSPACE_ID, "Default Workspace"),
            (research, "Research"),
        ]
        assert body["total_count"] == 2
        second = get(sim, "/workspaces?offset=1&limit=1").json()
        assert [w["slug"] for w in second["data"]] == ["research"]
        assert get(sim, "/workspaces?limit=0").status_code == 400


def test_keys_are_listed_one_workspace_at_a_time(sim: Simulator) -> None:
    research = sim.add_workspace("Research")
    sim.add_key("sk-or-v1-research-key-0001", name="Lab", workspace="Research")
    default = get(sim, "/keys").json()["data"]
    assert [k["name"] for k in default] == ["App"]
    lab = get(sim, f"/keys?workspace_id={research}").json()["data"]
    assert [(k["name"], k["workspace_id"]) for k in lab] == [("Lab", research)]
    assert get(sim, f"/keys?workspace_id={DEFAULT_WORKSPACE_ID}").json()["data"] == default


def test_an_account_from_before_workspaces_answers_404(sim: Simulator) -> None:
    sim.configure(no_workspaces=True)
    assert get(sim, "/workspaces").status_code == 404
    assert [k["name"] for k in get(sim, "/keys").json()["data"]] == ["App"]


def test_activity_holds_completed_days_only_one_row_per_day_and_model(sim: Simulator) -> None:
    sim.add_activity(days_ago(1), 2.0, model="openai/gpt-4.1", key=ORDINARY)
    sim.add_activity(days_ago(1), 1.0, model="openai/gpt-4.1")  # no key: another app
    sim.add_activity(days_ago(1), 0.5, model="anthropic/claude-sonnet-4", requests=7)
    sim.add_activity(days_ago(31), 9.0)  # out of reach: 30 days at most
    sim.add_activity(TODAY.isoformat(), 9.0)  # not complete yet
    body = get(sim, "/activity").json()
    assert problems("activity_page", body) == []
    rows = [(r["date"], r["model"], r["provider_name"], r["usage"]) for r in body["data"]]
    assert rows == [
        (days_ago(1), "openai/gpt-4.1", "OpenAI", 3.0),
        (days_ago(1), "anthropic/claude-sonnet-4", "Anthropic", 0.5),
    ]
    assert body["data"][1]["requests"] == 7
    assert "workspace_id" not in body["data"][0]


def test_activity_narrows_to_a_date_a_key_or_a_workspace_and_groups_by_workspace(
    sim: Simulator,
) -> None:
    research = sim.add_workspace("Research")
    lab = sim.add_key("sk-or-v1-research-key-0001", name="Lab", workspace=research)
    sim.add_activity(days_ago(1), 2.0, key=ORDINARY)
    sim.add_activity(days_ago(1), 5.0, key=lab)
    sim.add_activity(days_ago(2), 1.0, key=ORDINARY)
    one_day = get(sim, f"/activity?date={days_ago(2)}").json()["data"]
    assert [(r["date"], r["usage"]) for r in one_day] == [(days_ago(2), 1.0)]
    by_key = get(sim, f"/activity?api_key_hash={lab}").json()["data"]
    assert [r["usage"] for r in by_key] == [5.0]
    in_research = get(sim, f"/activity?workspace_id={research}").json()["data"]
    assert [r["usage"] for r in in_research] == [5.0]
    grouped = get(sim, f"/activity?date={days_ago(1)}&group_by=workspace").json()
    assert problems("activity_page", grouped) == []
    assert sorted((r["workspace_id"], r["usage"]) for r in grouped["data"]) == sorted(
        [(DEFAULT_WORKSPACE_ID, 2.0), (research, 5.0)]
    )
    assert get(sim, "/activity?date=26-11-2026").status_code == 400
    assert get(sim, "/activity", ORDINARY).status_code == 403


def test_a_seeded_usual_pace_fills_each_completed_day(sim: Simulator) -> None:
    sim.seed_activity(7, 12.0)
    rows = get(sim, "/activity").json()["data"]
    assert sorted(r["date"] for r in rows) == [days_ago(n) for n in range(7, 0, -1)]
    assert {r["usage"] for r in rows} == {12.0}


def test_a_looping_key_spends_fast_for_a_while_then_stops(sim: Simulator) -> None:
    batch = sim.add_key("sk-or-v1-looping-agent-0001", name="batch-agent")
    sim.set_loop(key=batch, usd_per_hour=36000.0, after_s=0.1, for_s=0.2)  # $10 a second
    assert sim.state()["total_usage"] == 0.0  # not yet
    time.sleep(0.5)
    spent = sim.state()["total_usage"]
    assert spent == pytest.approx(2.0, abs=0.05)  # 0.2 s of it, no more
    [looped] = [k for k in sim.state()["keys"] if k["name"] == "batch-agent"]
    assert looped["usage"] == pytest.approx(spent)
    time.sleep(0.1)
    assert sim.state()["total_usage"] == spent


def test_the_spend_of_today_counts_in_the_key_answers_and_the_days_activity(
    sim: Simulator,
) -> None:
    sim.update_key(ORDINARY, usage=40.0)  # spent before today: in none of today's figures
    sim.set_spend(key=ORDINARY, usd_per_hour=36000.0)
    time.sleep(0.1)
    sim.set_spend(key=ORDINARY, usd_per_hour=0.0)
    key = get(sim, "/key", ORDINARY).json()["data"]
    assert key["usage_daily"] == pytest.approx(key["usage"] - 40.0)
    assert key["usage_daily"] == key["usage_weekly"] == key["usage_monthly"] > 0.5
    [item] = get(sim, "/keys").json()["data"]
    assert item["usage_daily"] == pytest.approx(key["usage_daily"])
    assert get(sim, "/activity").json()["data"] == []  # today is not complete
    sim.set_today((TODAY + timedelta(days=1)).isoformat())  # Friday: a new day, same week
    rows = get(sim, "/activity").json()["data"]
    assert [(r["date"], r["model"]) for r in rows] == [(TODAY.isoformat(), "openai/gpt-4o-mini")]
    assert rows[0]["usage"] == pytest.approx(key["usage_daily"], abs=1e-6)
    key = get(sim, "/key", ORDINARY).json()["data"]
    assert key["usage_daily"] == 0.0 and key["usage_weekly"] > 0.5


def test_a_key_can_start_with_its_spend_of_the_day_week_and_month(sim: Simulator) -> None:
    sim.add_key(
        "sk-or-v1-busy-key-000000001", name="Busy", usage=50.0, usage_daily=2.0, usage_weekly=9.0
    )
    [busy] = [k for k in get(sim, "/keys").json()["data"] if k["name"] == "Busy"]
    assert (busy["usage_daily"], busy["usage_weekly"], busy["usage_monthly"]) == (2.0, 9.0, 9.0)


def test_the_control_api_adds_workspaces_activity_and_a_loop(sim: Simulator) -> None:
    admin = httpx.Client(base_url=f"http://{sim.host}:{sim.port}/_sim", timeout=5)
    research = admin.post("/workspaces", json={"name": "Research"}).json()["id"]
    assert research in sim.workspaces
    admin.post("/activity", json={"day": days_ago(1), "usage": 4.0, "model": "openai/gpt-4.1"})
    admin.post("/activity/seed", json={"days": 2, "usd_per_day": 1.0})
    assert sum(r["usage"] for r in get(sim, "/activity").json()["data"]) == 6.0
    assert admin.post("/loop", json={"key": ORDINARY, "usd_per_hour": 1.0}).status_code == 200
    bad = admin.post("/activity", json={"day": days_ago(1), "usage": 1.0, "model": "nope"})
    assert bad.status_code == 400
    admin.close()
