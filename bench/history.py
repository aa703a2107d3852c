"""History at scale: the stream timeline against the original hash-per-entry layout.

A year of one-minute checks goes into the same redis-server twice: once as the project
writes it (stream `…:credits:timeline`, fields as `credit_tasks.timeline` encodes them,
id = check time in ms, trimmed with MINID ~), once as the original utility did (a hash
`openrouter:credits:history:<ts>` per entry and the sorted set `openrouter:credits:timeline`,
read entry by entry).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from credit_tasks import timeline
from credit_tasks.keyspace import Keyspace
from credit_tasks.settings import Settings
from credit_tasks.store import Store, connect

from .common import DB_BASELINE, DB_RETENTION, DB_STREAM, BenchError, Services, flushdb

MINUTE_S = 60
DAY_POINTS = 1_440
MONTH_POINTS = 30 * DAY_POINTS
BATCH = 10_000  # commands per pipeline: big enough to hide round trips, small for memory
START = datetime(2025, 1, 1, tzinfo=UTC)  # fixed, so every run writes the same year
BASELINE_HISTORY = "openrouter:credits:history"  # the original utility's documented names
BASELINE_TIMELINE = "openrouter:credits:timeline"
DEFAULT_RETENTION_DAYS = float(Settings.model_fields["credit_history_retention_days"].default)


@dataclass(frozen=True)
class Point:
    """One synthetic check: what `Store.record_success` would be handed."""

    at: datetime
    remaining_usd: float
    usage_usd: float
    status: str
    source: str = "account"

    @property
    def ms(self) -> int:
        return _ms(self.at)


def year(points: int, seed: int = 1) -> list[Point]:
    """`points` one-minute checks of an account that spends unevenly and is topped up."""
    rng = random.Random(seed)
    credits, usage, out = 100.0, 0.0, []
    for i in range(points):
        # checks start a little after the minute, as a beat-driven worker's do
        at = START + timedelta(minutes=i, milliseconds=rng.randrange(1000))
        usage = round(usage + rng.random() * 0.004, 10)  # the API's usage has 10 decimals
        if credits - usage < 3.0:
            credits += 100.0
        remaining = credits - usage  # as the client computes it: unrounded
        status = "critical" if remaining < 5 else "warning" if remaining < 10 else "ok"
        out.append(Point(at, remaining, usage, status))
    return out


def stream_fields(point: Point) -> dict[str, str]:
    """The stream entry of a point, with the fields `Store.record_success` writes."""
    return timeline.encode(point.remaining_usd, point.usage_usd, point.status, point.source)


def _batches(points: list[Point]) -> Iterator[list[Point]]:
    for i in range(0, len(points), BATCH):
        yield points[i : i + BATCH]


def write_stream(
    client: Any,
    keys: Keyspace,
    points: list[Point],
    retention_s: float,
    after_batch: Callable[[int], None] | None = None,
) -> None:
    """XADD every point as the store does (id = ms, MINID ~ retention), pipelined."""
    retention_ms = int(retention_s * 1000)
    written = 0
    for batch in _batches(points):
        pipe = client.pipeline(transaction=False)
        for p in batch:
            pipe.xadd(
                keys.timeline,
                stream_fields(p),
                id=f"{p.ms}-*",
                minid=p.ms - retention_ms,
                approximate=True,
            )
        pipe.execute()
        written += len(batch)
        if after_batch is not None:
            after_batch(written)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _baseline_member(point: Point) -> str:
    return point.at.isoformat()


def write_baseline(client: Any, points: list[Point]) -> None:
    """One hash per entry plus the timeline sorted set, as the original utility kept them."""
    for batch in _batches(points):
        pipe = client.pipeline(transaction=False)
        for p in batch:
            member = _baseline_member(p)
            pipe.hset(
                f"{BASELINE_HISTORY}:{member}",
                mapping={
                    "timestamp": member,
                    "remaining_usd": str(p.remaining_usd),
                    "usage_usd": str(p.usage_usd),
                    "status": p.status,
                    "source": p.source,
                },
            )
            pipe.zadd(BASELINE_TIMELINE, {member: p.at.timestamp()})
        pipe.execute()


def read_baseline(client: Any, start: datetime, end: datetime) -> list[dict[str, str]]:
    """The original read: ZRANGEBYSCORE, then one HGETALL round trip per entry."""
    members = client.zrangebyscore(BASELINE_TIMELINE, start.timestamp(), end.timestamp())
    return [client.hgetall(f"{BASELINE_HISTORY}:{m}") for m in members]


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


@dataclass(frozen=True)
class Read:
    """One way of answering a window: the call, how many points it must return, and the
    server commands it runs (the first runs once per read), as INFO commandstats names them."""

    call: Callable[[], list[Any]]
    expect: int
    commands: tuple[str, ...]


def _interleaved(rounds: int, reads: dict[str, Read], server: Any) -> dict[str, Any]:
    """Time each read `rounds` times, taking turns (rotated each round) so that the machine's
    drift hits all alike; also the time redis-server itself spent on one read."""
    server.config_resetstat()
    names = list(reads)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            read = reads[name]
            started = time.perf_counter()
            got = read.call()
            samples[name].append(time.perf_counter() - started)
            if len(got) != read.expect:
                raise BenchError(f"{name} returned {len(got)} points, expected {read.expect}")
    stats = server.info("commandstats")
    out = {}
    for name, read in reads.items():
        first, *rest = read.commands
        usec = stats[first]["usec"] + sum(stats[c]["usec"] for c in rest if c in stats)
        out[name] = {
            "points": read.expect,
            "reps": rounds,
            "median_s": round(statistics.median(samples[name]), 6),
            "min_s": round(min(samples[name]), 6),
            "server_s": round(usec / stats[first]["calls"] / 1e6, 6),
        }
    return out


def _window(points: list[Point], count: int) -> tuple[datetime, datetime, int]:
    """The last `count` points' time range (both ends included)."""
    count = min(count, len(points))
    return points[-count].at, points[-1].at, count


