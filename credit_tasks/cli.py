"""`credit-monitor`: check, monitor, history, status, keys and report for people and cron jobs.

Exit codes follow the Nagios plugin convention: 0 ok, 1 warning, 2 critical, 3 unknown or
error, for the worst status among the account, its runway and the keys (a skipped check is
unknown). Expected failures end in one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from . import notify, rollup
from .alerts import remaining_text
from .check import EXIT_CODES, CheckResult, run_check, severity, stored_worst
from .cli_report import add_parser as add_report_parser
from .cli_silences import add_parsers as add_silence_parsers
from .errors import CreditTasksError
from .rules import About, Status
from .runtime import Runtime
from .settings import MAX_RETENTION_DAYS, Settings, load_settings
from .silences import ack_line, held_note, silence_line
from .stack import add_parsers as add_stack_parsers
from .text import cut, duration, money, plain, span
from .web.command import add_parser as add_serve_parser

SPARKS = "▁▂▃▄▅▆▇█"
PROG = "credit-monitor"
NAME_WIDTH, LABEL_WIDTH, WORKSPACE_WIDTH = 32, 22, 24  # the keys table's columns
MAX_HISTORY_HOURS = MAX_RETENTION_DAYS * 24
CUT_SHORT = 141  # 128 + SIGPIPE: how a shell tool ends when the reader of its pipe left


def _money(value: object) -> str:
    return money(value, missing="-")


def _num(value: float) -> str:
    return f"{value:.2f}"


def nagios_line(result: CheckResult, settings: Settings) -> str:
    """`CREDITS WARNING - $8.00 left | remaining=8.00;10;5;0`, the plugin convention.

    The label is the worst status, as the exit code; the account's figure comes first, then
    the runway or keys that are worse than ok.
    """
    label = f"CREDITS {result.worst.value.upper()}"
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
            window_hours=result.burn_span_hours,
        )
        text = f"{remaining_text(about)} ({snap.source.replace('_', ' ')})"
    if result.others_note:
        text = f"{text}; {result.others_note}"
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
        if evicting := rt.store.eviction_warning():
            print(f"{PROG}: {evicting}", file=sys.stderr)
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
        for alert in result.held:
            print(f"held {alert.type.value} ({held_note(alert.as_dict())}): {alert.message}")
    if result.error:
        print(f"{PROG}: {result.error}", file=sys.stderr)
    return result.exit_code


def cmd_monitor(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.require_api_key()
    _open(settings).close()
    from .celery import app

    # beat's schedule is this monitor's own: two monitors on one machine must not share it
    with tempfile.TemporaryDirectory(prefix=f"{PROG}-beat-") as state:
        app.worker_main(
            [
                "worker",
                "--beat",
                f"--schedule={Path(state) / 'celerybeat-schedule'}",
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
        width_s, buckets = rt.store.buckets(end - timedelta(hours=args.hours), end)
    answer = rollup.report(args.hours, width_s, buckets)
    if args.json:
        print(json.dumps(answer))
        return 0
    if not buckets:
        print(
            f"No checks recorded in the last {args.hours:g} h: run `{PROG} check` "
            "or start the worker with beat."
        )
        return 0
    summary = answer["summary"]
    assert isinstance(summary, dict)
    print(
        f"Balance over the last {args.hours:g} h ({summary['points']} checks, "
        f"in buckets of {rollup.width_text(width_s)})"
    )
    print(f"  {sparkline([b.min_usd for b in buckets])}")
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
    print(f"{'bucket (UTC)':<20} {'min':>12} {'max':>12} {'last':>12}  checks")
    step = max(1, -(-len(buckets) // args.rows))
    shown = buckets[::step]
    if shown[-1] is not buckets[-1]:
        shown.append(buckets[-1])
    for b in shown:
        print(
            f"{b.start:%Y-%m-%d %H:%M:%S} {_money(b.min_usd):>12} {_money(b.max_usd):>12} "
            f"{_money(b.last_usd):>12}  {b.checks}"
        )
    return 0


def _runway_text(current: dict[str, str], settings: Settings) -> str:
    runway, rate = current.get("runway_hours"), current.get("burn_rate_usd_per_hour")
    if not runway or not rate:
        need = span(settings.credit_runway_min_span_minutes / 60)
        return f"not projected (needs {need} of history with spend in the window)"
    observed = current.get("burn_span_hours")
    pace = f"the pace of the last {span(float(observed))}" if observed else "the recent pace"
    return f"{duration(float(runway))} at {pace} ({_money(rate)}/h)"


def _spend_text(current: dict[str, str]) -> str:
    """`today $1.20, this week $5.00, this month $20.00`."""
    return (
        f"today {_money(current.get('spend_today_usd'))}, this week "
        f"{_money(current.get('spend_week_usd'))}, this month "
        f"{_money(current.get('spend_month_usd'))}"
    )


def key_order(row: dict[str, Any]) -> tuple[int, bool, float, str]:
    """Worst status first, then the smallest share of its limit left; uncapped keys last."""
    remaining, limit = row["remaining_usd"], row["limit_usd"]
    share = None if remaining is None or limit is None else remaining / limit if limit > 0 else 0.0
    return (-severity(Status(row["status"])), share is None, share or 0.0, row["name"])


def cmd_keys(args: argparse.Namespace) -> int:
    settings = load_settings()
    with _open(settings) as rt:
        rows, checked_at = rt.store.keys_table(), rt.store.current().get("checked_at")
    rows.sort(key=key_order)
    for row in rows:
        row.setdefault("workspace", None)  # a table written before workspaces were listed
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        if settings.openrouter_management_key is None:
            print(f"No keys recorded: set OPENROUTER_MANAGEMENT_KEY and run `{PROG} check`.")
        elif checked_at:
            print(
                f"No keys recorded: the account listed none at the last check ({checked_at}); "
                f"`{PROG} check` says so when the listing fails."
            )
        else:
            print(f"No keys recorded yet: run `{PROG} check`.")
        return 0
    # cut after cleaning, so a cut can never leave an escape sequence open
    names = [cut(str(r["name"]), NAME_WIDTH) for r in rows]
    width = max(4, *(len(n) for n in names))
    spaces = [cut(str(r["workspace"] or ""), WORKSPACE_WIDTH) for r in rows]
    # the workspace column only for an account that has workspaces
    ws = max(len("workspace"), *map(len, spaces)) if any(spaces) else 0
    head = f"{'workspace':<{ws}}  " if ws else ""
    print(
        f"{'name':<{width}}  {head}{'label':<{LABEL_WIDTH}} {'remaining':>12} {'limit':>12}  status"
    )
    for r, name, space in zip(rows, names, spaces, strict=True):
        where = f"{space:<{ws}}  " if ws else ""
        print(
            f"{name:<{width}}  {where}{cut(str(r['label']), LABEL_WIDTH):<{LABEL_WIDTH}} "
            f"{_money(r['remaining_usd']):>12} {_money(r['limit_usd']):>12}  "
            f"{plain(str(r['status']))}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    now = datetime.now(UTC)
    with _open(settings) as rt:
        answer = rt.store.overview(5, now)  # the web's /api/status answers the same
        silenced, acked = rt.store.silencing(now)
    current, monitoring = answer["current"], answer["monitoring"]
    alerts, warnings = answer["recent_alerts"], answer["warnings"]
    status = Status(current.get("status") or "unknown")
    worst, others = stored_worst(current, monitoring)  # the exit code, as `check`'s was
    if args.json:
        print(json.dumps(answer))
        return EXIT_CODES[worst]
    for warning in warnings:
        print(f"Warning:    {warning}")
    if not current and not monitoring:
        print(f"No check recorded yet: run `{PROG} check` or start the worker with beat.")
        return 3
    because = f" (account {status.value}, {others})" if others else ""
    print(f"Status:     {worst.value.upper()}{because}")
    print(
        f"Remaining:  {_money(current.get('remaining_usd'))} "
        f"(source: {current.get('source') or '-'})"
    )
    print(f"Usage:      {_money(current.get('usage_usd'))}")
    print(f"Spent:      {_spend_text(current)}")
    print(f"Runway:     {_runway_text(current, settings)}")
    print(f"Checked at: {current.get('checked_at') or '-'}")
    print(
        f"Last check: {monitoring.get('last_check_at') or '-'}, last success "
        f"{monitoring.get('last_success_at') or '-'}, "
        f"{monitoring.get('consecutive_failures') or 0} failure(s) in a row"
    )
    # what Redis holds was cleaned before it was stored; cleaned again in case another writer
    if monitoring.get("last_error"):
        print(f"Last error: {plain(monitoring['last_error'])}")
    if monitoring.get("credits_forbidden"):
        print(f"Account balance not read: {plain(monitoring['credits_forbidden'])}")
    if monitoring.get("unreadable_keys"):
        print(f"Unreadable keys: {plain(monitoring['unreadable_keys'].replace(',', ', '))}")
    for title, lines in (
        ("Silences:", [silence_line(s, now) for s in silenced]),
        ("Acknowledged:", [ack_line(a) for a in acked]),
    ):
        if lines:
            print(title)
            print("\n".join(f"  {line}" for line in lines))
    if alerts:
        print("Recent alerts:")
        for a in alerts:
            held = held_note(a)
            pending = f"  ({held})" if held else ""
            if not held and not a.get("delivered_at"):
                pending = "  (not delivered yet)"
            if a.get("delivery_error"):
                pending += f"  (delivery failed: {plain(a['delivery_error'])})"
            print(
                f"  {plain(a.get('timestamp', ''))[:19]}  {plain(a.get('type', '')):<8} "
                f"{plain(a.get('id', ''))}  {plain(a.get('message', ''))}{pending}"
            )
    return EXIT_CODES[worst]


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
    status = sub.add_parser(
        "status", help="the current snapshot, monitoring status, silences, acks and recent alerts"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)
    keys = sub.add_parser(
        "keys", help="every key of the account, worst first, then least of its limit left"
    )
    keys.add_argument("--json", action="store_true", help="print one JSON list")
    keys.set_defaults(func=cmd_keys)
    add_report_parser(sub)  # report
    add_silence_parsers(sub)  # silence, ack
    add_stack_parsers(sub)  # demo, run
    add_serve_parser(sub)
    sub.add_parser("simulate", help="run the OpenRouter simulator (see simulate --help)")
    return parser


def _positive_hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    # no history is kept longer than the longest retention; beyond it the clock overflows
    if not 0 < hours <= MAX_HISTORY_HOURS:
        raise argparse.ArgumentTypeError(
            f"HOURS must be a number > 0 and up to {MAX_HISTORY_HOURS:g} (ten years), not {text!r}"
        )
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
    code = CUT_SHORT
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that left shows here, not as a traceback at exit
    except BrokenPipeError:
        # `history 48 | head`: the reader has what it wanted; the rest goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except CreditTasksError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    return code
