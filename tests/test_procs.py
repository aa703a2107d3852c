"""Processes of our own: ports, waiting, and a private redis-server that keeps its port."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import redis

from credit_tasks.procs import RedisServer, free_port, listening, port_free, wait_until


def test_waiting_returns_what_the_condition_returned() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) >= 2 and "ready", 5, "the third call") == "ready"


def test_waiting_too_long_says_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match=r"after 0.1 s waiting for the moon"):
        wait_until(lambda: False, 0.1, "the moon")


def test_a_free_port_is_free_until_a_server_listens_on_it(tmp_path: Path) -> None:
    port = free_port()
    assert port_free(port) and not listening(port)
    with RedisServer(tmp_path, port=port) as server:
        assert listening(port) and not port_free(port)
        assert server.url(3) == f"redis://127.0.0.1:{port}/3"


def test_a_restarted_server_answers_on_the_same_port_with_its_extra_args(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--requirepass", "pw").start()
    try:
        server.stop()
        assert not listening(server.port)
        server.start()
        client = redis.Redis(port=server.port, password="pw")
        assert client.ping()
        client.close()
    finally:
        server.stop()


def test_a_server_that_exits_at_start_says_so_and_where_its_log_is(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"redis-server --no-such-option 1 exited at start"):
        RedisServer(tmp_path, "--no-such-option", "1").start()
    assert (tmp_path / "redis-server.log").stat().st_size > 0
