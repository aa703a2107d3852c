"""Where a check's time goes: `run_check` beside its parts, and its cost as history grows.

Not part of `make bench`: `python -m bench.breakdown` explains a cost-per-check figure.
The state is the cost benchmark's: a day of checks at the interval, trimmed back after each
round outside the timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from credit_tasks.check import run_check
from credit_tasks.client import OpenRouterClient
from credit_tasks.store import Store

from .check_cost import BALANCE_USD, a_day_of_checks
from .common import DB_CHECK, Services, bench_settings, flushdb, prime, services

WARMUP = 10


def _medians_ms(
    rounds: int, parts: dict[str, Callable[[], object]], after: Callable[[], object]
) -> dict[str, float]:
    """Each part's median over `rounds`, the parts taking turns; `after` runs untimed."""
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(WARMUP):
        for call in parts.values():
            call()
        after()
    for _ in range(rounds):
        for name, call in parts.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
        after()
    return {name: round(statistics.median(s) * 1000, 3) for name, s in samples.items()}


def parts(svc: Services, *, rounds: int) -> dict[str, float]:
    """Median ms of `run_check` and of the calls it is made of, at the default interval."""
    prime(svc.sim, BALANCE_USD)
    url = svc.url(DB_CHECK)
    flushdb(url)
    settings = bench_settings(svc.sim, url, credit_redis_prefix="bench-check")
    store = Store.from_settings(settings)
    ping: Any = redis.Redis.from_url(url)
    day = a_day_of_checks(store.redis, store.keys, settings.check_interval_s, store.retention_s)
    try:
        with OpenRouterClient(settings) as api:

            def window() -> object:
                now = datetime.now(UTC)
                return store.history(now - timedelta(hours=24), now)

            return _medians_ms(
                rounds,
                {
                    "run_check": lambda: run_check(settings, api, store),
                    "fetch_snapshot (GET /key, /credits)": lambda: api.fetch_snapshot(
                        datetime.now(UTC)
                    ),
                    "list_keys (GET /keys)": lambda: api.list_keys(datetime.now(UTC)),
                    f"store.history, last 24 h ({day} points)": window,
                    "one Redis round trip (PING)": ping.ping,
                },
                lambda: store.redis.xtrim(store.keys.timeline, maxlen=day, approximate=False),
            )
    finally:
        ping.close()
        store.close()
        flushdb(url)


def _at_interval(svc: Services, minutes: float, rounds: int) -> dict[str, float]:
    url = svc.url(DB_CHECK)
    flushdb(url)
    settings = bench_settings(
        svc.sim, url, credit_redis_prefix="bench-check", credit_check_interval_minutes=minutes
    )
    store = Store.from_settings(settings)
    try:
        day = a_day_of_checks(store.redis, store.keys, settings.check_interval_s, store.retention_s)
        with OpenRouterClient(settings) as api:
            medians = _medians_ms(
                rounds,
                {"run_check": lambda: run_check(settings, api, store)},
                lambda: store.redis.xtrim(store.keys.timeline, maxlen=day, approximate=False),
            )
    finally:
        store.close()
        flushdb(url)
    return {"interval_min": minutes, "points": day, "run_check_ms": medians["run_check"]}


def by_interval(
    svc: Services, *, rounds: int, intervals_min: tuple[float, ...] = (30, 5, 1)
) -> list[dict[str, float]]:
    """`run_check`'s median with a day of history at each check interval."""
    prime(svc.sim, BALANCE_USD)
    return [_at_interval(svc, minutes, rounds) for minutes in intervals_min]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    parser.add_argument("--rounds", type=int, default=300, help="timed rounds of the parts")
    parser.add_argument("--interval-rounds", type=int, default=60, help="checks per interval")
    args = parser.parse_args(argv)
    with services() as svc:
        medians = parts(svc, rounds=args.rounds)
        intervals = by_interval(svc, rounds=args.interval_rounds)
    width = max(len(name) for name in medians)
    print(f"{'part':{width}}  median")
    for name, ms in medians.items():
        print(f"{name:{width}}  {ms:.2f} ms")
    print("\ninterval  points  run_check median")
    for row in intervals:
        print(f"{row['interval_min']:>5g} min  {row['points']:>6,}  {row['run_check_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
