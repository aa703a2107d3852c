"""Cost per check: `run_check` in-process against the same work done bare.

The floor reads `/key` and `/credits` with raw GETs on a pooled httpx client and writes the
same data in one Redis pipeline (HSET current, HSET status, XADD): what any check must do.
A second floor makes the requests a check with a management key makes (`/key`, `/credits`,
`/workspaces`, `/keys`) the same bare way: its ratio to the first is the least any check that
asks what ours asks can cost against it.
All run against the same simulator and redis-server, alternated, so drift hits all alike.
The timeline holds a day of checks at the configured interval, as in production; it is
trimmed back to that after each timed check, outside the timing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis

from credit_tasks import timeline
from credit_tasks.check import run_check
from credit_tasks.client import OpenRouterClient
from credit_tasks.keyspace import Keyspace
from credit_tasks.store import Store, connect

from .common import (
    API_KEY,
    DB_CHECK,
    MANAGEMENT_KEY,
    BenchError,
    Services,
    bench_settings,
    flushdb,
    prime,
    summary_ms,
)
from .history import Point, write_stream

BALANCE_USD = 50.0  # well above the thresholds: a steady ok check, as most are
WARMUP = 20
COUNTED = 20  # checks whose Redis round trips and HTTP requests are counted


class _CountingConnection(redis.Connection):
    """A connection that counts its writes: one per round trip, pipelines included."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class Floor:
    """The bare minimum a check does: two raw GETs and one pipelined write.

    `with_keys` adds the raw GETs of `/workspaces` and `/keys` that a check with a management
    key also makes: the check's own four requests, made bare.
    """

    def __init__(self, base_url: str, client: Any, keys: Keyspace, with_keys: bool = False) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=5.0)
        self.redis = client
        self.keys = keys
        self.with_keys = with_keys
        self._api = {"Authorization": f"Bearer {API_KEY}"}
        self._management = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}

    def close(self) -> None:
        self.http.close()

    def check(self) -> None:
        now = datetime.now(UTC)
        key = self.http.get("key", headers=self._api).json()["data"]
        credits = self.http.get("credits", headers=self._management).json()["data"]
        if self.with_keys:
            self.http.get("workspaces?offset=0&limit=100", headers=self._management).json()
            self.http.get("keys?offset=0&include_disabled=false", headers=self._management).json()
        balance = credits["total_credits"] - credits["total_usage"]
        current = {
            "checked_at": now.isoformat(),
            "remaining_usd": str(balance),
            "usage_usd": str(key["usage"]),
            "source": "account",
            "limit_usd": "",
            "limit_remaining_usd": "",
            "account_balance_usd": str(balance),
            "key_label": key["label"],
            "is_free_tier": str(key["is_free_tier"]),
            "status": "ok",
        }
        ms = int(now.timestamp() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.current, mapping=current)
        pipe.hset(
            self.keys.monitoring_status,
            mapping={
                "last_check_at": now.isoformat(),
                "last_success_at": now.isoformat(),
                "consecutive_failures": 0,
                "last_error": "",
                "last_status": "ok",
            },
        )
        pipe.xadd(
            self.keys.timeline,
            timeline.encode(balance, key["usage"], "ok", "account"),
            id=f"{ms}-*",
        )
        pipe.execute()


