"""`make soak` (`python -m bench.soak`): a simulated day of a real deployment, under faults.

A worker and a beat (real Celery processes) check a simulated account every 5 simulated
minutes; time is compressed (by default 24 simulated hours in 30 real minutes, 48x), the
account spends $10 a simulated hour and is topped up by $40 below $3, so it crosses the
warning and critical lines and comes back about six times a day. Faults come at random: the
API's 5xx, 429, timeouts and malformed bodies; Redis restarted (with its append-only file, as
a production Redis keeps its data); the worker killed with SIGKILL, mid-alert when it can be.

What it shows, from its own records and none of the monitor's claims:
- every status change the checks recorded (the timeline, read as it grows) raised exactly one
  alert of its type, published once on the channel, and no other alert was published;
- after each fault, checks resume (the time to the next recorded check);
- the memory of Redis and of the worker (main and pool processes) stays bounded.

The table goes to stdout and the figures to `bench/soak.json`. `--minutes 3 --sim-hours 2` is
a short run of the same.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

from credit_tasks.procs import RedisServer, stop_process, wait_until
from credit_tasks.simulator import Simulator

from .common import API_KEY, BIN, MANAGEMENT_KEY, BenchError

OUT = Path(__file__).resolve().parent / "soak.json"
SIM_INTERVAL_MIN = 5.0  # a check every 5 simulated minutes
SPEND_USD_PER_SIM_HOUR = 10.0
START_USD = 12.0  # the first crossing comes soon; a top-up brings it to about $42
TOPUP_BELOW_USD, TOPUP_USD = 3.0, 40.0
RANK = {"ok": 0, "warning": 1, "critical": 2}
API_FAULTS = ("5xx", "429", "timeout", "malformed")
RESUME_LIMIT_S = 60.0  # checks must be back this soon after a fault ends
SERVICE_ENV = ("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_")


class People:
    """The people's channel (Apprise json://): it takes a second to answer each alert."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.delivering = threading.Event()
        people = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                people.posts.append(json.loads(body))
                people.delivering.set()
                time.sleep(1.0)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/people"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Fault:
    kind: str
    at_s: float  # since the start
    ended_s: float = 0.0
    resumed_s: float | None = None  # from its end to the next recorded check
    mid_alert: bool = False


@dataclass
class Run:
    """What the soak saw: the checks' statuses, the alerts published, faults, memory."""

    points: list[tuple[int, str]] = field(default_factory=list)  # (ms, status)
    published: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    memory: list[tuple[float, int, int]] = field(default_factory=list)  # (s, redis, worker)
    lock: threading.Lock = field(default_factory=threading.Lock)


