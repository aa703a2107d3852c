"""The daily report: what it says, from the store and /activity; `credit-monitor report`; and
`daily_report` through a real worker, once per date however many beats send it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks import daily_report, notify
from credit_tasks.celery import REPORT_ENTRY, beat_schedule
from credit_tasks.check import run_check
from credit_tasks.client import OpenRouterClient
from credit_tasks.history import Point
from credit_tasks.readings import Activity
from credit_tasks.report import NEEDS_MANAGEMENT, assemble, message, yesterday
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator
from credit_tasks.store import Store

from .conftest import BIN, SessionWorker, run_cli, service_env, wait_for
from .receiver import Receiver
from .test_races import Beats

DAY = "2026-11-25"
FIELDS = {
    "date",
    "spend_usd",
    "balance_usd",
    "runway_hours",
    "alerts",
    "top_models",
    "top_providers",
    "top_keys",
    "notes",
}


def activity(model: str, provider: str, usd: float, requests: int = 10) -> Activity:
    return Activity(DAY, model, provider, usd, requests)


ROWS = [
    activity("openai/gpt-4.1", "OpenAI", 6.0, 100),
    activity("openai/gpt-4.1", "Azure", 2.0, 30),
    activity("anthropic/claude-sonnet-4", "Anthropic", 3.0, 20),
    activity("google/gemini-2.5-flash", "Google AI Studio", 0.5),
    activity("meta-llama/llama-3.3-70b-instruct", "DeepInfra", 0.4),
    activity("mistral/small", "Mistral", 0.3),
    activity("qwen/qwen3", "DeepInfra", 0.1),
]


def test_a_day_with_the_management_key_shows_its_models_providers_and_keys() -> None:
    keys = {f"h{i}": (float(i), f"key-{i}") for i in range(7)}
    report = assemble(
        DAY,
        current={"remaining_usd": "85.2", "runway_hours": "170.5"},
        alerts={"warning": 2, "resolved": 1},
        points=[],
        key_spend=keys,
        activity=ROWS,
        managed=True,
    )
    data = report.as_dict()
    assert set(data) == FIELDS
    assert (data["spend_usd"], data["balance_usd"], data["runway_hours"]) == (12.3, 85.2, 170.5)
    assert data["alerts"] == {"resolved": 1, "warning": 2}
    assert data["top_models"][:2] == [
        {"model": "openai/gpt-4.1", "usage_usd": 8.0, "requests": 130},
        {"model": "anthropic/claude-sonnet-4", "usage_usd": 3.0, "requests": 20},
    ]
    assert len(data["top_models"]) == 5
    assert [p["provider"] for p in data["top_providers"]] == [
        "OpenAI",
        "Anthropic",
        "Azure",
        "DeepInfra",  # two models' $0.50, ahead of another $0.50 by name
        "Google AI Studio",
    ]
    assert data["top_providers"][3] == {"provider": "DeepInfra", "usage_usd": 0.5, "requests": 20}
    assert [k["name"] for k in data["top_keys"]] == [f"key-{i}" for i in (6, 5, 4, 3, 2)]
    assert data["notes"] == []
    assert message(report) == (
        "OpenRouter daily report for 2025-11-25: $12.30 spent; $85.20 left (about 170 h at the "
        "recent pace); 3 alerts (1 resolved, 2 warning); most on openai/gpt-4.1 ($8.00), "
        "through OpenAI ($6.00), by key 'key-6' ($6.00)."
    ).replace("2025-11-25", DAY)


def test_without_the_management_key_the_report_says_what_it_cannot_show_and_why() -> None:
    t0 = datetime(2026, 11, 25, 8, tzinfo=UTC)
    points = [Point(t0 + timedelta(hours=h), r, None, "ok", "initial_balance")
              for h, r in ((0, 50.0), (4, 46.5), (9, 60.0), (12, 58.0))]  # fmt: skip
    report = assemble(
        DAY,
        current={"remaining_usd": "58.0", "runway_hours": ""},
        alerts={},
        points=points,
        key_spend={},
        activity=None,
        managed=False,
    )
    data = report.as_dict()
    assert data["spend_usd"] == 5.5  # the falls; the top-up between them is not spend
    assert (data["top_models"], data["top_providers"], data["top_keys"]) == ([], [], [])
    assert data["runway_hours"] is None
    assert data["notes"] == [
        f"top_models and top_providers {NEEDS_MANAGEMENT}",
        "spend_usd: from the balance the monitor's checks saw fall that day",
        f"top_keys {NEEDS_MANAGEMENT}",
    ]
    assert message(report) == (
        f"OpenRouter daily report for {DAY}: $5.50 spent; $58.00 left; no alerts; "
        "models, providers and keys need OPENROUTER_MANAGEMENT_KEY."
    )


def test_a_failed_activity_read_is_said_and_the_history_stands_in() -> None:
    report = assemble(
        DAY,
        current={},
        alerts={},
        points=[],
        key_spend={"h": (1.0, "a")},
        activity=None,
        activity_error="OpenRouter unavailable after 3 attempts",
        managed=True,
    )
    assert report.notes == [
        "top_models and top_providers: /activity failed (OpenRouter unavailable after 3 attempts)",
        "spend_usd: /activity unread and fewer than two checks that day",
    ]
    assert report.spend_usd is None and report.top_keys[0]["name"] == "a"


def test_the_beat_runs_the_report_at_the_hour_set_and_not_at_all_unset() -> None:
    unset = Settings(_env_file=None)  # type: ignore[call-arg]
    assert REPORT_ENTRY not in beat_schedule(unset)
    seven = Settings(_env_file=None, credit_report_hour_utc=7)  # type: ignore[call-arg]
    entry = beat_schedule(seven)[REPORT_ENTRY]
    assert entry["task"] == "credit_tasks.daily_report"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({7}, {0})
    assert entry["options"]["expires"] == 17 * 3600 - 1  # dropped before "yesterday" moves on


def yesterday_at(hour: int) -> datetime:
    day = date.fromisoformat(yesterday(datetime.now(UTC)))
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def watched_day(sim: Simulator, settings: Settings, store: Store) -> str:
    """Yesterday as the monitor saw it: checks, a warning and its end, a key that spent."""
    day = yesterday(datetime.now(UTC))
    sim.set_today(day)
    for model, usd in (("openai/gpt-4.1", 8.0), ("anthropic/claude-sonnet-4", 3.0)):
        sim.add_activity(day, usd, model=model)
    sim.add_key("sk-or-v1-batch-agent-000000001", name="batch-agent", usage=9.0, usage_daily=6.0)
    for hour, usd in ((10, 8.0), (11, 50.0)):  # a warning, then a top-up resolves it
        sim.set_account(total_credits=usd + 1.0, total_usage=1.0)
        with OpenRouterClient(settings) as client:
            result = run_check(settings, client, store, yesterday_at(hour))
        for alert in result.alerts:
            notify.deliver(store, alert, now=yesterday_at(hour))
    sim.set_today(None)
    return day


def test_report_json_prints_the_documented_fields_against_the_simulator(
    sim: Simulator, redis_server: str, settings: Settings, store: Store, tmp_path: Path
) -> None:
    day = watched_day(sim, settings, store)
    done = run_cli(service_env(sim, redis_server), "report", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == FIELDS
    assert data["date"] == day
    assert (data["spend_usd"], data["balance_usd"]) == (11.0, 50.0)
    assert data["alerts"] == {"resolved": 1, "warning": 1}
    assert [(m["model"], m["usage_usd"]) for m in data["top_models"]] == [
        ("openai/gpt-4.1", 8.0),
        ("anthropic/claude-sonnet-4", 3.0),
    ]
    assert [p["provider"] for p in data["top_providers"]] == ["OpenAI", "Anthropic"]
    assert [(k["name"], k["spend_usd"]) for k in data["top_keys"]] == [("batch-agent", 6.0)]
    assert data["notes"] == []
    text = run_cli(service_env(sim, redis_server), "report", "--date", day, cwd=tmp_path).stdout
    assert f"OpenRouter daily report for {day} (UTC)" in text
    assert "  Keys:       batch-agent $6.00" in text


def test_report_without_the_management_key_says_why_in_json_and_text(
    sim: Simulator, redis_server: str, redis_url: str, store: Store, tmp_path: Path
) -> None:
    env = service_env(sim, redis_server, OPENROUTER_MANAGEMENT_KEY="")
    data = json.loads(run_cli(env, "report", "--json", cwd=tmp_path).stdout)
    assert (data["top_models"], data["top_keys"], data["spend_usd"]) == ([], [], None)
    assert any("OPENROUTER_MANAGEMENT_KEY" in note for note in data["notes"])
    text = run_cli(env, "report", cwd=tmp_path).stdout
    assert f"Not shown: top_keys {NEEDS_MANAGEMENT}" in text
    assert "/activity" not in json.dumps(sim.requests())


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2999-01-01"])
def test_report_refuses_a_date_that_is_not_a_completed_day(
    sim: Simulator, redis_server: str, tmp_path: Path, text: str
) -> None:
    done = run_cli(service_env(sim, redis_server), "report", "--date", text, cwd=tmp_path)
    assert done.returncode == 3
    assert "DATE must be" in done.stderr and done.stdout == ""


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


def test_the_task_delivers_the_report_once_on_the_channel_and_as_apprise_info(
    worker: SessionWorker,
    sim: Simulator,
    rdb: redis.Redis,
    channel: Any,
    worker_receiver: Receiver,
) -> None:
    day = yesterday(datetime.now(UTC))
    sim.add_activity(day, 4.0, model="openai/gpt-4.1")
    first = daily_report.delay().get(timeout=30)
    assert (first["date"], first["skipped"], first["spend_usd"]) == (day, False, 4.0)
    assert daily_report.delay().get(timeout=30) == {"date": day, "skipped": True}
    wait_for(lambda: worker_receiver.posts, what="the report on the Apprise channel")
    [message_] = published(channel)
    assert (message_["type"], message_["id"]) == ("report", f"report-{day}")
    assert message_["report"]["top_models"][0]["model"] == "openai/gpt-4.1"
    assert message_["message"].startswith(f"OpenRouter daily report for {day}: $4.00 spent")
    [(_, post)] = worker_receiver.posts
    assert (post["type"], post["title"]) == ("info", "OpenRouter credits: REPORT")
    ttl_s = rdb.ttl(f"openrouter:reports:{day}")
    assert 89 * 86400 < ttl_s <= 90 * 86400  # kept for CREDIT_HISTORY_RETENTION_DAYS
    assert json.loads(rdb.get(f"openrouter:reports:{day}"))["spend_usd"] == 4.0


# the package's app with its report entry sped up: `celery -A reportbeat beat`
REPORT_BEAT = """
from credit_tasks.celery import REPORT_ENTRY, app

