"""The whole system from one command: `credit-monitor demo` and `credit-monitor run`.

Both start what is missing (a private redis-server unless REDIS_URL is given), a worker with
beat and task events, and Flower behind basic auth; `demo` adds the OpenRouter simulator
spending at a visible pace. The terminal shows one line per check (tailing the timeline
stream) and per alert (the channel), the Celery logs go to files, and Ctrl-C, SIGTERM or the
end of `--for` stops every process started here, each in its own process group.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from . import procs, timeline
from .errors import ConfigError
from .history import Point
from .keyspace import Keyspace
from .settings import Settings, load_settings, redact_url
from .simulator import DEFAULT_API_KEY, DEFAULT_MANAGEMENT_KEY, Simulator
from .text import money

DEMO_REDIS_PORT = 6390  # not 6379, so a system Redis is never touched
RUN_REDIS_PORT = 6399  # the project-local Redis of `make run`, data kept in .redis/
FLOWER_PORT = 5555
GRACE_S = 10.0  # SIGTERM, then SIGKILL to the whole process group after this
DEMO_INTERVAL_S = 12.0
DEMO_START_USD = 12.5
DEMO_SPEND_USD_PER_HOUR = 180.0
DEMO_TOPUP_BELOW_USD = 4.0
DEMO_TOPUP_USD = 20.0
_SERVICE_ENV = ("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_", "FLOWER_")


def say(line: str = "") -> None:
    try:
        print(line, flush=True)
    except OSError:
        # a closed terminal or pipe (`make demo | tee`, then Ctrl-C) must not stop the cleanup
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)


def parse_duration(text: str) -> float:
    """Seconds in `40s`, `3m`, `1h` or a bare number of seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"DURATION must look like 40s, 3m or 1h, not {text!r}")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def check_line(point: Point, previous_usd: float | None) -> str:
    """`12:00:05  check  warning   $9.95 left, $2.55 used (account)` for one timeline entry."""
    when = point.timestamp.astimezone().strftime("%H:%M:%S")
    remaining = point.remaining_usd
    text = "balance unknown" if remaining is None else f"{money(remaining)} left"
    if point.usage_usd is not None:
        text += f", {money(point.usage_usd)} used"
    if point.source:
        text += f" ({point.source.replace('_', ' ')})"
    if remaining is not None and previous_usd is not None and remaining > previous_usd + 0.01:
        text += f"  ↑ {money(remaining - previous_usd)}: a top-up"
    return f"{when}  check  {point.status or '?':<9} {text}"