def a_day_of_checks(client: Any, keys: Keyspace, interval_s: float, retention_s: float) -> int:
    """Fill the timeline with the last day's checks at `interval_s`; returns how many."""
    count = max(1, int(86_400 // interval_s))
    now = datetime.now(UTC)
    points = [
        Point(now - timedelta(seconds=k * interval_s), BALANCE_USD + k * 0.01, 1.0 - k * 0.01, "ok")
        for k in range(count, 0, -1)
    ]
    write_stream(client, keys, points, retention_s)
    return count


def _counted(
    svc: Services, settings: Any, floor_keys: Keyspace, listing_keys: Keyspace
) -> dict[str, Any]:
    """Redis round trips and HTTP requests per check, from a short separate pass."""
    pool = redis.ConnectionPool.from_url(
        svc.url(DB_CHECK), connection_class=_CountingConnection, decode_responses=True
    )
    client = redis.Redis(connection_pool=pool)
    store = Store(
        client,
        Keyspace(settings.credit_redis_prefix),
        retention_s=settings.retention_s,
    )
    floor = Floor(svc.sim.base_url, client, floor_keys)
    listing = Floor(svc.sim.base_url, client, listing_keys, with_keys=True)
    out: dict[str, Any] = {}
    try:
        with OpenRouterClient(settings) as api:
            for name, one in (
                ("run_check", lambda: run_check(settings, api, store)),
                ("floor", floor.check),
                ("floor_with_keys", listing.check),
            ):
                one()  # loads scripts and opens connections outside the count
                _CountingConnection.sends = 0
                requests_before = sum(svc.sim.requests().values())
                for _ in range(COUNTED):
                    one()
                requests = sum(svc.sim.requests().values()) - requests_before
                out[name] = {
                    "redis_round_trips": round(_CountingConnection.sends / COUNTED, 2),
                    "http_requests": round(requests / COUNTED, 2),
                }
    finally:
        floor.close()
        listing.close()
        store.close()
        client.close()
        pool.disconnect()
    return out


def run(svc: Services, *, reps: int) -> dict[str, Any]:
    """Time `reps` checks each way, alternated, and compare their medians and p95s."""
    prime(svc.sim, BALANCE_USD)
    url = svc.url(DB_CHECK)
    flushdb(url)
    settings = bench_settings(svc.sim, url, credit_redis_prefix="bench-check")
    floor_keys = Keyspace("bench-floor")
    store = Store.from_settings(settings)
    day = a_day_of_checks(store.redis, store.keys, settings.check_interval_s, store.retention_s)
    floor_redis = connect(url)
    floor = Floor(svc.sim.base_url, floor_redis, floor_keys)
    listing_keys = Keyspace("bench-floor-keys")
    listing = Floor(svc.sim.base_url, floor_redis, listing_keys, with_keys=True)
    project: list[float] = []
    bare: list[float] = []
    bare_keys: list[float] = []
    try:
        with OpenRouterClient(settings) as api:

            def check() -> None:
                result = run_check(settings, api, store)
                if result.status.value != "ok" or result.skipped:
                    raise BenchError(f"a benchmark check did not succeed: {result.as_dict()}")

            def keep_a_day() -> None:
                # untimed: so the 300th check reads the same history as the first
                store.redis.xtrim(store.keys.timeline, maxlen=day, approximate=False)

            for _ in range(WARMUP):
                check()
                keep_a_day()
                floor.check()
                listing.check()
            for i in range(reps):
                # rotate who goes first, so none always runs on a warmer cache
                order = [
                    (check, project, keep_a_day),
                    (floor.check, bare, lambda: None),
                    (listing.check, bare_keys, lambda: None),
                ]
                for call, samples, after in order[i % 3 :] + order[: i % 3]:
                    started = time.perf_counter()
                    call()
                    samples.append(time.perf_counter() - started)
                    after()
    finally:
        floor.close()
        listing.close()
        floor_redis.close()
        store.close()
    counts = _counted(svc, settings, floor_keys, listing_keys)
    flushdb(url)
    run_stats, floor_stats = summary_ms(project), summary_ms(bare)
    keys_stats = summary_ms(bare_keys)
    return {
        "reps": reps,
        "timeline_points": day,
        "run_check": run_stats | counts["run_check"],
        "floor": floor_stats | counts["floor"],
        "ratio_median": round(run_stats["median_ms"] / floor_stats["median_ms"], 3),
        "ratio_p95": round(run_stats["p95_ms"] / floor_stats["p95_ms"], 3),
        "floor_with_keys": keys_stats | counts["floor_with_keys"],
        "ratio_median_with_keys": round(run_stats["median_ms"] / keys_stats["median_ms"], 3),
        # the least any check making the check's requests can cost against the floor
        "ratio_floors": round(keys_stats["median_ms"] / floor_stats["median_ms"], 3),
    }
