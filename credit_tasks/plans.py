"""What `demo` and `run` start, in which order, and with which environment.

Both use REDIS_URL when it is given, else start a private redis-server (`run` first looks
for one on localhost); then the worker with beat and task events, then Flower behind basic
auth. `demo` adds the OpenRouter simulator, spending at a visible pace.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from . import procs, store
from .errors import ConfigError, StartError
from .settings import Settings, load_settings, redact_url
from .simulator import DEFAULT_API_KEY, DEFAULT_MANAGEMENT_KEY, Simulator
from .supervisor import Supervisor, say
from .text import money

DEMO_REDIS_PORT = 6390  # not 6379, so a system Redis is never touched
RUN_REDIS_PORT = 6399  # the project-local Redis of `make run`, data kept in .redis/
FLOWER_PORT = 5555
WEB_PORT = 8000  # credit-monitor serve's default; a free one when it is taken
DEMO_INTERVAL_S = 12.0
DEMO_START_USD = 12.5
DEMO_SPEND_USD_PER_HOUR = 180.0
DEMO_TOPUP_BELOW_USD = 4.0
DEMO_TOPUP_USD = 50.0
# after the top-up, a batch job loops: 8 times the usual pace for a minute
DEMO_LOOP_KEY = "sk-or-v1-demo-batch-agent"
DEMO_LOOP_NAME = "batch-agent"
DEMO_LOOP_USD_PER_HOUR = 1440.0
DEMO_LOOP_AFTER_S = 190.0
DEMO_LOOP_FOR_S = 60.0
DEMO_SPIKE_WINDOW_S = 60.0
_SERVICE_ENV = ("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_", "FLOWER_")


@dataclass
class Plan:
    """What `demo` or `run` starts the worker and Flower with."""

    settings: Settings  # as the worker will see them
    env: dict[str, str]
    cwd: Path
    hostname: str
    started_redis: bool  # so the user needs REDIS_URL=… to reach it
    go: Callable[[], None] = lambda: None  # once everything is up


def redis_client(settings: Settings, url: str, **options: Any) -> redis.Redis:
    """A client for `url` (a Redis or its Sentinels) with the settings' Sentinel options."""
    return store.connect(
        url,
        sentinel_master=settings.credit_redis_sentinel_master,
        sentinel_options=settings.sentinel_options(),
        **options,
    )


def _pings(settings: Settings, url: str) -> bool:
    try:
        client = redis_client(settings, url, socket_connect_timeout=1, socket_timeout=2)
    except (redis.RedisError, ValueError):
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


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