def alert_line(alert: dict[str, Any]) -> str:
    """`12:00:05  ALERT  warning   OpenRouter credits are low: …` for one channel message."""
    subject = alert.get("subject")
    about = "" if subject in (None, "account") else f"[{subject}] "
    when = datetime.now().strftime("%H:%M:%S")
    return f"{when}  ALERT  {alert.get('type', '?'):<9} {about}{alert.get('message', '')}"


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Stack:
    """The processes started by one `demo` or `run`, and their shutdown."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.cleanups: list[Callable[[], None]] = []  # in-process services, stopped last

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Child:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            # its own session: Ctrl-C reaches only us, and we stop the whole group
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def wait_until(self, ready: Callable[[], bool], child: Child, timeout_s: float = 30) -> None:
        def up() -> bool:
            if self.stopping.is_set():
                raise KeyboardInterrupt
            if child.proc.poll() is not None:
                raise ConfigError(
                    f"{child.name} exited at start (code {child.proc.returncode}): see {child.log}"
                )
            return ready()

        try:
            procs.wait_until(up, timeout_s, child.name, interval_s=0.1)
        except TimeoutError:
            raise ConfigError(
                f"{child.name} did not start in {timeout_s:g} s: see {child.log}"
            ) from None

    def dead(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self) -> None:
        if self.children:
            say(f"Stopping {', '.join(c.name for c in reversed(self.children))} …")
        # redis-server last: the worker and Flower leave the broker cleanly first
        last = [c for c in self.children if c.name == "redis-server"]
        for group in ([c for c in self.children if c not in last], last):
            for child in group:
                if child.proc.poll() is None:
                    child.proc.terminate()
            deadline = time.monotonic() + GRACE_S
            for child in group:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    say(f"{child.name} ignored SIGTERM for {GRACE_S:g} s: killing it")
                with contextlib.suppress(ProcessLookupError):  # pool processes left behind
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        for cleanup in self.cleanups:
            cleanup()
        if self.children:
            say("Stopped: nothing started here is left running.")
        self.children.clear()
        self.cleanups.clear()

    def redis_server(self, port: int, data_dir: Path, persist: bool) -> str:
        try:
            argv = procs.redis_argv(port, data_dir, persist=persist)
        except FileNotFoundError:
            raise ConfigError(
                "redis-server is not installed: run `make demo` (it installs it), "
                "`apt-get install redis-server`, or set REDIS_URL to a Redis you run"
            ) from None
        data_dir.mkdir(parents=True, exist_ok=True)
        child = self.start("redis-server", argv, dict(os.environ), data_dir)
        self.wait_until(lambda: procs.redis_ready(port), child)
        return f"redis://127.0.0.1:{port}/0"

    def worker(self, env: dict[str, str], cwd: Path, hostname: str) -> None:
        schedule = self.state_dir / "celerybeat-schedule"
        for stale in self.state_dir.glob("celerybeat-schedule*"):
            stale.unlink()  # an old last-run time would make beat check twice at start
        argv = [sys.executable, "-m", "celery", "-A", "credit_tasks", "worker", "--beat", "-E"]
        argv += [f"--schedule={schedule}"]
        argv += ["--loglevel=INFO", "--concurrency=2", f"--hostname={hostname}@%h"]
        self.start("worker", argv, env, cwd)

    def flower(self, env: dict[str, str], cwd: Path, port: int, basic_auth: str) -> None:
        # the credentials go through the environment, never argv, which `ps` shows to all
        env = env | {"FLOWER_BASIC_AUTH": basic_auth}
        argv = [sys.executable, "-m", "celery", "-A", "credit_tasks", "flower"]
        argv += ["--address=127.0.0.1", f"--port={port}"]
        child = self.start("flower", argv, env, cwd)
        self.wait_until(lambda: procs.listening(port), child)

    def tail(self, redis_url: str, keys: Keyspace, duration_s: float | None) -> int:
        """Print each new check and alert until stopped; 1 when a process died under us."""
        end = None if duration_s is None else time.monotonic() + duration_s
        client: Any = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(keys.channel)
            newest = client.xrevrange(keys.timeline, count=1)
            last_id, previous = (newest[0][0] if newest else "0-0"), None
            while not self.stopping.is_set() and (end is None or time.monotonic() < end):
                dead = self.dead()
                if dead is not None:
                    say(f"{dead.name} stopped (exit code {dead.proc.returncode}): see {dead.log}")
                    return 1
                for _, entries in client.xread({keys.timeline: last_id}, count=100, block=500):
                    for last_id, fields in entries:
                        point = timeline.decode(last_id, fields)
                        say(check_line(point, previous))
                        if point.remaining_usd is not None:
                            previous = point.remaining_usd
                while (message := pubsub.get_message(timeout=0.0)) is not None:
                    if message["type"] == "message":
                        say(alert_line(json.loads(message["data"])))
        except redis.RedisError as exc:
            dead = self.dead()
            reason = f"{dead.name} stopped: see {dead.log}" if dead else str(exc)
            say(f"lost Redis at {redact_url(redis_url)} ({reason})")
            return 1
        finally:
            pubsub.close()
            client.close()
        return 0


def flower_auth(settings: Settings) -> tuple[str, str]:
    """Flower's `user:password`, and how to show it: a generated one is printed once."""
    if settings.flower_basic_auth is not None:
        value = settings.flower_basic_auth.get_secret_value()
        users = [entry.partition(":") for entry in value.split(",")]
        if not all(user and password for user, _, password in users):
            raise ConfigError("FLOWER_BASIC_AUTH is invalid: set it to user:password")
        return value, f"user {users[0][0]}, the password in FLOWER_BASIC_AUTH"
    password = secrets.token_urlsafe(12)
    return f"admin:{password}", f"user admin, password {password}"