def expected_alerts(points: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The alert each recorded status change must raise, as the rules say: worse -> its type,
    back to ok -> resolved, critical -> warning -> nothing."""
    due = []
    for (_, before), (ms, now) in itertools.pairwise(points):
        if now == "ok" and before != "ok":
            due.append((ms, "resolved"))
        elif RANK.get(now, 0) > RANK.get(before, 0):
            due.append((ms, now))
    return due


def rss_bytes(root: int) -> int:
    """Resident memory of `root` and every process under it."""
    total, todo, children = 0, [root], _children()
    while todo:
        pid = todo.pop()
        try:
            for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        todo += children.get(pid, [])
    return total


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(stat.parent.name))
    return out


class Soak:
    def __init__(self, minutes: float, sim_hours: float, seed: int, home: Path) -> None:
        self.minutes, self.sim_hours, self.home = minutes, sim_hours, home
        self.factor = sim_hours * 60 / minutes  # simulated seconds per real second
        self.interval_s = SIM_INTERVAL_MIN * 60 / self.factor
        # one fall from the top-up to the next: warning, critical and resolved come in it
        self.cycle_s = TOPUP_USD / SPEND_USD_PER_SIM_HOUR * 3600 / self.factor
        self.rng = random.Random(seed)
        self.run = Run()
        self.stopping = threading.Event()
        # a production Redis keeps its data: append-only, written at every command
        self.redis = RedisServer(
            home / "redis", "--appendonly", "yes", "--appendfsync", "always", new_session=True
        )
        self.sim = Simulator()
        self.people = People()
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.started = time.monotonic()
        self.elapsed_s = 0.0

    def since(self) -> float:
        return time.monotonic() - self.started

    # -- the deployment ---------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_ENV)}
        retention_days = 60 * self.interval_s / 86400  # 60 checks' worth: the stream stays small
        return env | {
            "OPENROUTER_API_KEY": API_KEY,
            "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY,
            "OPENROUTER_BASE_URL": self.sim.base_url,
            "REDIS_URL": self.redis.url(0),
            "CELERY_BROKER_URL": self.redis.url(1),
            "CELERY_RESULT_BACKEND": self.redis.url(1),
            "CREDIT_CHECK_INTERVAL_MINUTES": f"{self.interval_s / 60:.6f}",
            "CREDIT_ALERT_COOLDOWN_HOURS": "24",  # one alert per crossing: no repeats to count
            "CREDIT_RUNWAY_WARNING_HOURS": "0",
            "CREDIT_UNKNOWN_AFTER_FAILURES": "1000",  # API faults are counted, not alerted
            "CREDIT_RETRY_ATTEMPTS": "3",
            "CREDIT_RETRY_BUDGET_S": "4",
            "CREDIT_HTTP_TIMEOUT_S": "2",
            "CREDIT_VISIBILITY_TIMEOUT_S": "15",
            "CREDIT_HISTORY_RETENTION_DAYS": f"{retention_days:.8f}",
            "CREDIT_ALERT_URLS": self.people.url,
            "PYTHONUNBUFFERED": "1",
        }

    def _celery(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.home / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [str(BIN / "celery"), "-A", "credit_tasks", *args],
                env=self.env(),
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_worker(self) -> None:
        self.worker = self._celery(
            "worker",
            "worker",
            "--concurrency=2",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        )

    def start(self) -> None:
        # task results expire in 5 minutes here, as a deployment tunes them, so they level off
        (self.home / "celeryconfig.py").write_text("result_expires = 300\n")
        self.redis.start()
        self.sim.start()
        self.sim.set_account(total_credits=START_USD)
        self.sim.add_key(API_KEY, name="Soak")
        self.sim.add_key(MANAGEMENT_KEY, name="Soak management", management=True)
        self.sim.set_topup(below_usd=TOPUP_BELOW_USD, topup_usd=TOPUP_USD)
        self.start_worker()
        self.beat = self._celery(
            "beat", "beat", "--loglevel=INFO", f"--schedule={self.home / 'beat-schedule'}"
        )
        self.sim.set_spend(key=API_KEY, usd_per_hour=SPEND_USD_PER_SIM_HOUR * self.factor)
        for target in (self._follow_timeline, self._follow_channel, self._sample_memory):
            threading.Thread(target=target, daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        for proc in (self.beat, self.worker):
            if proc is not None:
                stop_process(proc, grace_s=10)
        self.redis.stop()
        self.sim.stop()
        self.people.stop()

    # -- what the soak watches --------------------------------------------------------------
    def _client(self) -> Any:
        return redis.Redis(port=self.redis.port, decode_responses=True, socket_timeout=5)

    def _follow_timeline(self) -> None:
        last = "0-0"
        while not self.stopping.is_set():
            try:
                client = self._client()
                while not self.stopping.is_set():
                    for _, entries in client.xread(
                        {"openrouter:credits:timeline": last}, block=1000
                    ):
                        for last, fields in entries:
                            with self.run.lock:
                                self.run.points.append((int(last.split("-")[0]), fields["s"]))
            except redis.RedisError:
                time.sleep(0.05)  # Redis restarting: follow again where we were

    def _follow_channel(self) -> None:
        while not self.stopping.is_set():
            try:
                pubsub = self._client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe("openrouter-alerts")
                while not self.stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        with self.run.lock:
                            self.run.published.append(json.loads(message["data"]))
            except redis.RedisError:
                time.sleep(0.05)  # back before any worker can publish again (it waits 2 s)

    def _sample_memory(self) -> None:
        client = self._client()
        while not self.stopping.wait(10.0):
            try:
                used = int(client.info("memory")["used_memory"])
            except redis.RedisError:
                continue
            worker = rss_bytes(self.worker.pid) if self.worker else 0
            self.run.memory.append((self.since(), used, worker))

    def recorded(self) -> int:
        with self.run.lock:
            return len(self.run.points)

    # -- faults -----------------------------------------------------------------------------
    def api_fault(self, kind: str) -> None:
        path = self.rng.choice(["/key", "/credits", "/keys"])
        times = self.rng.randint(1, 4)
        if kind == "5xx":
            self.sim.inject(
                "status", path=path, status=self.rng.choice([500, 502, 503]), times=times
            )
        elif kind == "429":
            self.sim.inject("status", path=path, status=429, retry_after=1, times=times)
        elif kind == "timeout":
            self.sim.inject("hang", path=path, delay_s=3.0, times=times)
        else:
            body = self.rng.choice(['{"data": {"usage": "lots"', "<html>502</html>", ""])
            self.sim.inject("body", path=path, body=body, times=times)

    def restart_redis(self) -> None:
        self.redis.stop()  # SIGTERM: it writes its data out, as a service manager would
        self.redis.start()

    def kill_worker(self) -> bool:
        """SIGKILL to the worker's whole group, while it delivers an alert if one comes soon
        (the people's channel answers slowly, so a delivery lasts a second); then a new one."""
        assert self.worker is not None
        self.people.delivering.clear()
        mid = self.people.delivering.wait(self.cycle_s)
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()
        self.start_worker()
        return mid

    def fault(self, kind: str) -> None:
        fault = Fault(kind, self.since())
        if kind == "redis restart":
            self.restart_redis()
        elif kind == "worker SIGKILL":
            fault.mid_alert = self.kill_worker()
        else:
            self.api_fault(kind)
        fault.ended_s = self.since()
        before = self.recorded()
        try:
            wait_until(lambda: self.recorded() > before, RESUME_LIMIT_S, "a check")
            fault.resumed_s = self.since() - fault.ended_s
        except TimeoutError:
            fault.resumed_s = None
        self.run.faults.append(fault)
        print(
            f"{fault.at_s:7.1f} s  {kind:<15} checks back after "
            + (f"{fault.resumed_s:.1f} s" if fault.resumed_s is not None else "NEVER")
            + ("  (mid-alert)" if fault.mid_alert else ""),
            flush=True,
        )

    def schedule(self) -> list[tuple[float, str]]:
        """Faults at random moments: API faults every 20-60 s, and two Redis restarts and two
        worker kills spread over the run."""
        total_s = self.minutes * 60
        plan = [(total_s * f, "redis restart") for f in (0.3, 0.75)]
        plan += [(total_s * f, "worker SIGKILL") for f in (0.4, 0.8)]
        at = 30.0
        while at < total_s - 30:
            plan.append((at, self.rng.choice(API_FAULTS)))
            at += self.rng.uniform(20, 60)
        return sorted(plan)

    def go(self) -> None:
        wait_until(lambda: self.recorded() >= 1, 60, "the first check")
        for at, kind in self.schedule():
            while self.since() < at:
                time.sleep(0.2)
            self.fault(kind)
        while self.since() < self.minutes * 60:
            time.sleep(0.5)
        time.sleep(3 * self.interval_s)  # the last alerts on their way
        self.elapsed_s = self.since()
        self.stopping.set()


def verdict(soak: Soak) -> dict[str, Any]:
    run = soak.run
    with run.lock:
        points, published = list(run.points), list(run.published)
    due = expected_alerts(points)
    ids = [a["id"] for a in published]
    by_check: dict[tuple[int, str], int] = {}
    for alert in published:
        ms = int(datetime.fromisoformat(alert["timestamp"]).timestamp() * 1000)
        by_check[(ms, alert["type"])] = by_check.get((ms, alert["type"]), 0) + 1
    lost = [d for d in due if by_check.get(d, 0) == 0]
    doubled = [d for d in due if by_check.get(d, 0) > 1]
    unexpected = [k for k in by_check if k not in set(due)]
    third = max(1, len(run.memory) // 3)
    first, last = run.memory[:third], run.memory[-third:]
    memory = {
        "redis_first_third_max_mb": round(max(m[1] for m in first) / 2**20, 2),
        "redis_last_third_max_mb": round(max(m[1] for m in last) / 2**20, 2),
        "worker_first_third_max_mb": round(max(m[2] for m in first) / 2**20, 1),
        "worker_last_third_max_mb": round(max(m[2] for m in last) / 2**20, 1),
    }
    kinds: dict[str, list[Fault]] = {}
    for fault in run.faults:
        kinds.setdefault(fault.kind, []).append(fault)
    return {
        "minutes": soak.minutes,
        "factor": round(soak.factor, 2),
        "interval_s": round(soak.interval_s, 3),
        "sim_hours": round(soak.elapsed_s * soak.factor / 3600, 1),
        "intervals": int(soak.elapsed_s / soak.interval_s),
        "checks": len(points),
        "crossings": len(due),
        "by_type": {
            t: sum(1 for _, k in due if k == t) for t in ("warning", "critical", "resolved")
        },
        "published": len(published),
        "published_ids_unique": len(set(ids)) == len(ids),
        "people_posts": len(soak.people.posts),
        "lost": lost,
        "doubled": doubled,
        "unexpected": unexpected,
        "faults": {
            kind: {
                "count": len(faults),
                "resumed_max_s": max(
                    (f.resumed_s for f in faults if f.resumed_s is not None), default=None
                ),
                "never_resumed": sum(1 for f in faults if f.resumed_s is None),
                "mid_alert": sum(1 for f in faults if f.mid_alert),
            }
            for kind, faults in sorted(kinds.items())
        },
        "memory": memory,
        "bounded": memory["redis_last_third_max_mb"] <= 1.5 * memory["redis_first_third_max_mb"] + 2
        and memory["worker_last_third_max_mb"] <= 1.5 * memory["worker_first_third_max_mb"] + 20,
    }


def render(v: dict[str, Any]) -> str:
    lines = [
        f"{v['minutes']:g} min real = {v['sim_hours']:g} simulated hours ({v['factor']:g}x): "
        f"{v['intervals']} check intervals of {v['interval_s']:g} s, {v['checks']} checks "
        "recorded (the others failed under the faults, or were skipped)",
        f"crossings recorded: {v['crossings']} {v['by_type']}; alerts published: "
        f"{v['published']}; lost {len(v['lost'])}, doubled {len(v['doubled'])}, "
        f"unexpected {len(v['unexpected'])}; the people's channel (Apprise) got "
        f"{v['people_posts']} posts",
        "",
        "| fault | count | checks back after (max) | never back | mid-alert |",
        "|---|---|---|---|---|",
    ]
    for kind, f in v["faults"].items():
        back = "-" if f["resumed_max_s"] is None else f"{f['resumed_max_s']:.1f} s"
        lines.append(
            f"| {kind} | {f['count']} | {back} | {f['never_resumed']} | {f['mid_alert']} |"
        )
    m = v["memory"]
    lines += [
        "",
        f"Redis used_memory, max of the first / last third: {m['redis_first_third_max_mb']} / "
        f"{m['redis_last_third_max_mb']} MB; worker RSS (main and pool): "
        f"{m['worker_first_third_max_mb']} / {m['worker_last_third_max_mb']} MB; "
        f"bounded: {v['bounded']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="real minutes to run")
    parser.add_argument("--sim-hours", type=float, default=24.0, help="simulated hours in them")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="credit-soak-") as home:
        soak = Soak(args.minutes, args.sim_hours, args.seed, Path(home))
        try:
            soak.start()
            soak.go()
        except (BenchError, TimeoutError, RuntimeError) as exc:
            print(f"soak: {exc}", file=sys.stderr)
            return 1
        finally:
            soak.stop()
        result = verdict(soak)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    ok = not (result["lost"] or result["doubled"] or result["unexpected"])
    ok = ok and result["published_ids_unique"] and result["bounded"]
    ok = ok and all(f["never_resumed"] == 0 for f in result["faults"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
