"""The supervisor: children in their own process groups, stopped for sure, and safe signals."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from credit_tasks.errors import StartError
from credit_tasks.supervisor import STOP_SIGNALS, Supervisor

from .conftest import wait_for
from .test_demo import alive


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    supervisor = Supervisor(tmp_path / "logs", grace_s=0.5)
    yield supervisor
    supervisor.stop()
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_a_stop_signal_sets_a_flag_and_takes_no_lock(sup: Supervisor) -> None:
    """A lock taken in a handler deadlocks when a second signal lands inside it."""
    sup.handle_signals()
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    called: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        if event == "c_call":
            called.append(repr(arg))

    sys.setprofile(profile)
    try:
        handler(signal.SIGTERM, None)
    finally:
        sys.setprofile(None)
    assert sup.stop_requested
    assert [c for c in called if "lock" in c.lower()] == []


def test_a_signal_asks_for_a_stop_instead_of_ending_the_process(sup: Supervisor) -> None:
    sup.handle_signals()
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGTERM)
    assert sup.stop_requested


def test_a_child_that_ignores_sigterm_is_killed_with_its_group_after_the_grace(
    sup: Supervisor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pids = tmp_path / "pids"
    script = f'trap "" TERM; sleep 60 & echo $$ $! > {pids}; wait'
    child = sup.start("stubborn", ["sh", "-c", script], {"PATH": "/usr/bin:/bin"}, tmp_path)
    sup.wait_ready(child, lambda: pids.exists() and pids.read_text().endswith("\n"))
    shell, sleeper = (int(pid) for pid in pids.read_text().split())
    sup.stop()
    assert not alive(shell)
    wait_for(lambda: not alive(sleeper), 5, "the SIGKILL to reach the group")
    out = capsys.readouterr().out
    assert "stubborn ignored SIGTERM for 0.5 s: killing it" in out
    assert out.endswith("Stopped: nothing started here is left running.\n")


def test_a_child_that_exits_at_start_names_its_log(sup: Supervisor, tmp_path: Path) -> None:
    child = sup.start("broken", ["sh", "-c", "echo no config >&2; exit 4"], {}, tmp_path)
    with pytest.raises(StartError, match=r"broken exited at start \(code 4\): see .*broken.log"):
        sup.wait_ready(child, lambda: False)
    assert child.log.read_text() == "no config\n"
    assert sup.dead() is child


def test_waiting_for_a_child_ends_when_a_stop_is_asked(sup: Supervisor, tmp_path: Path) -> None:
    child = sup.start("sleeper", ["sleep", "60"], {}, tmp_path)
    sup.stop_requested = True
    with pytest.raises(KeyboardInterrupt):
        sup.wait_ready(child, lambda: False)
    assert sup.dead() is None