def start_redis(sup: Supervisor, port: int, data_dir: Path, persist: bool) -> str:
    """A redis-server of ours on `port`, stopped after everything that uses it."""
    try:
        argv = procs.redis_argv(port, data_dir, persist=persist)
    except FileNotFoundError:
        raise ConfigError(
            "redis-server is not installed: run `make demo` (it installs it), "
            "`apt-get install redis-server`, or set REDIS_URL to a Redis you run"
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    child = sup.start("redis-server", argv, dict(os.environ), data_dir, stop_last=True)
    sup.wait_ready(child, lambda: procs.redis_ready(port))
    return f"redis://127.0.0.1:{port}/0"


def _redis(sup: Supervisor, settings: Settings, port: int, data: Path, demo: bool) -> str:
    """REDIS_URL when given, else (run only) a Redis on localhost:6379, else our own."""
    if "redis_url" in settings.model_fields_set:
        if not _pings(settings, settings.redis_url):
            raise ConfigError(
                f"Redis at {redact_url(settings.redis_url)} does not answer: start it, "
                "or unset REDIS_URL to let credit-monitor start its own"
            )
        return settings.redis_url
    if not demo and _pings(settings, settings.redis_url):
        return settings.redis_url
    if not demo and _pings(settings, f"redis://127.0.0.1:{port}/0"):
        return f"redis://127.0.0.1:{port}/0"  # the project-local Redis of an earlier run
    port = port if procs.port_free(port) else procs.free_port()
    return start_redis(sup, port, data, persist=not demo)


def demo(sup: Supervisor, settings: Settings, state_dir: Path, pace: float) -> Plan:
    """Redis and the simulator, with an environment that points the worker at them."""
    url = _redis(sup, settings, DEMO_REDIS_PORT, state_dir / "redis", demo=True)
    interval_s, spend = max(1.0, DEMO_INTERVAL_S / pace), DEMO_SPEND_USD_PER_HOUR * pace
    sim = Simulator().start()
    sup.cleanups.append(sim.stop)
    sim.set_account(total_credits=DEMO_START_USD)
    sim.add_key(DEFAULT_API_KEY, name="Demo app")
    sim.add_key(DEFAULT_MANAGEMENT_KEY, name="Demo management", management=True)
    sim.add_key(DEMO_LOOP_KEY, name=DEMO_LOOP_NAME, model="anthropic/claude-sonnet-4")
    sim.set_topup(below_usd=DEMO_TOPUP_BELOW_USD, topup_usd=DEMO_TOPUP_USD)
    sim.seed_activity(7, spend * 24)  # /activity: the Demo app's pace is the usual one
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
        # the spike's window, at the story's pace: a minute of it at pace 1
        "CREDIT_SPIKE_WINDOW_MINUTES": f"{DEMO_SPIKE_WINDOW_S / pace / 60:.6g}",
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
    loop_at_s, loop_usd_per_hour = DEMO_LOOP_AFTER_S / pace, DEMO_LOOP_USD_PER_HOUR * pace
    say(
        f"  at ~{loop_at_s:.0f} s a key named {DEMO_LOOP_NAME!r} loops, spending "
        f"{money(loop_usd_per_hour)}/h for {DEMO_LOOP_FOR_S / pace:.0f} s: a spike alert names "
        "it, and resolves once the loop has left the window."
    )
    worker_settings = load_settings(
        redis_url=url,
        celery_broker_url=env["CELERY_BROKER_URL"],
        credit_redis_prefix="openrouter",
        credit_check_interval_minutes=interval_s / 60,
    )

    def go() -> None:
        # the clock starts when everything is up, so the story's times hold on a slow machine
        sim.set_spend(key=DEFAULT_API_KEY, usd_per_hour=spend)
        sim.set_loop(
            key=DEMO_LOOP_KEY,
            usd_per_hour=loop_usd_per_hour,
            after_s=loop_at_s,
            for_s=DEMO_LOOP_FOR_S / pace,
        )

    return Plan(worker_settings, env, state_dir, "demo", not given, go)


def run(sup: Supervisor, settings: Settings) -> Plan:
    """Redis if none answers, and the environment of this command for the worker."""
    url = _redis(sup, settings, RUN_REDIS_PORT, Path(".redis").resolve(), demo=False)
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


def start_services(
    sup: Supervisor, plan: Plan, state_dir: Path, flower_port: int, basic_auth: str
) -> None:
    """The worker with beat and task events, then Flower; returns once Flower answers."""
    env = plan.env | {"PYTHONUNBUFFERED": "1"}  # logs reach the files as they happen
    schedule = state_dir / "celerybeat-schedule"
    for stale in state_dir.glob("celerybeat-schedule*"):
        stale.unlink()  # an old last-run time would make beat check twice at start
    argv = [sys.executable, "-m", "celery", "-A", "credit_tasks", "worker", "--beat", "-E"]
    argv += [f"--schedule={schedule}"]
    argv += ["--loglevel=INFO", "--concurrency=2", f"--hostname={plan.hostname}@%h"]
    sup.start("worker", argv, env, plan.cwd)
    # the credentials go through the environment, never argv, which `ps` shows to all
    argv = [sys.executable, "-m", "celery", "-A", "credit_tasks", "flower"]
    argv += ["--address=127.0.0.1", f"--port={flower_port}"]
    flower = sup.start("flower", argv, env | {"FLOWER_BASIC_AUTH": basic_auth}, plan.cwd)
    sup.wait_ready(flower, lambda: procs.listening(flower_port))


def web_port(requested: int | None) -> int:
    """The page's port: the one asked for, else 8000, else any free one."""
    if requested is not None:
        if not procs.port_free(requested):
            raise ConfigError(f"port {requested} is busy: stop what uses it, or pass --web-port")
        return requested
    return WEB_PORT if procs.port_free(WEB_PORT) else procs.free_port()


def start_web(sup: Supervisor, plan: Plan, port: int) -> None:
    """`credit-monitor serve` on 127.0.0.1:`port`; returns once it answers."""
    argv = [sys.executable, "-m", "credit_tasks", "serve", "--port", str(port)]
    web = sup.start("web", argv, plan.env | {"PYTHONUNBUFFERED": "1"}, plan.cwd)
    sup.wait_ready(web, lambda: procs.listening(port))


def send_first_check(settings: Settings, expires_s: float) -> None:
    """One check now, so the first line does not wait for beat's first interval."""
    from celery import Celery
    from kombu.exceptions import OperationalError

    from .celery import celery_config

    conf = celery_config(settings)
    app = Celery("credit-monitor-stack", broker=conf["broker_url"], set_as_current=False)
    app.conf.broker_transport_options = conf["broker_transport_options"]
    try:
        app.send_task("credit_tasks.check_credits", expires=expires_s)
    except OperationalError as exc:
        raise StartError(
            f"the broker at {redact_url(settings.broker_url)} refused the first check ({exc}): "
            "start it or fix CELERY_BROKER_URL"
        ) from None
    finally:
        app.close()
