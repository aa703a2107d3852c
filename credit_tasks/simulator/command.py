"""`credit-monitor simulate` (or `python -m credit_tasks.simulator`): run the simulator until a
signal stops it.

It accepts two keys and rejects any other with 401: the ordinary key, which spends, and the
management key, which alone reads /credits and /keys. It prints both at start, with the
variables that point the monitor at it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Any

from .server import Simulator

DEFAULT_API_KEY = "sk-or-v1-sim-ordinary"
DEFAULT_MANAGEMENT_KEY = "sk-or-v1-sim-management"
LOOP_KEY = "sk-or-v1-sim-looping-agent"
LOOP_KEY_NAME = "batch-agent"


KEYS_HELP = f"""\
keys:
  The simulator accepts two keys and answers 401 to any other:
    {DEFAULT_API_KEY}      the ordinary key (--api-key): /key, and it spends
    {DEFAULT_MANAGEMENT_KEY}    the management key (--management-key): /credits, /keys
  Without the management key the monitor cannot see the balance, so every check is
  unknown (exit 3), unless --key-limit caps the ordinary key.

example:
  credit-monitor simulate --port 8787 --credits 20 --spend-per-hour 30 &
  OPENROUTER_BASE_URL=http://127.0.0.1:8787/api/v1 \\
  OPENROUTER_API_KEY={DEFAULT_API_KEY} \\
  OPENROUTER_MANAGEMENT_KEY={DEFAULT_MANAGEMENT_KEY} credit-monitor check
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simulate",
        description="Run the OpenRouter API simulator.",
        epilog=KEYS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787, help="0 = any free port")
    p.add_argument("--credits", type=float, default=100.0, help="account total_credits (USD)")
    p.add_argument("--usage", type=float, default=0.0, help="account total_usage (USD)")
    p.add_argument(
        "--api-key", default=DEFAULT_API_KEY, help="ordinary key; the one that spends (%(default)s)"
    )
    p.add_argument(
        "--management-key",
        default=DEFAULT_MANAGEMENT_KEY,
        help="reads /credits and /keys (%(default)s)",
    )
    p.add_argument("--key-limit", type=float, default=None, help="spending cap of --api-key")
    p.add_argument("--spend-per-hour", type=float, default=0.0)
    p.add_argument("--topup-below", type=float, default=None, help="auto top-up threshold")
    p.add_argument("--topup", type=float, default=0.0, help="auto top-up amount")
    p.add_argument("--legacy", action="store_true", help="/key answers 404, /auth/key works")
    p.add_argument("--minimal-shape", action="store_true", help="older minimal /key shape")
    p.add_argument(
        "--credits-zeros-for-ordinary",
        action="store_true",
        help="/credits answers zeros to ordinary keys instead of 403",
    )
    p.add_argument("--keys", type=int, default=0, metavar="N", help="add N extra capped keys")
    p.add_argument("--latency-ms", type=float, default=0.0, help="every API answer waits this long")
    p.add_argument(
        "--usual-per-hour",
        type=float,
        default=0.0,
        metavar="USD",
        help="/activity shows the last 30 days spent at this hourly pace",
    )
    p.add_argument(
        "--loop-per-hour",
        type=float,
        default=0.0,
        metavar="USD",
        help=f"a key named {LOOP_KEY_NAME!r} loops, spending this much an hour",
    )
    p.add_argument("--loop-after", type=float, default=0.0, metavar="S", help="loop from then on")
    p.add_argument("--loop-for", type=float, default=None, metavar="S", help="loop this long")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            sim = Simulator(host=args.host, port=args.port)
        except OSError as exc:
            print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
            return 1
        sim.set_account(total_credits=args.credits, total_usage=args.usage)
        sim.add_key(args.api_key, name="Simulated API key", limit=args.key_limit)
        sim.add_key(args.management_key, name="Simulated management key", management=True)
        sim.set_spend(key=args.api_key, usd_per_hour=args.spend_per_hour)
        sim.set_topup(below_usd=args.topup_below, topup_usd=args.topup)
        sim.configure(
            legacy=args.legacy,
            minimal_shape=args.minimal_shape,
            credits_zeros_for_ordinary=args.credits_zeros_for_ordinary,
            latency_ms=args.latency_ms,
        )
        sim.add_fleet(args.keys)
        sim.seed_activity(30, args.usual_per_hour * 24)
        if args.loop_per_hour > 0:
            sim.add_key(LOOP_KEY, name=LOOP_KEY_NAME, model="anthropic/claude-sonnet-4")
            sim.set_loop(
                key=LOOP_KEY,
                usd_per_hour=args.loop_per_hour,
                after_s=args.loop_after,
                for_s=args.loop_for,
            )
        with sim:
            print(f"OpenRouter simulator on {sim.base_url}", flush=True)
            print(f"  ordinary key    {args.api_key}", flush=True)
            print(f"  management key  {args.management_key}  (reads /credits and /keys)")
            print(
                f"  point the monitor at it: OPENROUTER_BASE_URL={sim.base_url} "
                f"OPENROUTER_API_KEY={args.api_key} "
                f"OPENROUTER_MANAGEMENT_KEY={args.management_key}",
                flush=True,
            )
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
