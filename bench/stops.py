"""`python -m bench.stops`: stop `credit-monitor demo` at random moments and time each stop.

Each run starts the demo (at `--pace 5`, as `make demo ARGS=...` would, or through `make` itself
with `--make`), waits for a moment, sends one signal, and times how long until every process
it started is gone: the supervisor, Redis, the worker with its pool and beat, and Flower. The
moments are drawn at random from three kinds: any time after start-up, the instant a check
line says warning (its alert is being delivered), and a second after the first alert. The
signal goes to the supervisor alone or to its whole process group (as a terminal's Ctrl-C,
a service manager or `kill -TERM -- -PGID` would), and is SIGINT, SIGTERM or SIGHUP.

Through `make`, SIGINT and SIGHUP go to the group: that is how a terminal sends them (Ctrl-C,
a closed window), and GNU make passes on to its child only SIGTERM, so either sent to make's
pid alone would stop nothing until the demo ends by itself.

The figures go to stdout as a table and, with `--out`, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from credit_tasks.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SIGNALS = {"INT": signal.SIGINT, "TERM": signal.SIGTERM, "HUP": signal.SIGHUP}
MOMENTS = ("random", "mid-alert", "after-alert")
LIMIT_S = 5.0  # the promise: everything gone within this after the signal
SERVICE_ENV = ("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_", "FLOWER_")


@dataclass
class Stop:
    run: int
    moment: str
    signal: str
    to_group: bool
    via_make: bool
    waited_s: float  # from the moment's event to the signal
    stopped_s: float  # from the signal to the last process gone
    processes: int  # how many were running when the signal went
    left: list[str]  # what was still running after the wait (should be empty)
    exit_code: int | None


def tree(root: int) -> dict[int, str]:
    """`root` and every live process under it, with its command line."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            found[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode()
        except OSError:
            continue
        todo += parents.get(pid, [])
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def one_stop(run: int, moment: str, signame: str, to_group: bool, via_make: bool) -> Stop:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_ENV)}
    flower = free_port()
    args = ["--pace", "5", "--flower-port", str(flower)]
    with tempfile.TemporaryDirectory(prefix="credit-stop-") as home:
        if via_make:
            # its state goes to the project's .demo/, as `make demo` puts it
            argv = ["make", "-s", "-C", str(ROOT), "demo", f"ARGS={' '.join(args)}"]
        else:
            argv = [str(BIN / "credit-monitor"), "demo", *args]
        proc = subprocess.Popen(
            argv,
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group, as a terminal gives a job
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()

        def seen(text: str) -> bool:
            return any(text in line for line in lines)

        deadline = time.monotonic() + 120
        while not seen("Ctrl-C stops everything") and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the demo exited at start:\n" + "".join(lines))
            time.sleep(0.02)
        event, delay = {
            "random": ("Ctrl-C stops everything", random.uniform(0, 40)),
            "mid-alert": ("check  warning", 0.0),
            "after-alert": ("ALERT", 1.0),
        }[moment]
        while not seen(event) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        before = tree(proc.pid)
        sent = time.monotonic()
        if to_group:
            os.killpg(proc.pid, SIGNALS[signame])
        else:
            proc.send_signal(SIGNALS[signame])
        while any(alive(pid) for pid in before) and time.monotonic() - sent < 60:
            time.sleep(0.01)
        stopped = time.monotonic() - sent
        left = [cmd.replace("\0", " ")[:80] for pid, cmd in before.items() if alive(pid)]
        for pid in before:  # never leave one behind, whatever happened
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        reader.join(5)
    return Stop(run, moment, signame, to_group, via_make, delay, stopped, len(before), left, code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stops", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--make", action="store_true", help="start every other demo through `make demo`"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the stops as JSON")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    random.seed(args.seed)
    stops: list[Stop] = []
    for run in range(1, args.runs + 1):
        moment = MOMENTS[(run - 1) % len(MOMENTS)]
        via_make = args.make and run % 2 == 0
        signame, to_group = rng.choice(list(SIGNALS)), rng.random() < 0.5
        to_group = to_group or (via_make and signame != "TERM")
        stop = one_stop(run, moment, signame, to_group, via_make)
        stops.append(stop)
        target = "group" if stop.to_group else "supervisor"
        print(
            f"{run:>2}  {'make demo' if via_make else 'demo':<9} {moment:<11} "
            f"SIG{stop.signal:<4} to the {target:<10} "
            f"after {stop.waited_s:5.1f} s: {stop.processes} processes gone in "
            f"{stop.stopped_s:.2f} s" + (f"  LEFT: {stop.left}" if stop.left else ""),
            flush=True,
        )
    times = [s.stopped_s for s in stops]
    over = [s for s in stops if s.stopped_s > LIMIT_S or s.left]
    print(
        f"\n{len(stops)} stops: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s; over {LIMIT_S:g} s or leaving a process: {len(over)}"
    )
    if args.out:
        args.out.write_text(json.dumps([asdict(s) for s in stops], indent=2) + "\n")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
