"""Bad settings: one clear line and exit 3 from every command that loads them, and from a worker.

The table runs `credit_tasks.cli.main` in-process (the environment is the interface here);
a few rows run the real `credit-monitor`, `celery worker`, `celery beat` and `celery flower`
processes, from another folder and from the project root (where `celeryconfig.py` is read).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from credit_tasks.cli import main
from credit_tasks.simulator import Simulator

from .conftest import API_KEY, BIN, ROOT, run_cli, service_env

PREFIXES = ("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_")
MUST_BE_BELOW = "CREDIT_CRITICAL_THRESHOLD must be below CREDIT_WARNING_THRESHOLD"
SECRET_VARIABLES = {"OPENROUTER_API_KEY", "OPENROUTER_MANAGEMENT_KEY", "CREDIT_ALERT_URLS"}

ROWS: list[tuple[str, str, str]] = [
    ("CREDIT_WARNING_THRESHOLD", "-1", "CREDIT_WARNING_THRESHOLD='-1' is invalid: set it to"),
    ("CREDIT_WARNING_THRESHOLD", "ten", "CREDIT_WARNING_THRESHOLD='ten' is invalid"),
    ("CREDIT_WARNING_THRESHOLD", "nan", "CREDIT_WARNING_THRESHOLD='nan' is invalid"),
    ("CREDIT_WARNING_THRESHOLD", "inf", "CREDIT_WARNING_THRESHOLD='inf' is invalid"),
    ("CREDIT_CRITICAL_THRESHOLD", "-0.5", "CREDIT_CRITICAL_THRESHOLD='-0.5' is invalid"),
    ("CREDIT_CRITICAL_THRESHOLD", "10", MUST_BE_BELOW),  # at the warning threshold
    ("CREDIT_CRITICAL_THRESHOLD", "12", MUST_BE_BELOW),  # above it
    ("CREDIT_CHECK_INTERVAL_MINUTES", "0", "CREDIT_CHECK_INTERVAL_MINUTES='0' is invalid"),
    ("CREDIT_CHECK_INTERVAL_MINUTES", "-5", "CREDIT_CHECK_INTERVAL_MINUTES='-5' is invalid"),
    ("CREDIT_CHECK_INTERVAL_MINUTES", "soon", "CREDIT_CHECK_INTERVAL_MINUTES='soon'"),
    ("CREDIT_ALERT_COOLDOWN_HOURS", "-1", "CREDIT_ALERT_COOLDOWN_HOURS='-1' is invalid"),
    ("CREDIT_INITIAL_BALANCE", "-5", "CREDIT_INITIAL_BALANCE='-5' is invalid"),
    ("CREDIT_INITIAL_BALANCE", "lots", "CREDIT_INITIAL_BALANCE='lots' is invalid"),
    ("CREDIT_RECOVERY_MARGIN", "1.5", "CREDIT_RECOVERY_MARGIN='1.5' is invalid"),
    ("CREDIT_RECOVERY_MARGIN", "-0.1", "CREDIT_RECOVERY_MARGIN='-0.1' is invalid"),
    ("CREDIT_UNKNOWN_AFTER_FAILURES", "0", "CREDIT_UNKNOWN_AFTER_FAILURES='0' is invalid"),
    ("CREDIT_UNKNOWN_AFTER_FAILURES", "2.5", "CREDIT_UNKNOWN_AFTER_FAILURES='2.5' is invalid"),
    ("CREDIT_HISTORY_RETENTION_DAYS", "0", "CREDIT_HISTORY_RETENTION_DAYS='0' is invalid"),
    ("CREDIT_REDIS_PREFIX", "has space", "CREDIT_REDIS_PREFIX='has space' is invalid"),
    ("CREDIT_REDIS_PREFIX", "a:b", "CREDIT_REDIS_PREFIX='a:b' is invalid"),
    ("CREDIT_HTTP_TIMEOUT_S", "0", "CREDIT_HTTP_TIMEOUT_S='0' is invalid"),
    ("CREDIT_HTTP_TIMEOUT_S", "-1", "CREDIT_HTTP_TIMEOUT_S='-1' is invalid"),
    ("CREDIT_HTTP_TIMEOUT_S", "fast", "CREDIT_HTTP_TIMEOUT_S='fast' is invalid"),
    ("CREDIT_RETRY_ATTEMPTS", "0", "CREDIT_RETRY_ATTEMPTS='0' is invalid"),
    ("CREDIT_RETRY_ATTEMPTS", "three", "CREDIT_RETRY_ATTEMPTS='three' is invalid"),
    ("CREDIT_RETRY_BUDGET_S", "0", "CREDIT_RETRY_BUDGET_S='0' is invalid"),
    ("CREDIT_RETRY_BUDGET_S", "-3", "CREDIT_RETRY_BUDGET_S='-3' is invalid"),
    ("CREDIT_ALERT_RETRY_ATTEMPTS", "0", "CREDIT_ALERT_RETRY_ATTEMPTS='0' is invalid"),
    ("CREDIT_ALERT_RETRY_S", "-1", "CREDIT_ALERT_RETRY_S='-1' is invalid"),
    ("CREDIT_KEY_WARNING_PERCENT", "101", "CREDIT_KEY_WARNING_PERCENT='101' is invalid"),
    ("CREDIT_KEY_WARNING_PERCENT", "-1", "CREDIT_KEY_WARNING_PERCENT='-1' is invalid"),
    ("CREDIT_KEY_CRITICAL_PERCENT", "30", "CREDIT_KEY_CRITICAL_PERCENT must be below"),
    ("CREDIT_BURN_WINDOW_HOURS", "0", "CREDIT_BURN_WINDOW_HOURS='0' is invalid"),
    ("CREDIT_RUNWAY_WARNING_HOURS", "-1", "CREDIT_RUNWAY_WARNING_HOURS='-1' is invalid"),
    ("CREDIT_RUNWAY_MIN_SPAN_MINUTES", "-1", "CREDIT_RUNWAY_MIN_SPAN_MINUTES='-1' is invalid"),
    ("CREDIT_SPIKE_WINDOW_MINUTES", "0", "CREDIT_SPIKE_WINDOW_MINUTES='0' is invalid: set it"),
    ("CREDIT_SPIKE_FACTOR", "-5", "CREDIT_SPIKE_FACTOR='-5' is invalid: set it to a number from 0"),
    ("CREDIT_SPIKE_FACTOR", "1e6", "CREDIT_SPIKE_FACTOR='1e6' is invalid"),
    ("CREDIT_SPIKE_WINDOW_MINUTES", "20000", "CREDIT_SPIKE_WINDOW_MINUTES='20000' is invalid"),
    ("CREDIT_SPIKE_MIN_USD", "cheap", "CREDIT_SPIKE_MIN_USD='cheap' is invalid"),
    ("CREDIT_REPORT_HOUR_UTC", "24", "CREDIT_REPORT_HOUR_UTC='24' is invalid: set it to a whole"),
    ("CREDIT_REPORT_HOUR_UTC", "9.5", "CREDIT_REPORT_HOUR_UTC='9.5' is invalid"),
    ("CREDIT_BEAT_SCHEDULER", "cron", "CREDIT_BEAT_SCHEDULER='cron' is invalid"),
    ("CREDIT_VISIBILITY_TIMEOUT_S", "0", "CREDIT_VISIBILITY_TIMEOUT_S='0' is invalid"),
    ("CREDIT_VISIBILITY_TIMEOUT_S", "1h", "CREDIT_VISIBILITY_TIMEOUT_S='1h' is invalid"),
    ("OPENROUTER_BASE_URL", "openrouter.ai/api/v1", "OPENROUTER_BASE_URL='openrouter.ai/api/v1'"),
    ("OPENROUTER_BASE_URL", "ftp://openrouter.ai/api", "OPENROUTER_BASE_URL='ftp://openrouter.ai"),
    ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379' is invalid: set it to a redis"),
    ("REDIS_URL", "redis://localhost:port/0", "REDIS_URL='redis://localhost:port/0' is invalid"),
    ("CELERY_BROKER_URL", "not a url", "CELERY_BROKER_URL='not a url' is invalid"),
    ("CELERY_RESULT_BACKEND", "redis://h:abc/0", "CELERY_RESULT_BACKEND='redis://h:abc/0'"),
    ("OPENROUTER_API_KEY", "sk-or-v1-abc def", "OPENROUTER_API_KEY is invalid: set it to the key"),
    ("OPENROUTER_API_KEY", "sk-or-v1-abc\ndef", "OPENROUTER_API_KEY is invalid: set it to the key"),
    ("OPENROUTER_API_KEY", "sk-or-v1-clé", "OPENROUTER_API_KEY is invalid: set it to the key"),
    ("OPENROUTER_MANAGEMENT_KEY", "sk-or-v1-m\tx", "OPENROUTER_MANAGEMENT_KEY is invalid"),
    # accepted once, then failing on every check: refused at start instead
    ("CREDIT_HISTORY_RETENTION_DAYS", "36500", "CREDIT_HISTORY_RETENTION_DAYS='36500' is invalid"),
    ("CREDIT_ALERT_COOLDOWN_HOURS", "1e308", "CREDIT_ALERT_COOLDOWN_HOURS='1e308' is invalid"),
    ("CREDIT_ALERT_COOLDOWN_HOURS", "1e13", "CREDIT_ALERT_COOLDOWN_HOURS='1e13' is invalid"),
    ("CREDIT_CHECK_INTERVAL_MINUTES", "0.001", "CREDIT_CHECK_INTERVAL_MINUTES='0.001' is invalid"),
    (
        "OPENROUTER_BASE_URL",
        "http://alice:pw@h/api/v1",
        "OPENROUTER_BASE_URL='http://***@h/api/v1'",
    ),
]
COMMANDS = [["check"], ["status"], ["history"], ["keys"], ["silence", "list"]]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A clean environment with valid settings, in a directory without a .env file."""
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPENROUTER_API_KEY", API_KEY)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.chdir(tmp_path)
    level = logging.getLogger("credit_tasks").level
    yield
    logging.getLogger("credit_tasks").setLevel(level)  # main() quiets it for the CLI


