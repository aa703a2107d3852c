"""`credit-monitor`: check, monitor, history and status for people and cron jobs.

Exit codes follow the Nagios plugin convention: 0 ok, 1 warning, 2 critical, 3 unknown or
error. Expected failures end in one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from . import history, notify
from .alerts import remaining_text
from .check import EXIT_CODES, CheckResult, run_check
from .errors import CreditTasksError
from .rules import About, Status
from .runtime import Runtime
from .settings import Settings, load_settings
from .stack import add_parsers as add_stack_parsers
from .text import duration, money

SPARKS = "▁▂▃▄▅▆▇█"
PROG = "credit-monitor"


def _money(value: object) -> str:
    return money(value, missing="-")


def _num(value: float) -> str:
    return f"{value:.2f}"


def nagios_line(result: CheckResult, settings: Settings) -> str:
    """`CREDITS WARNING - $8.00 left | remaining=8.00;10;5;0`, the plugin convention."""
    label = f"CREDITS {result.status.value.upper()}"
    snap = result.snapshot
    if snap is None:
        return f"{label} - {result.error or result.note or 'no data'}"
    perf = []
    if snap.remaining_usd is not None:
        perf.append(
            f"remaining={_num(snap.remaining_usd)};{settings.credit_warning_threshold:g};"
            f"{settings.credit_critical_threshold:g};0"
        )
    if snap.usage_usd is not None:
        perf.append(f"usage={_num(snap.usage_usd)};;;0")
    if snap.remaining_usd is None:
        text = result.note or "balance unknown"
    else:
        about = About(
            remaining_usd=snap.remaining_usd,
            runway_hours=result.runway_hours,
            window_hours=settings.credit_burn_window_hours,
        )
        text = f"{remaining_text(about)} ({snap.source.replace('_', ' ')})"
    if result.runway_hours is not None:
        perf.append(
            f"runway_hours={result.runway_hours:.1f};{settings.credit_runway_warning_hours:g};;0"
        )
    if result.skipped:
        text = f"{text}; {result.note}"
    return f"{label} - {text}" + (f" | {' '.join(perf)}" if perf else "")


def _open(settings: Settings) -> Runtime:
    """The command's resources, once Redis has answered."""
    rt = Runtime(settings)
    try:
        rt.store.ping()
    except CreditTasksError:
        rt.close()
        raise
    return rt


