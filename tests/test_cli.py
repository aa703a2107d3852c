"""`credit-monitor` as a cron job or a person runs it: a subprocess, real Redis, the simulator."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis

from credit_tasks.cli import sparkline
from credit_tasks.simulator import Simulator

from .conftest import API_KEY, BIN, MANAGEMENT_KEY, run_cli, service_env, wait_for


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


@pytest.fixture
def env(sim: Simulator, redis_server: str, redis_url: str) -> dict[str, str]:
    # a burn rate from the first seconds of history: the runway tests need no hour-long wait
    return service_env(sim, redis_server, CREDIT_RUNWAY_MIN_SPAN_MINUTES="0")


@pytest.mark.parametrize(
    ("balance_usd", "code", "line"),
    [
        (50.0, 0, "CREDITS OK - $50.00 left (account) | remaining=50.00;10;5;0"),
        (8.0, 1, "CREDITS WARNING - $8.00 left (account) | remaining=8.00;10;5;0"),
        (3.0, 2, "CREDITS CRITICAL - $3.00 left (account) | remaining=3.00;10;5;0"),
    ],
)
def test_check_prints_a_nagios_line_and_exits_with_the_status_code(
    sim: Simulator, env: dict[str, str], tmp_path: Path, balance_usd: float, code: int, line: str
) -> None:
    balance(sim, balance_usd)
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stdout.splitlines()[0].startswith(line)
    assert done.stderr == ""


def test_a_critical_key_makes_check_and_status_exit_2_with_the_account_first(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 80.0)
    sim.add_key("sk-or-v1-customer-low", name="Low", limit=50.0, usage=48.0)  # $2 of $50
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = done.stdout.splitlines()[0]
    assert line.startswith("CREDITS CRITICAL - $80.00 left (account); 1 key critical | ")
    data = json.loads(run_cli(env, "check", "--json", cwd=tmp_path).stdout)
    assert (data["status"], data["worst_status"]) == ("ok", "critical")
    status = run_cli(env, "status", cwd=tmp_path)
    assert status.returncode == 2
    assert "Status:     CRITICAL (account ok, 1 key critical)" in status.stdout
    assert run_cli(env, "status", "--json", cwd=tmp_path).returncode == 2


def test_a_skipped_check_exits_3_and_says_why(
    sim: Simulator, env: dict[str, str], tmp_path: Path, rdb: redis.Redis
) -> None:
    balance(sim, 80.0)
    assert run_cli(env, "check", cwd=tmp_path).returncode == 0
    balance(sim, 2.0)
    rdb.set("openrouter:monitoring:lock", "another-check", px=60_000)
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout == "CREDITS UNKNOWN - skipped: another check is running\n"
    assert json.loads(run_cli(env, "check", "--json", cwd=tmp_path).stdout)["skipped"] is True


def test_check_is_the_default_command(sim: Simulator, env: dict[str, str], tmp_path: Path) -> None:
    balance(sim, 50.0)
    done = run_cli(env, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("CREDITS OK")


def test_check_delivers_due_alerts_in_process_without_a_worker(
    sim: Simulator, env: dict[str, str], tmp_path: Path, rdb: redis.Redis
) -> None:
    balance(sim, 8.0)
    done = run_cli(env, "check", cwd=tmp_path)
    assert "alert warning: OpenRouter credits are low: $8.00 left" in done.stdout
    [alert_id] = rdb.lrange("openrouter:alerts:list", 0, -1)
    assert rdb.hget(f"openrouter:alerts:{alert_id}", "delivered_at")
    again = run_cli(env, "check", cwd=tmp_path)
    assert "alert" not in again.stdout  # within the cooldown
    assert rdb.llen("openrouter:alerts:list") == 1


def test_check_json_has_the_documented_fields(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 8.0)
    done = run_cli(env, "check", "--json", cwd=tmp_path)
    data = json.loads(done.stdout)
    assert data["status"] == "warning"
    assert data["remaining_usd"] == 8.0
    assert data["usage_usd"] == 0.0
    assert data["source"] == "account"
    assert data["checked_at"].endswith("+00:00")
    assert done.returncode == 1


def test_an_overspent_key_exits_2_not_3_and_says_by_how_much(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    sim.update_key(API_KEY, limit=10.0, usage=10.5)
    done = run_cli(env, "check", "--json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    data = json.loads(done.stdout)
    assert (data["status"], data["remaining_usd"], data["error"]) == ("critical", -0.5, None)
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.stdout.startswith("CREDITS CRITICAL - overspent by $0.50 (key limit)")


def test_status_names_the_keys_that_could_not_be_read(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 50.0)
    sim.add_raw_key_item({"hash": "broken-hash", "usage": "lots"})
    assert run_cli(env, "check", cwd=tmp_path).returncode == 0
    done = run_cli(env, "status", cwd=tmp_path)
    assert "Unreadable keys: broken-hash" in done.stdout
    data = json.loads(run_cli(env, "status", "--json", cwd=tmp_path).stdout)
    assert data["monitoring"]["unreadable_keys"] == "broken-hash"


def test_an_unknown_balance_exits_3_and_names_the_setting_that_would_reveal_it(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    del env["OPENROUTER_MANAGEMENT_KEY"]
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 3
    assert "OPENROUTER_MANAGEMENT_KEY" in done.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"OPENROUTER_API_KEY": ""}, "OPENROUTER_API_KEY is not set"),
        ({"CREDIT_WARNING_THRESHOLD": "ten"}, "CREDIT_WARNING_THRESHOLD='ten' is invalid"),
        ({"CREDIT_CRITICAL_THRESHOLD": "12"}, "CREDIT_CRITICAL_THRESHOLD must be below"),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "unreachable"),
        ({"OPENROUTER_API_KEY": "sk-or-v1-wrong"}, "rejected OPENROUTER_API_KEY"),
        ({"OPENROUTER_BASE_URL": "http://127.0.0.1:1/api/v1"}, "OpenRouter unavailable"),
    ],
)
def test_expected_failures_end_in_one_line_on_stderr_and_exit_3(
    sim: Simulator, env: dict[str, str], tmp_path: Path, change: dict[str, str], expected: str
) -> None:
    env.update(change)
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_malformed_answer_is_reported_not_crashed_on(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    sim.inject(
        "body",
        path="/key",
        body="<html><body>502 Bad Gateway</body></html>",
        content_type="text/html",
    )
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_history_prints_a_table_with_a_sparkline_and_json(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    for usd in (40.0, 30.0, 20.0):
        balance(sim, usd)
        run_cli(env, "check", cwd=tmp_path)
    table = run_cli(env, "history", cwd=tmp_path)
    assert table.returncode == 0
    assert "3 checks" in table.stdout
    assert "$20.00" in table.stdout
    data = json.loads(run_cli(env, "history", "2", "--json", cwd=tmp_path).stdout)
    assert data["hours"] == 2 and data["bucket_s"] == 1  # a young history: 1 s buckets
    assert sum(b["checks"] for b in data["buckets"]) == 3
    assert min(b["min_usd"] for b in data["buckets"]) == 20.0
    assert max(b["max_usd"] for b in data["buckets"]) == 40.0
    assert data["buckets"][-1]["last_usd"] == 20.0
    assert data["summary"]["spend_usd"] == pytest.approx(20.0)


@pytest.mark.parametrize("hours", ["-5", "1e20", "inf"])
def test_history_refuses_a_bad_hours_argument(
    env: dict[str, str], tmp_path: Path, hours: str
) -> None:
    done = run_cli(env, "history", hours, cwd=tmp_path)
    assert done.returncode == 3
    assert "HOURS must be a number > 0 and up to 87600 (ten years)" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_shows_the_snapshot_monitoring_and_alerts(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 4.0)
    run_cli(env, "check", cwd=tmp_path)
    done = run_cli(env, "status", cwd=tmp_path)
    assert done.returncode == 2
    assert "CRITICAL" in done.stdout
    assert "$4.00" in done.stdout
    assert "critical" in done.stdout  # the recent alert
    data = json.loads(run_cli(env, "status", "--json", cwd=tmp_path).stdout)
    assert data["current"]["status"] == "critical"
    assert data["monitoring"]["consecutive_failures"] == "0"


def test_no_secret_appears_in_any_output(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 3.0)
    outputs = [
        run_cli(env, *args, cwd=tmp_path)
        for args in (["check"], ["check", "--json"], ["status"], ["status", "--json"], ["history"])
    ]
    env["OPENROUTER_API_KEY"] = API_KEY + "x"
    outputs.append(run_cli(env, "check", cwd=tmp_path))
    text = "".join(o.stdout + o.stderr for o in outputs)
    assert API_KEY not in text and MANAGEMENT_KEY not in text


def test_python_dash_m_is_the_same_command(env: dict[str, str], tmp_path: Path) -> None:
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "credit_tasks", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0
    assert "check" in done.stdout and "history" in done.stdout


def test_a_sparkline_spans_the_lowest_to_the_highest_block() -> None:
    assert sparkline([1.0, 5.0, 9.0]) == "▁▄█"
    assert sparkline([]) == ""


def test_check_json_gives_the_burn_rate_and_runway_or_null(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 50.0)
    first = json.loads(run_cli(env, "check", "--json", cwd=tmp_path).stdout)
    assert first["burn_rate_usd_per_hour"] is None
    assert first["runway_hours"] is None
    sim.set_spend(key=API_KEY, usd_per_hour=3600.0)  # a dollar a second
    spent = first["remaining_usd"] - 0.01
    wait_for(lambda: sim.state()["balance"] <= spent, what="the simulator to spend a cent")
    second = json.loads(run_cli(env, "check", "--json", cwd=tmp_path).stdout)
    assert second["burn_rate_usd_per_hour"] > 0
    assert second["runway_hours"] == pytest.approx(
        second["remaining_usd"] / second["burn_rate_usd_per_hour"], abs=0.006
    )  # rounded to 2 decimals
    line = run_cli(env, "check", cwd=tmp_path).stdout.splitlines()[0]
    # the span really observed (a few seconds here), never the window's nominal 24 h
    assert re.search(r"at the pace of the last \d+ s \(account\)", line), line
    assert "runway_hours=" in line


def test_a_runway_waits_for_an_hour_of_history_by_default(
    sim: Simulator, redis_server: str, tmp_path: Path
) -> None:
    env = service_env(sim, redis_server)
    balance(sim, 50.0)
    run_cli(env, "check", cwd=tmp_path)
    sim.set_spend(key=API_KEY, usd_per_hour=3600.0)
    wait_for(lambda: sim.state()["balance"] <= 49.99, what="the simulator to spend a cent")
    burst = json.loads(run_cli(env, "check", "--json", cwd=tmp_path).stdout)
    assert (burst["burn_rate_usd_per_hour"], burst["runway_hours"]) == (None, None)
    assert [a["type"] for a in burst["alerts"]] == []  # no runway alert from a burst
    status = run_cli(env, "status", cwd=tmp_path).stdout
    assert "Runway:     not projected (needs 1 h of history with spend in the window)" in status


def test_keys_lists_every_key_least_remaining_first(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 80.0)
    sim.add_key("sk-or-v1-customer-a", name="Customer A", limit=10.0, usage=9.0)
    sim.add_key("sk-or-v1-customer-b", name="Customer B", limit=100.0, usage=99.5)
    sim.add_key("sk-or-v1-customer-c", name="Customer C", limit=10.0, usage=1.0)
    run_cli(env, "check", cwd=tmp_path)
    rows = json.loads(run_cli(env, "keys", "--json", cwd=tmp_path).stdout)
    assert [r["name"] for r in rows] == ["Customer B", "Customer A", "Customer C", "App"]
    assert [r["status"] for r in rows] == ["critical", "warning", "ok", "ok"]
    assert set(rows[0]) >= {"hash", "name", "label", "limit_usd", "remaining_usd", "status"}
    table = run_cli(env, "keys", cwd=tmp_path).stdout.splitlines()
    assert table[1].startswith("Customer B") and "critical" in table[1]
    for key in ("sk-or-v1-customer-a", "sk-or-v1-customer-b", API_KEY, MANAGEMENT_KEY):
        assert key not in "\n".join(table) + json.dumps(rows)


def test_check_json_and_status_carry_the_spend_of_the_day_week_and_month(
    sim: Simulator, env: dict[str, str], tmp_path: Path, rdb: redis.Redis
) -> None:
    balance(sim, 50.0)
    sim.add_key("sk-or-v1-spender-000000000001", name="Spender", usage=40.0, usage_daily=1.25,
                usage_weekly=6.0, usage_monthly=30.0)  # fmt: skip
    data = json.loads(run_cli(env, "check", "--json", cwd=tmp_path).stdout)
    assert (data["spend_today_usd"], data["spend_week_usd"], data["spend_month_usd"]) == (
        1.25,
        6.0,
        30.0,
    )
    assert rdb.hget("openrouter:credits:current", "spend_week_usd") == "6.0"
    status = run_cli(env, "status", cwd=tmp_path).stdout
    assert "Spent:      today $1.25, this week $6.00, this month $30.00" in status


def test_check_json_says_why_there_is_no_spike_without_a_usual_pace(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 50.0)
    data = json.loads(run_cli(env, "check", "--json", cwd=tmp_path).stdout)
    assert data["spike"] is None
    assert data["note"].startswith("spike: no usual pace to compare with yet: ")


def test_keys_json_gives_each_key_its_workspace(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 80.0)
    sim.add_workspace("Research")
    sim.add_key("sk-or-v1-lab-key-0000000001", name="Lab", workspace="Research", limit=5.0)
    run_cli(env, "check", cwd=tmp_path)
    rows = json.loads(run_cli(env, "keys", "--json", cwd=tmp_path).stdout)
    assert {r["name"]: r["workspace"] for r in rows} == {
        "Lab": "Research",
        "App": "Default Workspace",
    }
    table = run_cli(env, "keys", cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[:3] == ["name", "workspace", "label"]
    assert table[1].split()[:2] == ["Lab", "Research"]


def test_a_spike_is_alerted_with_its_key_and_resolved_once_the_window_is_quiet(
    sim: Simulator, redis_server: str, tmp_path: Path, rdb: redis.Redis
) -> None:
    """A 5 s spike window, so the loop leaves it while the test waits."""
    env = service_env(sim, redis_server, CREDIT_SPIKE_WINDOW_MINUTES=str(5 / 60))
    sim.seed_activity(7, 24.0)  # usually $1/h
    balance(sim, 50.0)
    batch = sim.add_key("sk-or-v1-batch-agent-0000000001", name="batch-agent", usage=1.0)
    assert run_cli(env, "check", cwd=tmp_path).returncode == 0
    balance(sim, 45.0)
    sim.update_key(batch, usage=5.5)  # $5 in seconds, $4.50 of it the batch key's
    spike = run_cli(env, "check", cwd=tmp_path)
    assert spike.returncode == 1  # a spike is a warning, whatever the balance
    assert spike.stdout.startswith("CREDITS WARNING - $45.00 left (account); spike warning")
    assert "alert spike: OpenRouter spend spike: $5.00 in the last 5 s, " in spike.stdout
    assert "most of it from key 'batch-agent' ($4.50)." in spike.stdout
    time.sleep(5.5)  # the loop's check leaves the window
    quiet = run_cli(env, "check", "--json", cwd=tmp_path)
    data = json.loads(quiet.stdout)
    [resolved] = data["alerts"]
    assert resolved["type"] == "resolved"
    assert data["spike"]["status"] == "ok"
    record = rdb.hgetall(f"openrouter:alerts:{resolved['id']}")
    assert (record["resolves"], record["subject"]) == ("spike", "account:spike")


def test_history_into_a_pipe_whose_reader_left_ends_quietly(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    """`credit-monitor history 48 | head`: here the reader leaves before the first line."""
    for usd in (40.0, 30.0):
        balance(sim, usd)
        run_cli(env, "check", cwd=tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(BIN / "credit-monitor"), "history", "48"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # as a shell tool cut short by its reader


def test_keys_sorts_by_status_then_by_the_share_of_the_limit_left(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 80.0)
    sim.add_key("sk-or-v1-customer-big", name="Big", limit=50.0, usage=48.0)  # $2, 4 %
    sim.add_key("sk-or-v1-customer-small", name="Small", limit=5.0, usage=3.5)  # $1.50, 30 %
    sim.add_key("sk-or-v1-customer-mid", name="Mid", limit=10.0, usage=8.5)  # $1.50, 15 %
    sim.add_key("sk-or-v1-customer-tight", name="Tight", limit=100.0, usage=97.0)  # $3, 3 %
    run_cli(env, "check", cwd=tmp_path)
    rows = json.loads(run_cli(env, "keys", "--json", cwd=tmp_path).stdout)
    assert [(r["name"], r["status"]) for r in rows] == [
        ("Tight", "critical"),
        ("Big", "critical"),
        ("Mid", "warning"),
        ("Small", "ok"),
        ("App", "ok"),  # uncapped: last
    ]


def test_keys_with_the_management_key_and_no_key_listed_says_so(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    balance(sim, 80.0)
    assert "No keys recorded yet: run `credit-monitor check`" in (
        run_cli(env, "keys", cwd=tmp_path).stdout
    )
    sim.inject("data", data=[], path="/keys")  # the account lists no key
    assert run_cli(env, "check", cwd=tmp_path).returncode == 0
    done = run_cli(env, "keys", cwd=tmp_path)
    assert done.stdout.startswith("No keys recorded: the account listed none at the last check")
    assert "OPENROUTER_MANAGEMENT_KEY" not in done.stdout
    del env["OPENROUTER_MANAGEMENT_KEY"]
    done = run_cli(env, "keys", cwd=tmp_path)
    assert done.stdout.startswith("No keys recorded: set OPENROUTER_MANAGEMENT_KEY")


def test_each_monitor_keeps_its_beat_schedule_in_a_folder_of_its_own(
    sim: Simulator, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from credit_tasks import cli
    from credit_tasks.celery import app

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    folders: list[Path] = []

    def worker_main(argv: list[str]) -> None:
        [schedule] = [a.split("=", 1)[1] for a in argv if a.startswith("--schedule=")]
        folders.append(Path(schedule).parent)
        assert folders[-1].is_dir()  # it exists while the monitor runs

    monkeypatch.setattr(app, "worker_main", worker_main)
    level = logging.getLogger("credit_tasks").level
    try:
        assert cli.main(["monitor"]) == 0
        assert cli.main(["monitor"]) == 0
    finally:
        logging.getLogger("credit_tasks").setLevel(level)  # main() quiets it for the CLI
    assert folders[0] != folders[1]
    assert not any(folder.exists() for folder in folders)  # and is gone after