@pytest.mark.parametrize(("variable", "value", "expected"), ROWS)
@pytest.mark.usefixtures("environment")
def test_each_bad_setting_is_one_line_and_exit_3_from_every_command(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    for command in COMMANDS:
        assert main(command) == 3, command
        out, err = capsys.readouterr()
        assert out == ""
        assert err.endswith("\n") and err.count("\n") == 1, err
        assert err.startswith(f"credit-monitor: {expected}"), (command, err)
        assert "Traceback" not in err
        if variable in SECRET_VARIABLES:
            assert value not in err and value.split()[0] not in err


@pytest.mark.usefixtures("environment")
def test_a_bad_alert_url_does_not_stop_check_or_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "tok-3e9a1f"
    monkeypatch.setenv("CREDIT_ALERT_URLS", f"nosuchscheme://{token}@host/path")
    assert main(["check"]) == 3
    err = capsys.readouterr().err
    # the check goes on past the bad URL (see test_notify), and fails on Redis, in one line
    assert err.startswith("credit-monitor: Redis at redis://127.0.0.1:1/0 is unreachable")
    assert err.count("\n") == 1 and token not in err
    assert main(["status"]) == 3  # status does not send alerts: it fails on Redis instead
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value", "command", "expected"),
    [
        ("CREDIT_WARNING_THRESHOLD", "ten", "check", "CREDIT_WARNING_THRESHOLD='ten' is invalid"),
        ("CREDIT_CRITICAL_THRESHOLD", "10", "status", MUST_BE_BELOW),
        ("REDIS_URL", "localhost:6379", "history", "REDIS_URL='localhost:6379' is invalid"),
        ("OPENROUTER_API_KEY", "sk-or-v1-clé", "check", "OPENROUTER_API_KEY is invalid"),
    ],
)
def test_the_real_command_says_a_bad_setting_in_one_line_and_exits_3(
    sim: Simulator,
    redis_server: str,
    tmp_path: Path,
    variable: str,
    value: str,
    command: str,
    expected: str,
) -> None:
    done = run_cli(service_env(sim, redis_server, **{variable: value}), command, cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"credit-monitor: {expected}")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "CREDIT_ALERT_COOLDOWN_HOURS",
            "1e308",
            "CREDIT_ALERT_COOLDOWN_HOURS='1e308' is invalid: set it to a number of hours "
            "from 0 to 8760 (a year), e.g. 1",
        ),
        (
            "OPENROUTER_BASE_URL",
            "http://alice:pw@127.0.0.1:1/api/v1",
            "OPENROUTER_BASE_URL='http://***@127.0.0.1:1/api/v1' is invalid: set it to a URL "
            "without a user name or password (the key goes in OPENROUTER_API_KEY), "
            "e.g. https://openrouter.ai/api/v1",
        ),
    ],
)
def test_a_worker_refuses_a_setting_beyond_its_bounds_at_start(
    sim: Simulator, redis_server: str, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    done = subprocess.run(
        [str(BIN / "celery"), "-A", "credit_tasks", "worker", "--loglevel=INFO"],
        env=service_env(sim, redis_server, **{variable: value}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr == f"credit_tasks: {expected}\n"


@pytest.mark.parametrize("program", ["worker", "beat", "flower"])
@pytest.mark.parametrize("where", ["elsewhere", "the project root"])
def test_a_worker_beat_or_flower_with_a_bad_setting_exits_3_with_one_line(
    sim: Simulator, redis_server: str, tmp_path: Path, program: str, where: str
) -> None:
    """The project root has `celeryconfig.py`, which loads the settings a second time."""
    env = service_env(sim, redis_server, CREDIT_CRITICAL_THRESHOLD="20")
    done = subprocess.run(
        [str(BIN / "celery"), "-A", "credit_tasks", program, "--loglevel=INFO"],
        env=env,
        cwd=ROOT if where == "the project root" else tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert (
        done.stderr == f"credit_tasks: {MUST_BE_BELOW}: lower it or raise the warning threshold\n"
    )
