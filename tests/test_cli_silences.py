"""`credit-monitor silence` and `ack` against a real Redis, the CLI's check and a real worker."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks import check_credits
from credit_tasks.cli import main
from credit_tasks.simulator import Simulator

from .conftest import SERVICE_PREFIXES, run_cli, service_env, wait_for
from .receiver import Receiver


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


@pytest.fixture
def env(sim: Simulator, redis_server: str, redis_url: str) -> dict[str, str]:
    # no cooldown: every check repeats the alert of a lasting condition
    return service_env(sim, redis_server, CREDIT_ALERT_COOLDOWN_HOURS="0")


@pytest.fixture
def channel(rdb: redis.Redis) -> Iterator[Any]:
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    yield pubsub
    pubsub.close()


def published(pubsub: Any) -> list[dict[str, Any]]:
    out = []
    while (msg := pubsub.get_message(timeout=0.5)) is not None:
        if msg["type"] == "message":
            out.append(json.loads(msg["data"]))
    return out


def cli(env: dict[str, str], tmp_path: Path, *args: str, code: int = 0) -> str:
    done = run_cli(env, *args, cwd=tmp_path)
    assert done.returncode == code, (args, done.stdout, done.stderr)
    return done.stdout


def add_silence(env: dict[str, str], tmp_path: Path, subject: str, kind: str = "any") -> str:
    out = cli(env, tmp_path, "silence", "add", "--subject", subject, "--type", kind,
              "--for", "2h", "--reason", "top-up ordered")  # fmt: skip
    [silence_id] = out.split()
    return silence_id


def test_a_silence_holds_the_cli_checks_alert_until_it_is_expired(
    sim: Simulator, env: dict[str, str], tmp_path: Path, rdb: redis.Redis, channel: Any
) -> None:
    balance(sim, 8.0)
    silence_id = add_silence(env, tmp_path, "account", "warning")
    held = cli(env, tmp_path, "check", code=1)
    assert f"held warning (silenced by {silence_id}): OpenRouter credits are low" in held
    assert "alert warning" not in held
    listed = json.loads(cli(env, tmp_path, "silence", "list", "--json"))
    assert [(s["id"], s["subject"], s["type"], s["reason"]) for s in listed] == [
        (silence_id, "account", "warning", "top-up ordered")
    ]
    assert 7100 < listed[0]["remaining_s"] <= 7200
    assert f"{silence_id}  account warning  1h 59m left" in cli(env, tmp_path, "silence", "list")
    status = cli(env, tmp_path, "status", code=1)
    assert f"Silences:\n  {silence_id}  account warning  1h 59m left" in status
    assert f"(silenced by {silence_id})" in status
    [shown] = json.loads(cli(env, tmp_path, "status", "--json", code=1))["silences"]
    assert shown | {"remaining_s": 0} == listed[0] | {"remaining_s": 0}
    expired = cli(env, tmp_path, "silence", "expire", silence_id)
    assert expired.startswith(f"silence {silence_id} expired")
    assert cli(env, tmp_path, "silence", "list") == "No active silences.\n"
    assert "alert warning: OpenRouter credits are low" in cli(env, tmp_path, "check", code=1)
    assert [m["type"] for m in published(channel)] == ["warning"]  # only after the expiry
    assert rdb.llen("openrouter:alerts:list") == 2


def test_an_ack_stops_the_repeats_of_the_condition_but_not_its_escalation(
    sim: Simulator, env: dict[str, str], tmp_path: Path, channel: Any
) -> None:
    balance(sim, 8.0)
    [first] = json.loads(cli(env, tmp_path, "check", "--json", code=1))["alerts"]
    assert cli(env, tmp_path, "ack", first["id"], "--reason", "on it").startswith(
        "acknowledged: no more repeats about account while it stays warning"
    )
    status = json.loads(cli(env, tmp_path, "status", "--json", code=1))
    assert [(a["subject"], a["alert_id"], a["reason"]) for a in status["acks"]] == [
        ("account", first["id"], "on it")
    ]
    assert "Acknowledged:\n  account  since " in cli(env, tmp_path, "status", code=1)
    repeat = json.loads(cli(env, tmp_path, "check", "--json", code=1))
    assert repeat["alerts"] == []
    assert [h["acked_by"] for h in repeat["held"]] == [first["id"]]
    balance(sim, 3.0)
    worse = json.loads(cli(env, tmp_path, "check", "--json", code=2))
    assert [a["type"] for a in worse["alerts"]] == ["critical"]
    assert json.loads(cli(env, tmp_path, "status", "--json", code=2))["acks"] == []
    assert [m["type"] for m in published(channel)] == ["warning", "critical"]


def test_a_silence_added_from_the_command_line_holds_the_workers_alert(
    worker: Any,
    sim: Simulator,
    redis_server: str,
    tmp_path: Path,
    rdb: redis.Redis,
    channel: Any,
    worker_receiver: Receiver,
) -> None:
    env = service_env(sim, redis_server)
    balance(sim, 8.0)
    silence_id = add_silence(env, tmp_path, "account", "warning")
    warned = check_credits.delay().get(timeout=30)
    assert warned["alerts"] == []
    [held] = warned["held"]
    assert (held["type"], held["silenced_by"]) == ("warning", silence_id)
    balance(sim, 3.0)  # critical: not covered; and the account inhibits its runway alert
    escalated = check_credits.delay().get(timeout=30)
    [critical] = escalated["alerts"]
    assert {(h["type"], h.get("inhibited_by")) for h in escalated["held"]} <= {
        ("runway", "account")
    }
    wait_for(
        lambda: rdb.hget(f"openrouter:alerts:{critical['id']}", "channels_ok"),
        what="the critical alert to reach the Apprise channel",
    )
    assert [(m["id"], m["type"]) for m in published(channel)] == [(critical["id"], "critical")]
    assert [p["title"] for _, p in worker_receiver.posts] == ["OpenRouter credits: CRITICAL"]
    record = rdb.hgetall(f"openrouter:alerts:{held['id']}")
    assert (record["silenced_by"], record["delivered_at"]) == (silence_id, "")


def test_key_alerts_are_held_while_the_account_is_critical(
    worker: Any, sim: Simulator, rdb: redis.Redis, channel: Any
) -> None:
    balance(sim, 3.0)
    low = sim.add_key("sk-or-v1-customer-a", name="Customer A", limit=10.0, usage=9.0)
    result = check_credits.delay().get(timeout=30)
    [critical] = result["alerts"]
    assert [(h["subject"], h["type"], h["inhibited_by"]) for h in result["held"]] == [
        (f"key:{low}", "warning", "account")
    ]
    assert [m["id"] for m in published(channel)] == [critical["id"]]


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str
) -> Iterator[redis.Redis]:
    """In-process `main` on the test Redis, in a directory without a .env file."""
    for name in list(os.environ):
        if name.startswith(SERVICE_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    level = logging.getLogger("credit_tasks").level
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset("openrouter:alerts:0123abcd", mapping={"type": "resolved", "subject": "account",
                "timestamp": "2026-03-04T12:00:00+00:00"})  # fmt: skip
    yield client
    client.close()
    logging.getLogger("credit_tasks").setLevel(level)  # main() quiets it for the CLI


SILENCE = ["silence", "add", "--subject", "account", "--for", "6h", "--reason", "known"]


def silence_with(**changed: str) -> list[str]:
    args = dict(zip(SILENCE[2::2], SILENCE[3::2], strict=True)) | changed
    return ["silence", "add", *(item for pair in args.items() for item in pair)]


def exit_code(argv: list[str]) -> int:
    """`main`'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(str(exc.code))


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (silence_with(**{"--subject": "acount"}), "SUBJECT must be account, account:runway"),
        (silence_with(**{"--subject": "key:"}), "SUBJECT must be"),
        (silence_with(**{"--type": "warn"}), "TYPE must be any or an alert type"),
        (silence_with(**{"--for": "90"}), "DURATION must look like 90m, 6h or 2d"),
        (silence_with(**{"--for": "soon"}), "DURATION must look like"),
        (silence_with(**{"--for": "0h"}), "DURATION must look like"),
        ([*SILENCE[:4], "--for=-5m", *SILENCE[6:]], "DURATION must look like"),
        (silence_with(**{"--reason": " "}), "--reason TEXT is required"),
        (SILENCE[:-2], "--reason TEXT is required"),
        (SILENCE[:2] + SILENCE[4:], "the following arguments are required: --subject"),
        (["silence"], "the following arguments are required: ACTION"),
        (["silence", "expire", "nope"], "no active silence 'nope'"),
        (["ack", "deadbeef99"], "no alert 'deadbeef99': `credit-monitor status` shows"),
        (["ack", "list"], "no alert 'list'"),
        (["ack", "0123abcd"], "alert 0123abcd is a resolved notice"),
        (["ack", "0123abcd", "--reason", ""], "--reason TEXT is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_3_and_nothing_is_written(
    environment: redis.Redis, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    before = {key: environment.type(key) for key in environment.scan_iter("*")}
    assert exit_code(argv) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("credit-monitor") and err.count("\n") == 1, err
    assert says in err
    assert {key: environment.type(key) for key in environment.scan_iter("*")} == before
    assert not environment.exists("openrouter:alerts:silences:version")


def test_an_expired_silence_cannot_be_expired_again(
    environment: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(SILENCE) == 0
    silence_id = capsys.readouterr().out.strip()
    assert main(["silence", "expire", silence_id]) == 0
    capsys.readouterr()
    assert main(["silence", "expire", silence_id]) == 3
    assert f"no active silence '{silence_id}'" in capsys.readouterr().err
    assert environment.hlen("openrouter:alerts:silences") == 0