def _send_check(broker_url: str, expires_s: float) -> None:
    """One check now, so the first line does not wait for beat's first interval."""
    from celery import Celery
    from kombu.exceptions import OperationalError

    app = Celery("credit-monitor-stack", broker=broker_url, set_as_current=False)
    try:
        app.send_task("credit_tasks.check_credits", expires=expires_s)
    except OperationalError as exc:
        raise ConfigError(
            f"the broker at {redact_url(broker_url)} refused the first check ({exc}): "
            "start it or fix CELERY_BROKER_URL"
        ) from None
    finally:
        app.close()


@dataclass
class Plan:
    """What `demo` or `run` starts the worker and Flower with."""

    settings: Settings  # as the worker will see them
    env: dict[str, str]
    cwd: Path
    hostname: str
    started_redis: bool  # so the user needs REDIS_URL=… to reach it
    go: Callable[[], None] = lambda: None  # once everything is up


def _redis(stack: Stack, settings: Settings, port: int, data: Path, demo: bool) -> str:
    """REDIS_URL when given, else (run only) a Redis on localhost:6379, else our own."""
    if "redis_url" in settings.model_fields_set:
        if not _pings(settings.redis_url):
            raise ConfigError(
                f"Redis at {redact_url(settings.redis_url)} does not answer: start it, "
                "or unset REDIS_URL to let credit-monitor start its own"
            )
        return settings.redis_url
    if not demo and _pings(settings.redis_url):
        return settings.redis_url
    if not demo and _pings(f"redis://127.0.0.1:{port}/0"):
        return f"redis://127.0.0.1:{port}/0"  # the project-local Redis of an earlier run
    return stack.redis_server(
        port if procs.port_free(port) else procs.free_port(), data, persist=not demo
    )


def _demo_plan(stack: Stack, settings: Settings, pace: float) -> Plan:
    url = _redis(stack, settings, DEMO_REDIS_PORT, stack.state_dir / "redis", demo=True)
    interval_s, spend = max(1.0, DEMO_INTERVAL_S / pace), DEMO_SPEND_USD_PER_HOUR * pace
    sim = Simulator().start()
    stack.cleanups.append(sim.stop)
    sim.set_account(total_credits=DEMO_START_USD)
    sim.add_key(DEFAULT_API_KEY, name="Demo app")
    sim.add_key(DEFAULT_MANAGEMENT_KEY, name="Demo management", management=True)
    sim.set_topup(below_usd=DEMO_TOPUP_BELOW_USD, topup_usd=DEMO_TOPUP_USD)
    given = "redis_url" in settings.model_fields_set
    # the user's CREDIT_*/OPENROUTER_* would change the story: the demo sets its own
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_ENV)} | {
        "REDIS_URL": url,
        "CELERY_BROKER_URL": settings.broker_url if given else url,
        "CELERY_RESULT_BACKEND": settings.result_backend if given else url,
        "OPENROUTER_API_KEY": DEFAULT_API_KEY,
        "OPENROUTER_MANAGEMENT_KEY": DEFAULT_MANAGEMENT_KEY,
        "OPENROUTER_BASE_URL": sim.base_url,
        "CREDIT_CHECK_INTERVAL_MINUTES": f"{interval_s / 60:.6g}",
        # at demo speed every balance has "0 h" of runway: keep to warning, critical, resolved
        "CREDIT_RUNWAY_WARNING_HOURS": "0",
    }
    per_s = spend / 3600
    say(
        f"Demo: a simulated OpenRouter account starts at {money(DEMO_START_USD)} and spends "
        f"{money(spend)}/h, checked every {interval_s:g} s."
    )
    say(
        f"  warning below $10 in ~{(DEMO_START_USD - 10) / per_s:.0f} s, critical below $5 in "
        f"~{(DEMO_START_USD - 5) / per_s:.0f} s, then an auto top-up of {money(DEMO_TOPUP_USD)} "
        f"below {money(DEMO_TOPUP_BELOW_USD)} resolves it."
    )
    worker_settings = load_settings(
        redis_url=url,
        celery_broker_url=env["CELERY_BROKER_URL"],
        credit_redis_prefix="openrouter",
        credit_check_interval_minutes=interval_s / 60,
    )
    # the clock starts when everything is up, so the story's times hold on a slow machine
    go = functools.partial(sim.set_spend, key=DEFAULT_API_KEY, usd_per_hour=spend)
    return Plan(worker_settings, env, stack.state_dir, "demo", not given, go)