schedule = dict(app.conf.beat_schedule)
schedule[REPORT_ENTRY] = {**schedule[REPORT_ENTRY], "schedule": 1.0}  # every second
app.conf.beat_schedule = schedule
"""


@pytest.fixture
def two_report_beats(sim: Simulator, redis_server: str, tmp_path: Path) -> Iterator[Beats]:
    """Two beats at once, each sending daily_report every second (its entry, sped up)."""
    env = service_env(sim, redis_server, CREDIT_REPORT_HOUR_UTC="6")
    beats = Beats()
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        (home / "reportbeat.py").write_text(REPORT_BEAT)
        log = home / "beat.log"
        with log.open("wb") as out:
            beats.procs.append(
                subprocess.Popen(
                    [str(BIN / "celery"), "-A", "reportbeat", "beat", "--loglevel=INFO",
                     f"--schedule={home / 'schedule'}", f"--pidfile={home / 'beat.pid'}"],
                    env=env,
                    cwd=home,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        beats.logs.append(log)
    yield beats
    beats.stop()


def report_sends(log: Path) -> int:
    return log.read_text().count("Sending due task openrouter-daily-report")


def test_two_beats_give_one_report_per_date(
    worker: SessionWorker,
    sim: Simulator,
    rdb: redis.Redis,
    channel: Any,
    worker_receiver: Receiver,
    two_report_beats: Beats,
) -> None:
    day = yesterday(datetime.now(UTC))
    wait_for(
        lambda: min(map(report_sends, two_report_beats.logs)) >= 3,
        40,
        "three report sends from each beat",
    )
    two_report_beats.stop()
    wait_for(lambda: not worker.busy(), 30, "the last reports to finish")
    assert [(m["type"], m["id"]) for m in published(channel)] == [("report", f"report-{day}")]
    assert [p["type"] for _, p in worker_receiver.posts] == ["info"]
    assert rdb.exists(f"openrouter:reports:{day}") == 1
    assert rdb.lrange("openrouter:alerts:list", 0, -1) == [f"report-{day}"]
