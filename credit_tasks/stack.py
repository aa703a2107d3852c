"""The whole system from one command: `credit-monitor demo` and `credit-monitor run`.

The plans say what each starts (`plans`), the supervisor starts and stops it (`supervisor`),
and the terminal shows one line per check and per alert (`liveview`) while the Celery logs
go to files. Ctrl-C, SIGTERM or the end of `--for` stops every process started here.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from . import plans, procs
from .errors import ConfigError, StoreError
from .keyspace import Keyspace
from .liveview import LiveView
from .settings import load_settings, redact_url
from .supervisor import Supervisor, say


def parse_duration(text: str) -> float:
    """Seconds in `40s`, `3m`, `1h` or a bare number of seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"DURATION must look like 40s, 3m or 1h, not {text!r}")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def watch(
    sup: Supervisor,
    redis_url: str,
    keys: Keyspace,
    duration_s: float | None,
    client: Any = None,
) -> int:
    """Print each new check and alert until stopped; 1 when a process died under us."""
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        view = LiveView(redis_url, keys, client)
        try:
            while not sup.stop_requested and (end is None or time.monotonic() < end):
                dead = sup.dead()
                if dead is not None:
                    say(f"{dead.name} stopped (exit code {dead.proc.returncode}): see {dead.log}")
                    return 1
                for line in view.lines(block_ms=200):
                    say(line)
        finally:
            view.close()
    except StoreError as exc:
        dead = sup.dead()
        reason = f"{dead.name} stopped: see {dead.log}" if dead else str(exc)
        say(f"lost Redis at {redact_url(redis_url)} ({reason})")
        return 1
    return 0


def _serve(args: argparse.Namespace, state_dir: str, demo: bool) -> int:
    settings = load_settings()
    if not demo:
        settings.require_api_key()
    if not procs.port_free(args.flower_port):
        raise ConfigError(
            f"port {args.flower_port} is busy (another Flower or demo?): stop it, "
            "or pass --flower-port PORT"
        )
    basic_auth, shown_auth = plans.flower_auth(settings)
    web_port = plans.web_port(args.web_port)
    state = Path(state_dir).resolve()
    sup = Supervisor(state / "logs")
    sup.handle_signals()
    sup.stop_when_parent_dies()
    try:
        plan = plans.demo(sup, settings, state, args.pace) if demo else plans.run(sup, settings)
        plans.start_services(sup, plan, state, args.flower_port, basic_auth)
        plans.start_web(sup, plan, web_port)
        keys = Keyspace(plan.settings.credit_redis_prefix)
        url = plan.settings.redis_url
        reach = f"REDIS_URL={url} " if plan.started_redis else ""
        monitor = Path(sys.executable).parent / "credit-monitor"
        monitor_cmd = os.path.relpath(monitor) if monitor.exists() else "credit-monitor"
        cli_url = "$REDIS_URL" if redact_url(url) != url else url  # never print a password
        say("Where to look:")
        say(f"  Flower   http://127.0.0.1:{args.flower_port}  ({shown_auth})")
        say(f"  page     http://127.0.0.1:{web_port}/  (also /metrics, /healthz, /api/status)")
        say(f"  status   {reach}{monitor_cmd} status")
        say(f"  history  {reach}{monitor_cmd} history 1")
        say(f"  alerts   redis-cli -u {cli_url} SUBSCRIBE {keys.channel}")
        say(f"  logs     {os.path.relpath(sup.log_dir)}/ (worker.log, flower.log, web.log)")
        say("Ctrl-C stops everything. Checks and alerts as they happen:")
        plan.go()
        plans.send_first_check(plan.settings, plan.settings.check_interval_s)
        client = plans.redis_client(plan.settings, url, socket_timeout=10)
        return watch(sup, url, keys, args.duration_s, client)
    finally:
        sup.stop()


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
        parser.add_argument("--flower-port", type=int, default=plans.FLOWER_PORT, metavar="PORT")
        parser.add_argument(
            "--web-port", type=int, metavar="PORT", help=f"the page's (default {plans.WEB_PORT})"
        )
