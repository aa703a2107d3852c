"""The demo's terminal lines: one per check on the timeline, one per alert on the channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis

from credit_tasks import timeline
from credit_tasks.errors import StoreError
from credit_tasks.history import Point
from credit_tasks.keyspace import Keyspace
from credit_tasks.liveview import LiveView, alert_line, check_line
from credit_tasks.procs import free_port

AT = datetime(2025, 1, 1, 12, 0, 5, tzinfo=UTC)
LOCAL = AT.astimezone().strftime("%H:%M:%S")


def test_a_check_reads_as_balance_usage_and_source() -> None:
    line = check_line(Point(AT, 9.95, 2.55, "warning", "key_limit"), previous_usd=10.0)
    assert line == f"{LOCAL}  check  warning   $9.95 left, $2.55 used (key limit)"


def test_a_rise_of_the_balance_reads_as_a_top_up() -> None:
    line = check_line(Point(AT, 23.5, 0.5, "ok", "account"), previous_usd=3.5)
    assert line.endswith("$23.50 left, $0.50 used (account)  ↑ $20.00: a top-up")


def test_a_check_without_a_balance_says_so() -> None:
    line = check_line(Point(AT, None, None, "", ""), previous_usd=None)
    assert line == f"{LOCAL}  check  ?         balance unknown"


def test_an_alert_about_a_key_names_it() -> None:
    line = alert_line({"type": "critical", "subject": "key:ab12", "message": "Key is low"})
    assert line.endswith("  ALERT  critical  [key:ab12] Key is low")


def test_the_view_shows_what_happens_after_it_opened_not_before(
    redis_url: str, rdb: redis.Redis
) -> None:
    keys = Keyspace("openrouter")
    rdb.xadd(keys.timeline, timeline.encode(50.0, 0.0, "ok", "account"), id="1000-0")
    view = LiveView(redis_url, keys)
    try:
        assert list(view.lines(block_ms=10)) == []
        rdb.xadd(keys.timeline, timeline.encode(9.5, 1.0, "warning", "account"), id="2000-0")
        rdb.xadd(keys.timeline, timeline.encode(29.5, 1.0, "ok", "account"), id="3000-0")
        rdb.publish(keys.channel, json.dumps({"type": "warning", "message": "low"}))
        lines = list(view.lines(block_ms=100))
    finally:
        view.close()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "check  warning   $9.50 left, $1.00 used (account)",
        "check  ok        $29.50 left, $1.00 used (account)  ↑ $20.00: a top-up",
        "ALERT  warning   low",
    ]


def test_a_redis_that_does_not_answer_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="Connection refused"):
        LiveView(f"redis://127.0.0.1:{free_port()}/0", Keyspace("openrouter"))
