"""The API's bad days, over real HTTP: what each fault costs in requests, records and alerts.

One table, one row per fault. Most rows run `run_check` in-process against the simulator and a
real Redis; a representative subset runs `credit-monitor check` as a subprocess to show that
the CLI prints the same one line and exits with the same code. Retry settings are small
(3 attempts, a 3 s budget, a 1 s timeout) so the whole table stays fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from credit_tasks.check import CheckResult, run_check
from credit_tasks.cli import nagios_line
from credit_tasks.client import OpenRouterClient
from credit_tasks.rules import Status
from credit_tasks.simulator import Simulator
from credit_tasks.store import Store

from .conftest import API_KEY, MANAGEMENT_KEY, free_port, make_settings, run_cli, service_env

RETRY = {"credit_retry_attempts": 3, "credit_retry_budget_s": 3.0, "credit_http_timeout_s": 1.0}
RETRY_ENV = {
    "CREDIT_RETRY_ATTEMPTS": "3",
    "CREDIT_RETRY_BUDGET_S": "3",
    "CREDIT_HTTP_TIMEOUT_S": "1",
}
# the listing: the workspaces, then the keys of each (the simulator's account has one)
LISTING = {"/workspaces": 1, "/keys": 1}
USUAL = {"/activity": 1}  # a check that reads the balance reads the usual pace, once a day
OK_REQUESTS = {"/key": 1, "/credits": 1, **LISTING, **USUAL}
# /keys goes out beside /credits once /key has answered: a bad /credits does not stop it
CREDITS_FAILED = {"/key": 1, "/credits": 1, **LISTING}
REFUSED = "refused"  # base_url: a port nobody listens on


@dataclass(frozen=True)
class Row:
    """A fault and everything one check does about it."""

    faults: list[dict[str, Any]]
    requests: dict[str, int]  # the simulator's request counts: > 1 on a path means retried
    status: Status
    message: str | None = None  # in the one line on stderr (and in monitoring:status)
    alert: str | None = None  # the alert type raised by this single check
    remaining_usd: float | None = None
    source: str | None = None
    max_s: float = 1.5  # the check's duration bound
    min_s: float = 0.0
    base_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}[self.status.value]


def status(code: int, *, path: str | None = "/key", times: int = 1, **kw: Any) -> dict[str, Any]:
    return {"kind": "status", "status": code, "path": path, "times": times, **kw}


def data(payload: object, path: str = "/key") -> dict[str, Any]:
    return {"kind": "data", "data": payload, "path": path}


def body(text: str, content_type: str | None = None) -> dict[str, Any]:
    return {"kind": "body", "body": text, "path": "/key", "content_type": content_type}


UNAVAILABLE = "OpenRouter unavailable after 3 attempts"
MALFORMED = "OpenRouter answered /key with "
ROWS: dict[str, Row] = {
    "400": Row(
        [status(400)],
        {"/key": 1},
        Status.UNKNOWN,
        "OpenRouter answered 400 Bad request for /key: check OPENROUTER_BASE_URL",
    ),
    "401 api key": Row(
        [status(401)],
        {"/key": 1},
        Status.UNKNOWN,
        "OpenRouter rejected OPENROUTER_API_KEY (401 User not found.): check the key at",
        alert="unknown",
    ),
    "401 management key": Row(
        [status(401, path="/credits")],
        CREDITS_FAILED,
        Status.UNKNOWN,
        "OpenRouter rejected OPENROUTER_MANAGEMENT_KEY (401 User not found.)",
        alert="unknown",
    ),
    "402 on /key": Row(
        [status(402)],
        {"/key": 1, **LISTING, **USUAL},
        Status.CRITICAL,
        alert="critical",
        remaining_usd=0.0,
        source="payment_required",
    ),
    "402 on /credits": Row(
        [status(402, path="/credits")],
        OK_REQUESTS,
        Status.CRITICAL,
        alert="critical",
        remaining_usd=0.0,
        source="payment_required",
    ),
    "402 inside a 200": Row(
        [{"kind": "error_in_200", "status": 402, "path": "/key"}],
        {"/key": 1, **LISTING, **USUAL},
        Status.CRITICAL,
        alert="critical",
        remaining_usd=0.0,
        source="payment_required",
    ),
    "403 on /key": Row(
        [status(403)],
        {"/key": 1},
        Status.UNKNOWN,
        "OpenRouter rejected OPENROUTER_API_KEY (403 Forbidden)",
        alert="unknown",
    ),
    "403 on /credits": Row(
        [status(403, path="/credits", message="Only management keys can perform this operation")],
        CREDITS_FAILED,
        Status.UNKNOWN,
        "OPENROUTER_MANAGEMENT_KEY is not a management key (403 Only management keys",
        alert="unknown",
    ),
    "404 on /key, /auth/key answers": Row(
        [status(404)],
        {"/key": 1, "/auth/key": 1, "/credits": 1, **LISTING, **USUAL},
        Status.OK,
        remaining_usd=50.0,
        source="account",
    ),
    "404 on /key and /auth/key": Row(
        [status(404, path=None, times=2)],
        {"/key": 1, "/auth/key": 1},
        Status.UNKNOWN,
        "OpenRouter has neither /key nor /auth/key (404 Not Found): check OPENROUTER_BASE_URL",
    ),
    "408": Row(
        [status(408, times=10)],
        {"/key": 3},
        Status.UNKNOWN,
        f"{UNAVAILABLE} over",
        max_s=3.5,
        extra={"last": "408 Request timeout"},
    ),
    "429 with Retry-After 1": Row(
        [status(429, retry_after=1)],
        {"/key": 2, "/credits": 1, **LISTING, **USUAL},
        Status.OK,
        remaining_usd=50.0,
        source="account",
        min_s=1.0,  # the wait it asked for, not the backoff's 0.5 s
        max_s=2.0,
    ),
    "429 with X-RateLimit-Reset 1.5 s ahead": Row(
        [status(429, reset_in_s=1.5)],
        {"/key": 2, "/credits": 1, **LISTING, **USUAL},
        Status.OK,
        remaining_usd=50.0,
        source="account",
        min_s=1.2,  # until the window reopens (less the request's own time), not the backoff
        max_s=2.5,
    ),
    "429 without Retry-After": Row(
        [status(429)],
        {"/key": 2, "/credits": 1, **LISTING, **USUAL},
        Status.OK,
        remaining_usd=50.0,
        source="account",
    ),
    "429 with a Retry-After past the budget": Row(
        [status(429, retry_after=60, times=10)],
        {"/key": 1},
        Status.UNKNOWN,
        "OpenRouter unavailable after 1 attempt over 0.0 s (last: 429 Rate limit exceeded; "
        "the next try in 60.0 s would pass the 3 s retry budget): will retry at the next check",
    ),
    "500": Row(
        [status(500, times=10)],
        {"/key": 3},
        Status.UNKNOWN,
        UNAVAILABLE,
        max_s=3.5,
        extra={"last": "500 Internal Server Error"},
    ),
    "502": Row(
        [status(502, times=10)],
        {"/key": 3},
        Status.UNKNOWN,
        UNAVAILABLE,
        max_s=3.5,
        extra={"last": "502 Bad gateway"},
    ),
    "503": Row(
        [status(503, times=10)],
        {"/key": 3},
        Status.UNKNOWN,
        UNAVAILABLE,
        max_s=3.5,
        extra={"last": "503 Service temporarily unavailable"},
    ),
    "503 once, then an answer": Row(
        [status(503)],
        {"/key": 2, "/credits": 1, **LISTING, **USUAL},
        Status.OK,
        remaining_usd=50.0,
        source="account",
    ),
    "503 inside a 200": Row(
        [{"kind": "error_in_200", "status": 503, "path": "/key", "times": 10}],
        {"/key": 3},
        Status.UNKNOWN,
        UNAVAILABLE,
        max_s=3.5,
    ),
    "connection refused": Row(
        [],
        {},
        Status.UNKNOWN,
        UNAVAILABLE,
        max_s=3.5,
        base_url=REFUSED,
        extra={"last": "ConnectError, cannot connect: Connection refused"},
    ),
    "connection reset mid-body": Row(
        [{"kind": "reset", "path": "/key", "times": 10}],
        {"/key": 3},
        Status.UNKNOWN,
        UNAVAILABLE,
        max_s=3.5,
        extra={"last": "the connection broke before a full answer"},
    ),
    "connection closed without an answer": Row(
        [{"kind": "close", "path": "/key", "times": 10}],
        {"/key": 3},
        Status.UNKNOWN,
        UNAVAILABLE,
        max_s=3.5,
        extra={"last": "RemoteProtocolError, the connection broke before a full answer"},
    ),
    "a read that never completes": Row(
        [{"kind": "hang", "path": "/key", "times": 10, "delay_s": 30}],
        {"/key": 2},  # 1 s timeout, backoff, 1 s timeout: a third would pass the 3 s budget
        Status.UNKNOWN,
        "OpenRouter unavailable after 2 attempts",
        min_s=2.0,
        max_s=3.6,
        extra={"last": "ReadTimeout, no answer within 1 s (CREDIT_HTTP_TIMEOUT_S)"},
    ),
    "an HTML page": Row(
        [body("<html><body>502 Bad Gateway</body></html>", "text/html")],
        {"/key": 1},
        Status.UNKNOWN,
        f"{MALFORMED}an HTML page: check OPENROUTER_BASE_URL if this persists",
    ),
    "an empty body": Row([body("")], {"/key": 1}, Status.UNKNOWN, f"{MALFORMED}an empty body"),
    "truncated JSON": Row(
        [body('{"data": {"usage": 1.5, "limit": nu')],
        {"/key": 1},
        Status.UNKNOWN,
        f"{MALFORMED}a body that is not JSON",
    ),
    "missing fields": Row(
        [data({"label": "sk-or-v1-abc...xyz"})],
        {"/key": 1},
        Status.UNKNOWN,
        f"{MALFORMED}a bad field data.usage (Field required)",
    ),
    "wrong types": Row(
        [data({"usage": "1.5", "limit": None})],
        {"/key": 1},
        Status.UNKNOWN,
        f"{MALFORMED}a bad field data.usage (Input should be a valid number)",
    ),
    "NaN": Row(
        [data({"usage": float("nan"), "limit": None})],
        {"/key": 1},
        Status.UNKNOWN,
        f"{MALFORMED}a non-finite number (NaN)",
    ),
    "Infinity": Row(
        [data({"total_credits": float("inf"), "total_usage": 1.0}, path="/credits")],
        CREDITS_FAILED,
        Status.UNKNOWN,
        "OpenRouter answered /credits with a non-finite number (Infinity)",
    ),
    "an overspent key (a negative limit_remaining)": Row(
        [data({"usage": 10.5, "limit": 10.0, "limit_remaining": -0.5})],
        OK_REQUESTS,
        Status.CRITICAL,
        alert="critical",
        remaining_usd=-0.5,
        source="key_limit",
    ),
    "an absurdly negative figure": Row(
        [data({"usage": -2e9, "limit": None})],
        {"/key": 1},
        Status.UNKNOWN,
        f"{MALFORMED}a bad field data.usage (Input should be greater than or equal to -1000000000)",
    ),
    "an absurd figure (1e308)": Row(
        [data({"total_credits": 1e308, "total_usage": 1.0}, path="/credits")],
        CREDITS_FAILED,
        Status.UNKNOWN,
        "OpenRouter answered /credits with a bad field data.total_credits "
        "(Input should be less than or equal to 1000000000)",
    ),
    "usage above credits (a negative balance)": Row(
        [data({"total_credits": 10.0, "total_usage": 12.5}, path="/credits")],
        OK_REQUESTS,
        Status.CRITICAL,
        alert="critical",
        remaining_usd=-2.5,
        source="account",
    ),
    "an unreadable /keys item": Row(
        [data([{"hash": "broken", "usage": "lots"}], path="/keys")],
        OK_REQUESTS,
        Status.OK,
        remaining_usd=50.0,
        source="account",
    ),
}
CLI_ROWS = [
    "400",
    "401 api key",
    "402 on /key",
    "404 on /key and /auth/key",
    "429 with a Retry-After past the budget",
    "503",
    "connection refused",
    "an HTML page",
    "NaN",
    "an absurd figure (1e308)",
]


def arm(sim: Simulator, row: Row) -> None:
    sim.set_account(total_credits=51.0, total_usage=1.0)  # $50 left: OK when nothing breaks
    for fault in row.faults:
        fault = dict(fault)
        sim.inject(fault.pop("kind"), **fault)


def base_url(sim: Simulator, row: Row) -> str:
    return f"http://127.0.0.1:{free_port()}/api/v1" if row.base_url == REFUSED else sim.base_url


@pytest.mark.parametrize("name", list(ROWS))
def test_each_fault_is_retried_recorded_and_alerted_as_the_table_says(
    sim: Simulator, redis_url: str, rdb: redis.Redis, name: str
) -> None:
    row = ROWS[name]
    arm(sim, row)
    settings = make_settings(sim, redis_url, openrouter_base_url=base_url(sim, row), **RETRY)
    store = Store.from_settings(settings)
    started = time.monotonic()
    with OpenRouterClient(settings) as client:
        result: CheckResult = run_check(settings, client, store)
    took_s = time.monotonic() - started
    store.close()

    assert sim.requests() == row.requests
    assert row.min_s <= took_s < row.max_s
    assert result.status is row.status
    assert result.exit_code == row.exit_code
    assert nagios_line(result, settings).startswith(f"CREDITS {row.status.value.upper()} - ")
    assert [a.type.value for a in result.alerts] == ([row.alert] if row.alert else [])
    assert rdb.llen("openrouter:alerts:list") == (1 if row.alert else 0)
    monitoring = rdb.hgetall("openrouter:monitoring:status")
    current = rdb.hgetall("openrouter:credits:current")
    if row.message is None:
        assert result.error is None
        assert monitoring["consecutive_failures"] == "0"
        assert monitoring["last_status"] == row.status.value
        assert current["status"] == row.status.value
        assert float(current["remaining_usd"]) == row.remaining_usd
        assert current["source"] == row.source
        assert rdb.xlen("openrouter:credits:timeline") == 1
    else:
        assert result.error is not None
        assert row.message in result.error
        assert row.extra.get("last", "") in result.error
        assert "\n" not in result.error
        assert monitoring["consecutive_failures"] == "1"
        assert monitoring["last_error"] == result.error
        # the first failure is not yet "unknown" unless the key was refused
        assert current.get("status") == ("unknown" if row.alert else None)
        assert rdb.xlen("openrouter:credits:timeline") == 0


@pytest.mark.parametrize("name", CLI_ROWS)
def test_the_cli_says_each_fault_in_one_line_and_exits_with_its_code(
    sim: Simulator, redis_server: str, redis_url: str, tmp_path: Path, name: str
) -> None:
    row = ROWS[name]
    arm(sim, row)
    env = service_env(sim, redis_server, **RETRY_ENV, OPENROUTER_BASE_URL=base_url(sim, row))
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == row.exit_code, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.startswith(f"CREDITS {row.status.value.upper()} - ")
    if row.message is None:
        assert done.stderr == ""
        assert f"alert {row.alert}: " in done.stdout
    else:
        [line] = done.stderr.splitlines()
        assert line.startswith("credit-monitor: ")
        assert row.message in line
    assert API_KEY not in done.stdout + done.stderr
    assert MANAGEMENT_KEY not in done.stdout + done.stderr
    assert sim.requests() == row.requests


def test_a_402_with_usage_known_is_critical_with_the_usage_kept(
    sim: Simulator, redis_url: str, rdb: redis.Redis
) -> None:
    sim.update_key(API_KEY, usage=12.5)
    sim.inject("status", status=402, path="/credits")
    settings = make_settings(sim, redis_url, **RETRY)
    store = Store.from_settings(settings)
    with OpenRouterClient(settings) as client:
        result = run_check(settings, client, store)
    assert result.status is Status.CRITICAL  # the money is gone: never "unknown"
    assert rdb.hget("openrouter:credits:current", "usage_usd") == "12.5"
    [alert] = result.alerts
    assert "$0.00 left" in alert.message and "402" in alert.message
