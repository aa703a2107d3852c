"""10,000 keys: one check of a management key whose account holds a fleet of capped keys.

The simulator lists the fleet (100 keys a page) beside the bench's own uncapped key. Most
keys have a quarter or more of their limit left; 7 in 100 are under the warning percent and
3 in 100 under the critical one. `run_check` runs in-process on the bench's redis-server,
with a day of account history as in production: a first check on an empty alert state,
where the keys' alerts fire, then a steady check where nothing changes. The floor is the
API's own time on loopback: the check's GETs, raw, bodies decoded, on a pooled client.

A separate pass at a hundredth, a tenth and all of the fleet counts Redis round trips
(writes on the connection: a pipeline or a transaction is one) and splits a check's time
between HTTP (the time with at least one request in flight: pages go out side by side),
Redis and the rest, which is Python.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis

from credit_tasks.check import CheckResult, run_check
from credit_tasks.client import KEYS_CONCURRENCY, OpenRouterClient
from credit_tasks.keyspace import Keyspace
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator
from credit_tasks.store import Store

from .check_cost import BALANCE_USD, a_day_of_checks
from .common import (
    API_KEY,
    DB_KEYS,
    MANAGEMENT_KEY,
    BenchError,
    Services,
    bench_settings,
    flushdb,
    prime,
    summary_ms,
)

PAGE_SIZE = 100  # keys per /keys page, as OpenRouter (and the simulator) serve them
LIMITS_USD = (5.0, 10.0, 25.0, 50.0, 100.0)
LIMIT_RESETS = (None, "daily", "weekly", "monthly")
CREATED = datetime(2025, 1, 1, tzinfo=UTC)  # fixed, so every run pages the same order
CRITICAL_LEFT = 0.02  # under the default 5 % of the limit
WARNING_LEFT = 0.12  # under the default 20 %
WARMUP = 1
PREFIX = "bench-keys"


def left_fraction(i: int) -> float:
    """The share of its limit that fleet key `i` has left: 3 in 100 critical, 7 warning."""
    slot = i % 100
    if slot < 3:
        return CRITICAL_LEFT
    if slot < 10:
        return WARNING_LEFT
    return 0.25 + (i * 37 % 75) / 100  # 25-99 % left: ok


def prime_fleet(sim: Simulator, count: int) -> int:
    """Reset the simulator to the bench's keys plus `count` capped keys; returns how many
    of them are under a threshold, hence the alerts a first check raises."""
    # not Simulator.add_fleet: it disables 1 key in 50 and puts a fifth under the warning
    prime(sim, BALANCE_USD)
    alerting = 0
    for i in range(count):
        limit = LIMITS_USD[i % len(LIMITS_USD)]
        left = left_fraction(i)
        if left in (CRITICAL_LEFT, WARNING_LEFT):
            alerting += 1
        sim.add_key(
            "sk-or-v1-" + hashlib.sha256(f"bench-fleet-{i}".encode()).hexdigest(),
            name=f"fleet-{i:05d}",
            limit=limit,
            usage=round(limit * (1 - left), 4),
            limit_reset=LIMIT_RESETS[i % len(LIMIT_RESETS)],
            created_at=(CREATED - timedelta(minutes=i)).isoformat(),
        )
    return alerting


def pages(count: int) -> int:
    """The /keys pages a check reads: the fleet and the bench's key, then a short page."""
    return (count + 1) // PAGE_SIZE + 1


def pages_asked(count: int, concurrency: int = KEYS_CONCURRENCY) -> int:
    """The /keys pages a check asks for: windows of 1, 1, 2, 4, then `concurrency` pages, so
    the pages after the short one in its window are asked too, and go unread."""
    needed, asked, window = pages(count), 0, 1
    while asked < needed:
        asked += window
        window = 1 if asked < 2 else min(2 * window, concurrency)
    return asked


class _MeteredConnection(redis.Connection):
    """A connection that counts its writes (one per round trip, pipelines included) and the
    time spent writing, waiting and parsing replies."""

    sends = 0
    seconds = 0.0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        started = time.perf_counter()
        try:
            super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]
        finally:
            type(self).sends += 1
            type(self).seconds += time.perf_counter() - started

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().read_response(*args, **kwargs)
        finally:
            type(self).seconds += time.perf_counter() - started


def _fresh(store: Store, settings: Settings) -> None:
    """An empty alert state and key table, and a day of account history."""
    store.redis.flushdb()
    a_day_of_checks(store.redis, store.keys, settings.check_interval_s, store.retention_s)