def cmd_check(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.require_api_key()
    with _open(settings) as rt:
        rt.channels_error  # noqa: B018  (a bad CREDIT_ALERT_URLS is said now, in one line)
        result = run_check(settings, rt.client, rt.store)
        for alert in result.alerts:
            notify.deliver_with_retries(
                rt.store,
                alert,
                rt.channels,
                attempts=settings.credit_alert_retry_attempts,
                backoff_s=settings.credit_alert_retry_s,
                channels_error=rt.channels_error,
            )
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(nagios_line(result, settings))
        for alert in result.alerts:
            print(f"alert {alert.type.value}: {alert.message}")
    if result.error:
        print(f"{PROG}: {result.error}", file=sys.stderr)
    return result.exit_code


def cmd_monitor(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.require_api_key()
    _open(settings).close()
    from .celery import app

    schedule = Path(tempfile.gettempdir()) / f"{PROG}-{settings.credit_redis_prefix}-beat"
    app.worker_main(
        [
            "worker",
            "--beat",
            f"--schedule={schedule}",
            f"--loglevel={args.loglevel}",
            "--concurrency=1",
            f"--hostname={PROG}@%h",
        ]
    )
    return 0


def sparkline(values: list[float], width: int = 60) -> str:
    """A one-line chart of `values`, down-sampled to at most `width` characters."""
    if not values:
        return ""
    step = max(1, -(-len(values) // width))
    sampled = values[::step]
    low, high = min(sampled), max(sampled)
    span = (high - low) or 1.0
    return "".join(SPARKS[int((v - low) / span * (len(SPARKS) - 1))] for v in sampled)


def cmd_history(args: argparse.Namespace) -> int:
    settings = load_settings()
    end = datetime.now(UTC)
    with _open(settings) as rt:
        points = rt.store.history(end - timedelta(hours=args.hours), end)
    answer = history.report(args.hours, points)
    if args.json:
        print(json.dumps(answer))
        return 0
    if not points:
        print(
            f"No checks recorded in the last {args.hours:g} h: run `{PROG} check` "
            "or start the worker with beat."
        )
        return 0
    summary = answer["summary"]
    assert isinstance(summary, dict)
    known = [p.remaining_usd for p in points if p.remaining_usd is not None]
    print(f"Balance over the last {args.hours:g} h ({len(points)} checks)")
    print(f"  {sparkline(known)}")
    print(
        f"  first {_money(summary['first_remaining_usd'])}  last "
        f"{_money(summary['last_remaining_usd'])}  min {_money(summary['min_remaining_usd'])}"
        f"  max {_money(summary['max_remaining_usd'])}"
    )
    rate = summary["burn_rate_usd_per_hour"]
    runway = summary["runway_hours"]
    line = f"  spent {_money(summary['spend_usd'])}"
    if rate is not None:
        line += f", burn rate {_money(rate)}/h"
    if runway is not None:
        line += f", {duration(float(str(runway)))} left at that pace"
    print(line)
    print()
    print(f"{'time (UTC)':<20} {'remaining':>12} {'usage':>12}  status    source")
    step = max(1, -(-len(points) // args.rows))
    shown = points[::step]
    if shown[-1] is not points[-1]:
        shown.append(points[-1])
    for p in shown:
        print(
            f"{p.timestamp:%Y-%m-%d %H:%M:%S} {_money(p.remaining_usd):>12} "
            f"{_money(p.usage_usd):>12}  {p.status:<9} {p.source}"
        )
    return 0


def _runway_text(current: dict[str, str], settings: Settings) -> str:
    runway, rate = current.get("runway_hours"), current.get("burn_rate_usd_per_hour")
    if not runway or not rate:
        return "not projected (needs two checks with spend in the window)"
    return (
        f"{duration(float(runway))} at the last {settings.credit_burn_window_hours:g} h's "
        f"pace ({_money(rate)}/h)"
    )


def cmd_keys(args: argparse.Namespace) -> int:
    settings = load_settings()
    with _open(settings) as rt:
        rows = rt.store.keys_table()
    # least remaining first; uncapped keys (no remaining) last
    rows.sort(key=lambda r: (r["remaining_usd"] is None, r["remaining_usd"] or 0.0, r["name"]))
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"No keys recorded: set OPENROUTER_MANAGEMENT_KEY and run `{PROG} check`.")
        return 0
    width = min(max(len(r["name"]) for r in rows), 32)
    print(f"{'name':<{width}}  {'label':<22} {'remaining':>12} {'limit':>12}  status")
    for r in rows:
        print(
            f"{r['name'][:width]:<{width}}  {r['label']:<22} {_money(r['remaining_usd']):>12} "
            f"{_money(r['limit_usd']):>12}  {r['status']}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    with _open(settings) as rt:
        current, monitoring = rt.store.current(), rt.store.monitoring_status()
        alerts = rt.store.recent_alerts(5)
    status = Status(current.get("status") or "unknown")
    if args.json:
        print(json.dumps({"current": current, "monitoring": monitoring, "recent_alerts": alerts}))
        return EXIT_CODES[status]
    if not current and not monitoring:
        print(f"No check recorded yet: run `{PROG} check` or start the worker with beat.")
        return 3
    print(f"Status:     {status.value.upper()}")
    print(
        f"Remaining:  {_money(current.get('remaining_usd'))} "
        f"(source: {current.get('source') or '-'})"
    )
    print(f"Usage:      {_money(current.get('usage_usd'))}")
    print(f"Runway:     {_runway_text(current, settings)}")
    print(f"Checked at: {current.get('checked_at') or '-'}")
    print(
        f"Last check: {monitoring.get('last_check_at') or '-'}, last success "
        f"{monitoring.get('last_success_at') or '-'}, "
        f"{monitoring.get('consecutive_failures') or 0} failure(s) in a row"
    )
    if monitoring.get("last_error"):
        print(f"Last error: {monitoring['last_error']}")
    if monitoring.get("credits_forbidden"):
        print(f"Account balance not read: {monitoring['credits_forbidden']}")
    if monitoring.get("unreadable_keys"):
        print(f"Unreadable keys: {monitoring['unreadable_keys'].replace(',', ', ')}")
    if alerts:
        print("Recent alerts:")
        for a in alerts:
            pending = "" if a.get("delivered_at") else "  (not delivered yet)"
            if a.get("delivery_error"):
                pending += f"  (delivery failed: {a['delivery_error']})"
            print(
                f"  {a.get('timestamp', '')[:19]}  {a.get('type', ''):<8} "
                f"{a.get('message', '')}{pending}"
            )
    return EXIT_CODES[status]


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3 (UNKNOWN) in one line: exit 2 would read as CRITICAL to Nagios."""

    def error(self, message: str) -> NoReturn:
        self.exit(3, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Watch OpenRouter credits; exit 0 ok, 1 warning, 2 critical, "
        "3 unknown or error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser("check", help="check the balance once, in-process (the default)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=cmd_check)
    monitor = sub.add_parser("monitor", help="run a worker with embedded beat for this module")
    monitor.add_argument("--loglevel", default="INFO")
    monitor.set_defaults(func=cmd_monitor)
    hist = sub.add_parser("history", help="the balance over the last HOURS (default 24)")
    hist.add_argument("hours", nargs="?", type=_positive_hours, default=24.0, metavar="HOURS")
    hist.add_argument("--json", action="store_true", help="print one JSON object")
    hist.add_argument("--rows", type=int, default=24, help="table rows at most (default 24)")
    hist.set_defaults(func=cmd_history)
    status = sub.add_parser("status", help="the current snapshot and monitoring status")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)
    keys = sub.add_parser("keys", help="every key of the account, least remaining first")
    keys.add_argument("--json", action="store_true", help="print one JSON list")
    keys.set_defaults(func=cmd_keys)
    add_stack_parsers(sub)  # demo, run
    sub.add_parser("simulate", help="run the OpenRouter simulator (see simulate --help)")
    return parser


def _positive_hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not 0 < hours < float("inf"):
        raise argparse.ArgumentTypeError(f"HOURS must be a number > 0, not {text!r}")
    return hours


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        from .simulator import main as simulate

        return simulate(argv[1:])
    args = build_parser().parse_args(argv or ["check"])
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    # the CLI prints its own lines; keep library warnings for the log of a worker
    logging.getLogger("credit_tasks").setLevel(logging.ERROR)
    try:
        return int(args.func(args))
    except CreditTasksError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