def _run_plan(stack: Stack, settings: Settings) -> Plan:
    url = _redis(stack, settings, RUN_REDIS_PORT, Path(".redis").resolve(), demo=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    started = url != settings.redis_url
    if started:
        env["REDIS_URL"] = url
        settings = settings.model_copy(update={"redis_url": url})
    say(
        f"Watching the OpenRouter account at {redact_url(settings.openrouter_base_url)}, "
        f"checked every {settings.credit_check_interval_minutes:g} min "
        "(CREDIT_CHECK_INTERVAL_MINUTES)."
    )
    # the worker runs here, so it reads the same .env as this command
    return Plan(settings, env, Path.cwd(), "credit-monitor", started)


def _serve(args: argparse.Namespace, state_dir: str, demo: bool) -> int:
    settings = load_settings()
    if not demo:
        settings.require_api_key()
    if not procs.port_free(args.flower_port):
        raise ConfigError(
            f"port {args.flower_port} is busy (another Flower or demo?): stop it, "
            "or pass --flower-port PORT"
        )
    basic_auth, shown_auth = flower_auth(settings)
    stack = Stack(Path(state_dir).resolve())

    def on_signal(signum: int, frame: object) -> None:
        stack.stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        plan = _demo_plan(stack, settings, args.pace) if demo else _run_plan(stack, settings)
        plan.env["PYTHONUNBUFFERED"] = "1"  # logs reach the files as they happen
        stack.worker(plan.env, plan.cwd, plan.hostname)
        stack.flower(plan.env, plan.cwd, args.flower_port, basic_auth)
        keys = Keyspace(plan.settings.credit_redis_prefix)
        url = plan.settings.redis_url
        reach = f"REDIS_URL={url} " if plan.started_redis else ""
        monitor = Path(sys.executable).parent / "credit-monitor"
        monitor_cmd = os.path.relpath(monitor) if monitor.exists() else "credit-monitor"
        cli_url = "$REDIS_URL" if redact_url(url) != url else url  # never print a password
        say("Where to look:")
        say(f"  Flower   http://127.0.0.1:{args.flower_port}  ({shown_auth})")
        say(f"  status   {reach}{monitor_cmd} status")
        say(f"  history  {reach}{monitor_cmd} history 1")
        say(f"  alerts   redis-cli -u {cli_url} SUBSCRIBE {keys.channel}")
        say(f"  logs     {os.path.relpath(stack.log_dir)}/ (worker.log, flower.log)")
        say("Ctrl-C stops everything. Checks and alerts as they happen:")
        plan.go()
        _send_check(plan.settings.broker_url, plan.settings.check_interval_s)
        return stack.tail(url, keys, args.duration_s)
    finally:
        stack.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    if args.pace <= 0:
        raise ConfigError("--pace must be > 0, e.g. 1 (the default) or 4 for a faster demo")
    return _serve(args, ".demo", demo=True)


def cmd_run(args: argparse.Namespace) -> int:
    return _serve(args, ".run", demo=False)


def add_parsers(sub: Any) -> None:
    """The `demo` and `run` subcommands of `credit-monitor`."""
    demo = sub.add_parser("demo", help="everything on a simulated account: worker, beat, Flower")
    demo.add_argument("--pace", type=float, default=1.0, help="spend and check N× faster")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="everything on the real account (needs OPENROUTER_API_KEY)")
    run.set_defaults(func=cmd_run)
    for parser in (demo, run):
        parser.add_argument(
            "--for",
            dest="duration_s",
            type=parse_duration,
            metavar="DURATION",
            help="stop after e.g. 40s, 3m or 1h (default: at Ctrl-C)",
        )
        parser.add_argument("--flower-port", type=int, default=FLOWER_PORT, metavar="PORT")