def _check(
    settings: Settings, api: OpenRouterClient, store: Store, count: int, alerts: int
) -> tuple[float, CheckResult]:
    """One timed check; it must see every key and raise exactly `alerts` key alerts."""
    started = time.perf_counter()
    result = run_check(settings, api, store)
    elapsed = time.perf_counter() - started
    raised = sum(a.subject.startswith("key:") for a in result.alerts)
    if result.skipped or result.status.value != "ok" or len(result.keys) != count + 1:
        raise BenchError(f"a {count:,}-key check did not succeed: {result.as_dict()}")
    if raised != alerts or len(result.alerts) != alerts:
        raise BenchError(
            f"a {count:,}-key check raised {len(result.alerts)} alerts ({raised} for keys), "
            f"expected {alerts}: did the key thresholds' defaults change?"
        )
    return elapsed, result


def _floor(http: httpx.Client, count: int) -> float:
    """The API's own time for one check: /key, /credits and every /keys page, raw."""
    management = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
    started = time.perf_counter()
    http.get("key", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    http.get("credits", headers=management).json()
    for page in range(pages(count)):
        path = f"keys?offset={page * PAGE_SIZE}&include_disabled=false"
        http.get(path, headers=management).json()
    return time.perf_counter() - started


def timed(svc: Services, count: int, reps: int) -> dict[str, Any]:
    """Median wall time of a first and a steady check of `count` keys, beside the floor."""
    alerting = prime_fleet(svc.sim, count)
    url = svc.url(DB_KEYS)
    settings = bench_settings(svc.sim, url, credit_redis_prefix=PREFIX)
    store = Store.from_settings(settings)
    samples: dict[str, list[float]] = {"first": [], "steady": [], "floor": []}
    try:
        with (
            OpenRouterClient(settings) as api,
            httpx.Client(base_url=svc.sim.base_url, timeout=5.0) as http,
        ):
            for i in range(WARMUP + reps):
                _fresh(store, settings)
                first, _ = _check(settings, api, store, count, alerting)
                steady, _ = _check(settings, api, store, count, 0)
                floor = _floor(http, count)
                if i >= WARMUP:  # the warm-up opens connections and loads the lock's script
                    for name, seconds in (("first", first), ("steady", steady), ("floor", floor)):
                        samples[name].append(seconds)
    finally:
        store.close()
        flushdb(url)
    return {
        "keys": count,
        "pages": pages(count),
        "alerts_first": alerting,
        "first": summary_ms(samples["first"]),
        "steady": summary_ms(samples["steady"]),
        "floor": summary_ms(samples["floor"]),
    }


def _phase(obj: Any, name: str, into: dict[str, float]) -> None:
    """Time every call of `obj.name` (an instance attribute shadows the method) into `into`."""
    method = getattr(obj, name)

    @functools.wraps(method)
    def phase(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            into[name] = into.get(name, 0.0) + time.perf_counter() - started

    setattr(obj, name, phase)


def in_flight_s(spans: Iterable[tuple[float, float]]) -> float:
    """The time covered by at least one of `spans` (start, end): overlaps count once."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _server_stats(client: Any) -> tuple[int, int]:
    stats = client.info("stats")
    return int(stats["total_commands_processed"]), int(stats["total_net_input_bytes"])


def counted(svc: Services, count: int, reps: int) -> dict[str, Any]:
    """Round trips, commands and the time split of a first and a steady check of `count`
    keys, on a metered connection: of `reps` pairs, each way's check of median wall time."""
    alerting = prime_fleet(svc.sim, count)
    url = svc.url(DB_KEYS)
    settings = bench_settings(svc.sim, url, credit_redis_prefix=PREFIX)
    # the options of credit_tasks.store.connect, on a connection that meters itself
    pool = redis.ConnectionPool.from_url(
        url,
        connection_class=_MeteredConnection,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=30,
    )
    store = Store(
        redis.Redis(connection_pool=pool),
        Keyspace(PREFIX),
        retention_s=settings.retention_s,
        url=url,
    )
    responses: list[httpx.Response] = []
    sent: dict[int, float] = {}  # id(request) -> when it went out

    def on_request(request: httpx.Request) -> None:
        sent[id(request)] = time.perf_counter()

    # as the client builds its own, plus hooks that keep when each request went out and each
    # response for its `elapsed`
    http = httpx.Client(
        base_url=settings.openrouter_base_url,
        timeout=httpx.Timeout(settings.credit_http_timeout_s),
        event_hooks={"request": [on_request], "response": [responses.append]},
    )
    server: Any = redis.Redis.from_url(url, decode_responses=True)
    phases: dict[str, float] = {}
    runs: dict[str, list[dict[str, float]]] = {"first": [], "steady": []}
    try:
        with OpenRouterClient(settings, http) as api:
            for name in ("list_keys", "fetch_snapshot"):
                _phase(api, name, phases)
            for name in ("load", "commit"):
                _phase(store, name, phases)
            for i in range(WARMUP + reps):
                _fresh(store, settings)
                for which, alerts in (("first", alerting), ("steady", 0)):
                    phases.clear()
                    responses.clear()
                    _MeteredConnection.sends, _MeteredConnection.seconds = 0, 0.0
                    commands, in_bytes = _server_stats(server)
                    wall_s, _ = _check(settings, api, store, count, alerts)
                    redis_s, round_trips = _MeteredConnection.seconds, _MeteredConnection.sends
                    commands_after, in_bytes_after = _server_stats(server)
                    # elapsed: from the request out to the whole body in
                    http_s = in_flight_s(
                        (sent[id(r.request)], sent[id(r.request)] + r.elapsed.total_seconds())
                        for r in responses
                    )
                    sent.clear()
                    if i >= WARMUP:
                        runs[which].append(
                            {
                                "wall_ms": wall_s * 1000,
                                "http_ms": http_s * 1000,
                                "redis_ms": redis_s * 1000,
                                "python_ms": (wall_s - http_s - redis_s) * 1000,
                                **{f"{k}_ms": v * 1000 for k, v in phases.items()},
                                "redis_round_trips": round_trips,
                                # the first INFO is counted by the second, and its bytes
                                "redis_commands": commands_after - commands - 1,
                                "redis_bytes_in": in_bytes_after - in_bytes,
                                "http_requests": len(responses),
                            }
                        )
    finally:
        http.close()
        server.close()
        store.close()
        pool.disconnect()
        flushdb(url)
    return {
        "keys": count,
        "pages": pages(count),
        "pages_asked": pages_asked(count),
        "reps": reps,
        **{which: _median_check(samples) for which, samples in runs.items()},
    }


def _median_check(samples: list[dict[str, float]]) -> dict[str, float]:
    """The check of median wall time (the lower of the two middle ones), whole: its parts
    add up, as separate medians would not."""
    ordered = sorted(samples, key=lambda s: s["wall_ms"])
    return {name: round(value, 3) for name, value in ordered[(len(ordered) - 1) // 2].items()}


def at_latency(svc: Services, count: int, latency_ms: float, reps: int) -> dict[str, Any]:
    """Steady checks of `count` keys when every API request takes `latency_ms`: the client's
    /keys pages eight at a time, beside the same client paging one after another."""
    alerting = prime_fleet(svc.sim, count)
    url = svc.url(DB_KEYS)
    settings = bench_settings(svc.sim, url, credit_redis_prefix=PREFIX)
    store = Store.from_settings(settings)
    samples: dict[str, list[float]] = {"concurrent": [], "sequential": []}
    svc.sim.configure(latency_ms=latency_ms)
    try:
        for name, concurrency, times in (
            ("concurrent", KEYS_CONCURRENCY, reps),
            ("sequential", 1, 1),
        ):
            with OpenRouterClient(settings, page_concurrency=concurrency) as api:
                _fresh(store, settings)
                _check(settings, api, store, count, alerting)  # opens the connections
                for _ in range(times):
                    seconds, _ = _check(settings, api, store, count, 0)
                    samples[name].append(seconds)
    finally:
        svc.sim.configure(latency_ms=0)
        store.close()
        flushdb(url)
    concurrent, sequential = summary_ms(samples["concurrent"]), summary_ms(samples["sequential"])
    return {
        "keys": count,
        "pages": pages(count),
        "latency_ms": latency_ms,
        "page_concurrency": KEYS_CONCURRENCY,
        "concurrent": concurrent,
        "sequential": sequential,
        "speedup": round(sequential["median_ms"] / concurrent["median_ms"], 2),
    }


def run(
    svc: Services, *, keys: int, reps: int, say: Callable[[str], None] = lambda text: None
) -> dict[str, Any]:
    """Time checks of `keys` keys; count round trips at a hundredth, a tenth and all of it."""
    say(f"  {keys:,} keys: {reps} first and {reps} steady checks, and the floor …")
    wall = timed(svc, keys, reps)
    sizes = (keys // 100, keys // 10, keys)
    by_size = []
    for count in sizes:
        say(f"  {count:,} keys: round trips and where the time goes …")
        by_size.append(counted(svc, count, reps if count == keys else 1))
    first = [c["first"]["redis_round_trips"] for c in by_size]
    steady = [c["steady"]["redis_round_trips"] for c in by_size]
    return {
        **wall,
        "reps": reps,
        "ratio_first": round(wall["first"]["median_ms"] / wall["floor"]["median_ms"], 3),
        "ratio_steady": round(wall["steady"]["median_ms"] / wall["floor"]["median_ms"], 3),
        "counted": by_size,
        # the largest fleet needs no more round trips than the smallest
        "round_trips_flat": max(first[1:]) <= first[0] and max(steady[1:]) <= steady[0],
    }