def run(
    svc: Services,
    *,
    points: int,
    rounds_24h: int,
    rounds_30d: int,
    retention_days: float = DEFAULT_RETENTION_DAYS,
) -> dict[str, Any]:
    """Write `points` checks in both layouts, measure memory and reads, then show retention."""
    series = year(points)
    day = _window(series, DAY_POINTS)
    month = _window(series, MONTH_POINTS)
    span_s = (series[-1].at - series[0].at).total_seconds()
    keys = Keyspace()
    for db in (DB_STREAM, DB_BASELINE, DB_RETENTION):
        flushdb(svc.url(db))

    # retention longer than the year: every point stays, so memory is per kept point
    keep_all_s = span_s + 86_400
    raw: Any = connect(svc.url(DB_STREAM))
    store = Store(raw, keys, retention_s=keep_all_s, url=svc.url(DB_STREAM))
    base: Any = redis.Redis.from_url(svc.url(DB_BASELINE), decode_responses=True)
    try:
        before = used_memory(raw)
        started = time.perf_counter()
        write_stream(raw, keys, series, keep_all_s)
        stream_write_s = time.perf_counter() - started
        stream_bytes = used_memory(raw) - before
        stream_key_bytes = int(raw.memory_usage(keys.timeline, samples=0))
        if raw.xlen(keys.timeline) != points:
            raise BenchError("the stream lost points while writing under a year-long retention")

        before = used_memory(base)
        started = time.perf_counter()
        write_baseline(base, series)
        baseline_write_s = time.perf_counter() - started
        baseline_bytes = used_memory(base) - before

        def reads(window: tuple[datetime, datetime, int]) -> dict[str, Read]:
            first, last, count = window
            return {
                "stream": Read(lambda: store.history(first, last), count, ("cmdstat_xrange",)),
                # the same read without building Points: what Store.history adds to redis-py
                "xrange_only": Read(
                    lambda: raw.xrange(keys.timeline, min=_ms(first), max=_ms(last)),
                    count,
                    ("cmdstat_xrange",),
                ),
                "baseline": Read(
                    lambda: read_baseline(base, first, last),
                    count,
                    ("cmdstat_zrangebyscore", "cmdstat_hgetall"),
                ),
            }

        by_day = _interleaved(rounds_24h, reads(day), raw)
        month_reads = reads(month)
        del month_reads["xrange_only"]  # the 24 h split says it; 30 d would only add time
        by_month = _interleaved(rounds_30d, month_reads, raw)
    finally:
        store.close()
        base.close()
    for db in (DB_STREAM, DB_BASELINE):
        flushdb(svc.url(db))

    stream_per_point = stream_bytes / points
    baseline_per_point = baseline_bytes / points
    return {
        "points": points,
        "stream": {
            "used_memory_bytes": stream_bytes,
            "bytes_per_point": round(stream_per_point, 2),
            "memory_usage_key_bytes": stream_key_bytes,
            "write_s": round(stream_write_s, 3),
            "read_24h": by_day["stream"],
            "xrange_only_24h": by_day["xrange_only"],
            "read_30d": by_month["stream"],
        },
        "baseline": {
            "layout": "hash openrouter:credits:history:<iso ts> + zset openrouter:credits:timeline",
            "used_memory_bytes": baseline_bytes,
            "bytes_per_point": round(baseline_per_point, 2),
            "write_s": round(baseline_write_s, 3),
            "read_24h": by_day["baseline"],
            "read_30d": by_month["baseline"],
        },
        "memory_ratio": round(stream_per_point / baseline_per_point, 4),
        "speedup_24h": round(by_day["baseline"]["median_s"] / by_day["stream"]["median_s"], 2),
        "speedup_30d": round(by_month["baseline"]["median_s"] / by_month["stream"]["median_s"], 2),
        "retention": retention(svc, series, retention_days),
    }


def retention(svc: Services, series: list[Point], retention_days: float) -> dict[str, Any]:
    """Write the whole series under `retention_days` and watch the stream length stay bounded."""
    keys = Keyspace()
    retention_s = retention_days * 86_400
    retention_points = int(retention_s // MINUTE_S)
    client: Any = connect(svc.url(DB_RETENTION))
    samples: list[dict[str, int]] = []
    try:
        every = max(1, len(series) // 8 // BATCH) * BATCH

        def sample(written: int) -> None:
            if written % every == 0 or written == len(series):
                samples.append({"written": written, "xlen": int(client.xlen(keys.timeline))})

        write_stream(client, keys, series, retention_s, after_batch=sample)
        final = int(client.xlen(keys.timeline))
        key_bytes = int(client.memory_usage(keys.timeline, samples=0))
    finally:
        client.close()
    flushdb(svc.url(DB_RETENTION))
    past = [s["xlen"] for s in samples if s["written"] > retention_points]
    return {
        "retention_days": retention_days,
        "retention_points": retention_points,
        "written": len(series),
        "final_xlen": final,
        "max_xlen_past_retention": max(past) if past else None,
        "final_over_retention": round(final / retention_points, 4),
        "stream_key_bytes": key_bytes,
        "samples": samples,
    }
