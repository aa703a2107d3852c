"""`credit-monitor demo` and `run` end to end: what they show, and what they leave behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from credit_tasks.simulator import DEFAULT_API_KEY, DEFAULT_MANAGEMENT_KEY
from credit_tasks.stack import parse_duration

from .conftest import BIN, ROOT, free_port, wait_for

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_", "FLOWER_"))
}


def descendants(pid: int) -> dict[int, str]:
    """Every live process under `pid`, with its command line."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: dict[int, str] = {}
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().decode()
        except OSError:
            continue
        todo += parents.get(child, [])
    return found


def in_groups(pgids: set[int]) -> list[int]:
    """Live processes in any of these process groups, wherever they were reparented."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgid = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if int(pgid) in pgids and state != "Z":
            found.append(int(stat.parent.name))
    return found


def published(pubsub: object) -> list[dict[str, object]]:
    """The messages the channel has brought since the last call."""
    out = []
    while (message := pubsub.get_message(timeout=0.1)) is not None:  # type: ignore[attr-defined]
        out.append(json.loads(message["data"]))
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping is left


@pytest.mark.parametrize(("text", "seconds"), [("40s", 40), ("40", 40), ("1.5m", 90), ("2h", 7200)])
def test_durations_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_the_demo_shows_checks_and_alerts_and_ctrl_c_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    flower_port = free_port()
    # at pace 5 the loop starts 38 s in: its spike is alerted within about 10 s
    argv = ["demo", "--for", "65s", "--pace", "5", "--flower-port", str(flower_port)]
    proc = subprocess.Popen(
        [str(BIN / "credit-monitor"), *argv],
        cwd=tmp_path,
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    started: dict[int, str] = {}
    try:
        status = wait_for(
            lambda: (
                next((line for line in lines if " status" in line), None) or proc.poll() is not None
            ),
            30,
            "the demo to say where to look",
        )
        assert proc.poll() is None, "".join(lines)
        redis_url = re.search(r"REDIS_URL=(\S+)", status)[1]  # type: ignore[index]
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("openrouter-alerts")
        message = wait_for(lambda: pubsub.get_message(timeout=0.5), 45, "an alert on the channel")
        alert = json.loads(message["data"])
        assert alert["type"] == "warning"
        spike = wait_for(
            lambda: next((m for m in published(pubsub) if m["type"] == "spike"), None),
            45,
            "the looping key's spike on the channel",
        )
        assert spike["top_keys"][0]["name"] == "batch-agent"
        wait_for(lambda: any("ALERT  spike" in line for line in lines), 10, "the spike's line")

        page_line = next(line for line in lines if " page " in line)
        page_url = re.search(r"(http://127\.0\.0\.1:\d+/)", page_line)[1]  # type: ignore[index]
        page = httpx.get(page_url, timeout=5)
        assert page.status_code == 200 and 'class="balance"' in page.text
        assert "OpenRouter credits are low" in page.text  # the warning, listed on the page
        assert httpx.get(page_url + "healthz", timeout=5).status_code == 200

        flower_line = next(line for line in lines if "Flower" in line)
        password = re.search(r"password (\S+)\)", flower_line)[1]  # type: ignore[index]
        flower = f"http://127.0.0.1:{flower_port}/api/workers"
        assert httpx.get(flower, timeout=5).status_code == 401
        assert httpx.get(flower, auth=("admin", password), timeout=5).status_code == 200

        started = descendants(proc.pid)
        for name in ("redis-server", "worker --beat", "flower", "credit_tasks serve"):
            assert any(name in cmd.replace("\0", " ") for cmd in started.values()), started
        pubsub.close()
        client.close()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:  # an assertion failed above: still stop it as Ctrl-C would
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    reader.join(5)
    assert proc.stdout is not None
    proc.stdout.close()
    output = "".join(lines)
    assert [pid for pid in started if alive(pid)] == []
    assert re.search(r"check  ok +\$\d+\.\d\d left", output)
    assert "ALERT  warning   OpenRouter credits are low" in output
    assert re.search(
        r"ALERT  spike     \[account:spike\] OpenRouter spend spike: \$[\d.]+ in the last 12 s, "
        r"[\d.]+× the usual \$900\.00/h; most of it from key 'batch-agent' \(\$[\d.]+\)\.",
        output,
    ), output
    assert "nothing started here is left running" in output
    assert "Traceback" not in output
    assert DEFAULT_API_KEY not in output and DEFAULT_MANAGEMENT_KEY not in output
    assert (tmp_path / ".demo" / "logs" / "worker.log").stat().st_size > 0


def test_run_without_a_key_says_so_in_one_line_and_points_to_the_demo(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "credit-monitor"), "run"],
        cwd=tmp_path,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "OPENROUTER_API_KEY is not set" in done.stderr and "make demo" in done.stderr
    assert not (tmp_path / ".run").exists()


def test_make_run_without_a_key_prints_our_one_line_and_no_error_line_of_make() -> None:
    stamp, project = ROOT / ".venv" / ".installed", ROOT / "pyproject.toml"
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not stamp.exists() or stamp.stat().st_mtime < project.stat().st_mtime:
        pytest.skip("the project's .venv is not set up: make would install it first")
    if (ROOT / ".env").exists():
        pytest.skip("a .env in the project root may hold a key: make run would start")
    env = {k: v for k, v in CLEAN_ENV.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == ""
    assert done.stderr.startswith("credit-monitor: OPENROUTER_API_KEY is not set")
    assert done.stderr.count("\n") == 1, done.stderr  # no "make: *** [run] Error 3"
    assert done.returncode == 0


def test_the_demo_refuses_a_busy_flower_port_in_one_line_before_starting_anything(
    tmp_path: Path,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "credit-monitor"), "demo", "--flower-port", str(port)],
            cwd=tmp_path,
            env=CLEAN_ENV,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 3
    assert done.stderr == (
        f"credit-monitor: port {port} is busy (another Flower or demo?): stop it, "
        "or pass --flower-port PORT\n"
    )
    assert not (tmp_path / ".demo").exists()


def test_signals_in_quick_succession_still_stop_everything(tmp_path: Path) -> None:
    """`make demo` stopped by SIGTERM to its group gets it twice; Ctrl-C may be mashed."""
    argv = ["demo", "--for", "120s", "--pace", "5", "--flower-port", str(free_port())]
    proc = subprocess.Popen(
        [str(BIN / "credit-monitor"), *argv],
        cwd=tmp_path,
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    started: dict[int, str] = {}
    try:
        wait_for(
            lambda: any(" status" in line for line in lines) or proc.poll() is not None,
            30,
            "the demo to say where to look",
        )
        assert proc.poll() is None, "".join(lines)
        started = descendants(proc.pid)
        assert len(started) >= 3, started
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        # then a storm: each signal may land inside the handler of the one before
        end = time.monotonic() + 0.3
        while time.monotonic() < end and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        # every child leads a group of its own, with the pool processes forked since
        wait_for(lambda: not in_groups(set(started)), 5, "every process started to be gone")
    finally:
        if proc.poll() is None:  # hung: stop it and whatever it started, by force
            proc.kill()
            proc.wait()
        for pid in in_groups(set(started)):
            os.kill(pid, signal.SIGKILL)
    reader.join(5)
    assert proc.stdout is not None
    proc.stdout.close()
    output = "".join(lines)
    assert "nothing started here is left running" in output
    assert "Traceback" not in output


@contextlib.contextmanager
def running_demo(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`credit-monitor demo` in a process group of its own, as a shell runs a job."""
    argv = ["demo", "--pace", "5", "--flower-port", str(free_port()), *args]
    proc = subprocess.Popen(
        [str(BIN / "credit-monitor"), *argv],
        cwd=tmp_path,
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()


def gone_within(pids: dict[int, str], limit_s: float) -> float:
    """Seconds until every one of `pids` is gone; fails past `limit_s`, killing what is left."""
    started = time.monotonic()
    try:
        wait_for(lambda: not any(alive(pid) for pid in pids), limit_s, "every process to stop")
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    return time.monotonic() - started


def test_sigterm_to_the_demos_group_mid_alert_stops_everything_within_5_s(
    tmp_path: Path,
) -> None:
    with running_demo(tmp_path, "--for", "120s") as (proc, lines):
        # the check that crosses the line: its alert is on its way through send_alert
        wait_for(lambda: any("check  warning" in line for line in lines), 60, "the warning")
        started = descendants(proc.pid) | {proc.pid: "credit-monitor demo"}
        assert len(started) >= 7, started  # Redis, worker, 2 pool processes, beat, Flower
        os.killpg(proc.pid, signal.SIGTERM)
        stopped_s = gone_within(started, 5)
        assert proc.wait(timeout=5) == 0
    assert "nothing started here is left running" in "".join(lines)
    print(f"the demo stopped in {stopped_s:.2f} s")


def test_no_process_of_the_demo_outlives_it_even_when_it_is_killed_with_sigkill(
    tmp_path: Path,
) -> None:
    with running_demo(tmp_path, "--for", "120s") as (proc, lines):
        wait_for(lambda: any("check  ok" in line for line in lines), 60, "a first check")
        started = descendants(proc.pid)
        assert len(started) >= 6, started
        proc.kill()  # no handler runs, no cleanup: only the kernel can stop the children
        proc.wait()
        gone_s = gone_within(started, 5)
    print(f"the demo's {len(started)} processes were gone {gone_s:.2f} s after its SIGKILL")
