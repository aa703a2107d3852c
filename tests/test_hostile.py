"""Hostile data and careless settings, end to end: what a person, a subscriber and a channel
receive.

The simulator answers whatever it is told (raw `/keys` items, error messages, repeated
pages); the CLI runs as a subprocess and the worker is the session's real Celery worker.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks import check_credits
from credit_tasks.simulator import Simulator

from .conftest import BIN, run_cli, service_env, wait_for
from .receiver import Receiver
from .test_check import NO_USUAL_PACE

# clears the screen, retitles the terminal, colours red (C1 CSI), backspaces over text,
# deletes, reverses the rest (RLO), and isolates and marks it (LRI, RLM, ZWSP)
ESCAPES = "\x1b[2J\x1b[H\x1b]0;owned\x07\x9b31m\x08\x7f\u202e\u2066\u200f\u200b"


def evil_item(key_hash: str = "evil-hash", **fields: Any) -> dict[str, Any]:
    """A capped `/keys` item nearly used up, whose every text carries escape codes."""
    item = {
        "hash": f"{key_hash}{ESCAPES}",
        "name": f"{ESCAPES}CLEARED{'x' * 40}{ESCAPES}",
        "label": f"sk-or-v1-abc...123{ESCAPES}{'y' * 30}",
        "disabled": False,
        "limit": 10.0,
        "limit_remaining": 0.1,
        "limit_reset": f"monthly{ESCAPES}",
        "usage": 9.9,
    }
    return item | fields


def printable(text: str) -> bool:
    """Every line prints as text: no control, bidi or zero-width character on any of them."""
    return all(line.isprintable() for line in text.split("\n"))


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.fixture
def env(sim: Simulator, redis_server: str, redis_url: str) -> dict[str, str]:
    sim.set_account(total_credits=81.0, total_usage=1.0)
    return service_env(sim, redis_server)


def test_no_escape_code_from_the_api_reaches_check_keys_or_status(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    sim.add_raw_key_item(evil_item())
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 2, done.stderr  # a critical key: the worst status
    assert 'alert critical: OpenRouter key "[2J[H]0;owned31mCLEARED' in done.stdout
    keys = run_cli(env, "keys", cwd=tmp_path)
    status = run_cli(env, "status", cwd=tmp_path)
    as_json = run_cli(env, "keys", "--json", cwd=tmp_path)
    for shown in (done, keys, status, as_json):
        assert printable(shown.stdout + shown.stderr), shown.stdout
    assert all(printable(s) for s in strings(json.loads(as_json.stdout)))
    # the table cuts the name at 32 and the label at 22, each cut marked
    header, *rows = keys.stdout.splitlines()
    row = next(line for line in rows if "CLEARED" in line)
    at = header.index("label")  # after the workspace column
    name, label = row[:32], row[at : at + 22]
    assert name.endswith("…") and label.endswith("…") and label.startswith("sk-or-v1-abc...123")


def test_an_api_error_message_reaches_stderr_and_status_without_its_escape_codes(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    sim.inject("status", status=400, path="/key", message=f"{ESCAPES}screen gone")
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stderr.startswith("credit-monitor: OpenRouter answered 400 ")
    assert "screen gone" in done.stderr and printable(done.stderr)
    status = run_cli(env, "status", cwd=tmp_path)
    assert "Last error: OpenRouter answered 400 " in status.stdout
    assert printable(status.stdout + status.stderr)


def _published(pubsub: Any, wait_s: float = 1.0) -> list[dict[str, Any]]:
    out = []
    while (msg := pubsub.get_message(timeout=wait_s)) is not None:
        if msg["type"] == "message":
            out.append(json.loads(msg["data"]))
    return out


@pytest.mark.usefixtures("worker")
def test_the_worker_publishes_and_sends_alerts_without_escape_codes(
    sim: Simulator, rdb: redis.Redis, worker_receiver: Receiver
) -> None:
    sim.set_account(total_credits=81.0, total_usage=1.0)
    sim.add_raw_key_item(evil_item())
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    result = check_credits.delay().get(timeout=30)
    [alert] = result["alerts"]
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{alert['id']}", "channels_ok"),
        what="the alert to reach the Apprise channel",
    )
    [message] = _published(pubsub)
    pubsub.close()
    assert message["key_name"].startswith("[2J[H]0;owned31mCLEARED")
    assert message["subject"] == "key:evil-hash[2J[H]0;owned31m"
    [(_, post)] = worker_receiver.posts
    for text in strings(message) + strings(post) + strings(result):
        assert printable(text), text
    stored = rdb.hgetall(f"openrouter:alerts:{alert['id']}")
    assert all(printable(value) for value in stored.values())


@pytest.mark.parametrize(
    ("settings", "setup", "code", "line"),
    [
        pytest.param(
            {"CREDIT_CRITICAL_THRESHOLD": "0"},
            lambda sim: sim.inject("status", status=402, path="/key"),
            2,
            "CREDITS CRITICAL - $0.00 left (payment required)",
            id="a 402 at a critical threshold of 0",
        ),
        pytest.param(
            {"CREDIT_WARNING_THRESHOLD": "1", "CREDIT_CRITICAL_THRESHOLD": "0"},
            lambda sim: sim.set_account(total_credits=10.0, total_usage=10.0),
            2,
            "CREDITS CRITICAL - $0.00 left (account)",
            id="nothing left at a critical threshold of 0",
        ),
        pytest.param(
            {},
            lambda sim: sim.set_account(total_credits=20.4, total_usage=10.4),
            0,
            "CREDITS OK - $10.00 left (account)",
            id="20.4 - 10.4 at a $10 line",
        ),
    ],
)
def test_the_line_is_drawn_as_the_money_reads(
    sim: Simulator,
    redis_server: str,
    redis_url: str,
    tmp_path: Path,
    settings: dict[str, str],
    setup: Any,
    code: int,
    line: str,
) -> None:
    setup(sim)
    done = run_cli(service_env(sim, redis_server, **settings), "check", cwd=tmp_path)
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout.startswith(line)


def test_a_used_up_key_is_critical_at_a_key_critical_percent_of_0(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    sim.add_key("sk-or-v1-used-up", name="Used up", limit=10.0, usage=10.0)
    sim.add_key("sk-or-v1-a-cent", name="A cent", limit=10.0, usage=9.99)
    env = env | {"CREDIT_KEY_CRITICAL_PERCENT": "0"}
    done = run_cli(env, "check", "--json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr  # the account is fine, a key is critical
    rows = {
        r["name"]: r["status"]
        for r in json.loads(run_cli(env, "keys", "--json", cwd=tmp_path).stdout)
    }
    assert (rows["Used up"], rows["A cent"]) == ("critical", "warning")


def test_a_key_at_its_line_in_cents_is_ok(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    sim.add_key("sk-or-v1-at-the-line", name="At the line", limit=20.4, usage=16.32)
    assert run_cli(env, "check", cwd=tmp_path).returncode == 0
    [row] = [
        r
        for r in json.loads(run_cli(env, "keys", "--json", cwd=tmp_path).stdout)
        if r["name"] == "At the line"
    ]
    assert row["status"] == "ok"  # $4.08 left at 20% of $20.40, not "below $4.08"


@pytest.mark.usefixtures("worker")
def test_the_worker_reads_20_4_less_10_4_as_ten_dollars_and_ok(sim: Simulator) -> None:
    sim.set_account(total_credits=20.4, total_usage=10.4)
    result = check_credits.delay().get(timeout=30)
    assert (result["status"], result["alerts"]) == ("ok", [])


STOPPED = "/keys page 2 brought no new key: listing stopped there (does the server ignore offset?)"


def repeating_server(sim: Simulator) -> None:
    """/keys ignores offset: the same 101 items, one of them nearly used up, on every page."""
    page = [evil_item("low", name="Low", label="sk-or-v1-low...w")]
    page += [evil_item(f"h{i}", name=f"k{i}", limit_remaining=9.0) for i in range(100)]
    sim.inject("data", path="/keys", data=page, times=1000)


def test_a_server_that_ignores_offset_gives_the_command_one_alert_and_a_note(
    sim: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    repeating_server(sim)
    done = run_cli(env, "check", "--json", cwd=tmp_path)
    result = json.loads(done.stdout)
    assert [a["type"] for a in result["alerts"]] == ["critical"]
    assert result["note"] == f"{STOPPED}; {NO_USUAL_PACE}"
    assert result["keys"]["checked"] == 101
    assert sim.requests()["/keys"] == 2


@pytest.mark.usefixtures("worker")
def test_a_server_that_ignores_offset_gives_the_worker_one_alert_and_a_note(
    sim: Simulator, rdb: redis.Redis
) -> None:
    sim.set_account(total_credits=81.0, total_usage=1.0)
    repeating_server(sim)
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    result = check_credits.delay().get(timeout=30)
    assert result["note"] == f"{STOPPED}; {NO_USUAL_PACE}"
    [alert] = result["alerts"]
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{alert['id']}", "delivered_at"),
        what="the alert to be delivered",
    )
    assert [m["id"] for m in _published(pubsub)] == [alert["id"]]
    pubsub.close()
    assert sim.requests()["/keys"] == 2


EVICTS = "has maxmemory-policy allkeys-lru: it may evict the alert state"


@pytest.fixture
def evicting(own_redis: Any, sim: Simulator) -> dict[str, str]:
    """The environment of a command whose Redis evicts keys when memory runs short."""
    server = own_redis("--maxmemory-policy", "allkeys-lru")
    sim.set_account(total_credits=81.0, total_usage=1.0)
    return service_env(sim, server.url())


def test_check_and_status_say_in_one_line_when_redis_evicts(
    evicting: dict[str, str], tmp_path: Path
) -> None:
    done = run_cli(evicting, "check", cwd=tmp_path)
    assert done.returncode == 0  # a warning, not a failure
    [line] = done.stderr.splitlines()
    assert line.startswith("credit-monitor: Redis at redis://127.0.0.1:") and EVICTS in line
    assert line.endswith(
        "use the 'noeviction' policy or give credit_tasks a Redis instance or db of its own"
    )
    status = run_cli(evicting, "status", cwd=tmp_path)
    assert status.stdout.splitlines()[0].startswith("Warning:    Redis at ")
    assert EVICTS in status.stdout
    answer = json.loads(run_cli(evicting, "status", "--json", cwd=tmp_path).stdout)
    [warning] = answer["warnings"]
    assert EVICTS in warning


def test_a_redis_that_does_not_evict_brings_no_warning(env: dict[str, str], tmp_path: Path) -> None:
    assert run_cli(env, "check", cwd=tmp_path).stderr == ""
    assert json.loads(run_cli(env, "status", "--json", cwd=tmp_path).stdout)["warnings"] == []


def test_a_worker_says_at_start_when_redis_evicts(evicting: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "celery"), "-A", "credit_tasks", "worker", "--pool=solo",
             "--without-gossip", "--without-mingle", "--hostname=evicting@%h"],
            env=evicting, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: EVICTS in log.read_text(), timeout_s=30, what="the warning")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert len([line for line in text.splitlines() if EVICTS in line]) == 1  # said once
    assert "Traceback" not in text


def test_a_redis_that_refuses_config_brings_no_warning_and_no_failure(
    own_redis: Any, sim: Simulator, tmp_path: Path
) -> None:
    server = own_redis("--rename-command", "CONFIG", "")  # as some managed services do
    done = run_cli(service_env(sim, server.url()), "check", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
