"""`credit-monitor report [--date YYYY-MM-DD] [--json]`: a day's report, printed.

The same report the `daily_report` task delivers (`Runtime.report`), read from the store and,
with the management key, `/activity`; printing it stores and delivers nothing.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime
from typing import Any

from . import report
from .runtime import Runtime
from .settings import load_settings
from .text import cut, duration, money, plain

NAME_WIDTH = 32  # a model, provider or key name in the text


def _money(value: object) -> str:
    return money(value, missing="-")


def cmd_report(args: argparse.Namespace) -> int:
    settings = load_settings()
    day = args.date or report.yesterday(datetime.now(UTC))
    with Runtime(settings) as rt:
        the_report = rt.report(day)
    if args.json:
        print(json.dumps(the_report.as_dict()))
        return 0
    r = the_report
    print(f"OpenRouter daily report for {r.date} (UTC)")
    print(f"  Spent:      {_money(r.spend_usd)}")
    runway = f", {duration(r.runway_hours)} at the recent pace" if r.runway_hours else ""
    print(f"  Balance:    {_money(r.balance_usd)} now{runway}")
    counts = ", ".join(f"{n} {kind}" for kind, n in r.alerts.items()) or "none"
    print(f"  Alerts:     {counts}")
    for title, rows, name, usd in (
        ("Models:   ", r.top_models, "model", "usage_usd"),
        ("Providers:", r.top_providers, "provider", "usage_usd"),
        ("Keys:     ", r.top_keys, "name", "spend_usd"),
    ):
        shown = ", ".join(f"{cut(str(row[name]), NAME_WIDTH)} {_money(row[usd])}" for row in rows)
        print(f"  {title}  {shown or '-'}")
    for note in r.notes:
        print(f"  Not shown: {plain(note)}")
    return 0


def past_day(text: str) -> str:
    """A completed UTC day as YYYY-MM-DD; today and later have no report yet."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"DATE must be YYYY-MM-DD, not {text!r}") from None
    if day >= datetime.now(UTC).date():
        raise argparse.ArgumentTypeError(f"DATE must be a completed UTC day, not {text}")
    return day.isoformat()


def add_parser(sub: Any) -> None:
    """The `report` subcommand of `credit-monitor`."""
    day = sub.add_parser("report", help="a day's spend, alerts, top models, providers and keys")
    day.add_argument("--date", type=past_day, help="the UTC day, YYYY-MM-DD (default: yesterday)")
    day.add_argument("--json", action="store_true", help="print one JSON object")
    day.set_defaults(func=cmd_report)
