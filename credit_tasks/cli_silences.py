"""`credit-monitor silence add|list|expire` and `credit-monitor ack`: the team says "we know".

Every argument is read before Redis is touched, so bad input ends in one line, exit 3, and
nothing written. A silence or an ack bumps a version that each check's commit compares: a
check deciding at that moment decides again, so the next alert already honours it.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from .errors import InputError
from .rules import ANY_TYPE
from .runtime import Runtime
from .settings import load_settings
from .silences import (
    ack_for,
    new_silence,
    parse_alert_id,
    parse_duration,
    parse_reason,
    parse_subject,
    parse_type,
    silence_line,
    silence_row,
    state_subject,
    unknown_alert,
)

ACK_ATTEMPTS = 3  # the state may move under an ack; read it again a few times


def cmd_silence_add(args: argparse.Namespace) -> int:
    subject, kind = parse_subject(args.subject), parse_type(args.type)
    length, reason = parse_duration(args.duration), parse_reason(args.reason, required=True)
    settings = load_settings()
    silence = new_silence(uuid.uuid4().hex[:12], subject, kind, length, reason, datetime.now(UTC))
    with Runtime(settings) as rt:
        rt.store.add_silence(silence)
    print(silence.id)
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    with Runtime(load_settings()) as rt:
        silenced, _ = rt.store.silencing(now)
    if args.json:
        print(json.dumps([silence_row(s, now) for s in silenced]))
        return 0
    if not silenced:
        print("No active silences.")
    for silence in silenced:
        print(silence_line(silence, now))
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    with Runtime(load_settings()) as rt:
        ended = rt.store.expire_silence(args.id, datetime.now(UTC))
    if ended is None:
        raise InputError(f"no active silence {args.id!r}: `credit-monitor silence list` shows them")
    print(f"silence {ended.id} expired: {ended.subject} {ended.type} alerts go out again")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    alert_id = parse_alert_id(args.alert_id)
    reason = parse_reason(args.reason, required=False)
    with Runtime(load_settings()) as rt:
        record = rt.store.alert_record(alert_id)
        if not record.get("timestamp"):
            raise unknown_alert(alert_id)
        try:
            subject = state_subject(record)
        except ValueError:
            raise InputError(f"alert {alert_id} is about nothing this version judges") from None
        for _ in range(ACK_ATTEMPTS):
            raw, state = rt.store.alert_state(subject)
            ack = ack_for(alert_id, record, state, reason, datetime.now(UTC))
            if rt.store.put_ack(ack, raw):
                print(
                    f"acknowledged: no more repeats about {subject} while it stays "
                    f"{state.status.value}; a worse state or its end is still sent"
                )
                return 0
    raise InputError(f"{subject} kept changing while acknowledging alert {alert_id}: run it again")


def add_parsers(sub: Any) -> None:
    """The `silence` and `ack` subcommands of `credit-monitor`."""
    silence = sub.add_parser("silence", help="hold alerts back for a while: add, list, expire")
    actions = silence.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="record SUBJECT's TYPE alerts only, for DURATION")
    add.add_argument(
        "--subject",
        required=True,
        help="account, account:runway, account:spike, key:<hash> or * (every subject)",
    )
    add.add_argument("--type", default=ANY_TYPE, help="an alert type, or any (the default)")
    add.add_argument(
        "--for", dest="duration", required=True, metavar="DURATION", help="e.g. 90m, 6h or 2d"
    )
    add.add_argument("--reason", metavar="TEXT", help="why (required): the team sees it")
    add.set_defaults(func=cmd_silence_add)
    listing = actions.add_parser("list", help="the active silences and their remaining time")
    listing.add_argument("--json", action="store_true", help="print one JSON list")
    listing.set_defaults(func=cmd_silence_list)
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", metavar="ID")
    expire.set_defaults(func=cmd_silence_expire)
    ack = sub.add_parser("ack", help="stop the repeats of an alert's ongoing condition")
    ack.add_argument("alert_id", metavar="ALERT_ID")
    ack.add_argument("--reason", metavar="TEXT", help="why, for the rest of the team")
    ack.set_defaults(func=cmd_ack)
