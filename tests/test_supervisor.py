"""The supervisor: children in their own process groups, stopped for sure, and safe signals."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from credit_tasks.errors import StartError
from credit_tasks.simulator import Simulator
from credit_tasks.supervisor import STOP_SIGNALS, Supervisor

from .conftest import BIN, service_env, wait_for
from .test_demo import alive, in_groups


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


def test_a_worker_whose_check_hangs_on_the_api_stops_within_5_s(
    sup: Supervisor, sim: Simulator, own_redis: Any, tmp_path: Path, redis_server: str
) -> None:
    """The 31 s warm shutdown: a worker waits for its tasks, and a check retrying a hung API
    runs for its whole retry budget. Stopped as a group, its pool has nothing left to run."""
    server = own_redis()
    env = service_env(
        sim,
        redis_server,
        REDIS_URL=server.url(0),
        CELERY_BROKER_URL=server.url(1),
        CELERY_RESULT_BACKEND=server.url(1),
        CREDIT_RETRY_BUDGET_S="30",
        CREDIT_HTTP_TIMEOUT_S="10",
    )
    sim.inject("hang", path="/key", times=10, delay_s=60)
    argv = [str(BIN / "celery"), "-A", "credit_tasks", "worker", "--concurrency=2"]
    argv += ["--loglevel=INFO", "--without-gossip", "--without-mingle"]
    worker = sup.start("worker", argv, env, tmp_path)
    sup.wait_ready(worker, lambda: "ready." in worker.log.read_text())
    app = Celery("test-stop", broker=server.url(1), set_as_current=False)
    try:
        app.send_task("credit_tasks.check_credits")
        app.send_task("credit_tasks.check_credits")  # a second one, prefetched
    finally:
        app.close()
    wait_for(lambda: sim.requests().get("/key"), 10, "the check to hang on /key")
    group = in_groups({worker.proc.pid})
    assert len(group) >= 3  # the worker and its pool
    started = time.monotonic()
    sup.stop()
    stopped_s = time.monotonic() - started
    wait_for(lambda: not in_groups({worker.proc.pid}), 2, "the pool to be gone")
    print(f"a worker with a check hung on the API stopped in {stopped_s:.2f} s")
    assert stopped_s < 5, stopped_s
    assert "killing it" not in worker.log.read_text()  # SIGTERM was enough
    lock = redis.Redis.from_url(server.url(0)).pttl("openrouter:monitoring:lock")
    assert lock <= 10_000  # the stopped check's lock lapses in seconds, not a retry budget


def test_a_child_dies_with_a_supervisor_killed_by_sigkill(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: the kernel kills each child when the supervisor dies, however."""
    script = f"""
import sys, time
from pathlib import Path
from credit_tasks.supervisor import Supervisor
sup = Supervisor(Path({str(tmp_path)!r}) / "logs")
for name in ("a", "b"):
    sup.start(name, ["sleep", "600"], {{"PATH": "/usr/bin:/bin"}}, Path({str(tmp_path)!r}))
print(" ".join(str(c.proc.pid) for c in sup.children), flush=True)
time.sleep(600)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    children = [int(pid) for pid in proc.stdout.readline().split()]
    assert len(children) == 2 and all(alive(pid) for pid in children)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    wait_for(lambda: not any(alive(pid) for pid in children), 5, "the children to die with it")


def test_a_supervisor_whose_parent_shell_dies_of_sigterm_stops_within_5_s(tmp_path: Path) -> None:
    """`make demo` runs the demo under `sh -c`; SIGTERM to make reaches only that shell."""
    script = f"""
import time
from pathlib import Path
from credit_tasks.supervisor import Supervisor
sup = Supervisor(Path({str(tmp_path)!r}) / "logs", grace_s=0.5)
sup.handle_signals()
sup.stop_when_parent_dies()
child = sup.start("a", ["sleep", "600"], {{"PATH": "/usr/bin:/bin"}}, Path({str(tmp_path)!r}))
print(child.proc.pid, flush=True)
while not sup.stop_requested:
    time.sleep(0.05)
sup.stop()
Path({str(tmp_path / "stopped")!r}).write_text("yes")
"""
    # `; true` keeps the shell alive between us and the supervisor, as make's recipe does
    shell = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -c "$0"; true', script],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert shell.stdout is not None
    try:
        child = int(shell.stdout.readline())
        assert alive(child)
        shell.send_signal(signal.SIGTERM)  # the shell alone, as make passes it on
        shell.wait(5)
        started = time.monotonic()
        wait_for(lambda: (tmp_path / "stopped").exists(), 5, "the supervisor to stop")
        wait_for(lambda: not alive(child), 1, "its child to be gone")
        print(f"the supervisor stopped {time.monotonic() - started:.2f} s after its shell died")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # the supervisor, if it outlived the test
        shell.stdout.close()
