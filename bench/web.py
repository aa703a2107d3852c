"""The web face at scale: `/`, `/api/history` and `/metrics` over 90 days and 10,000 keys.

The store holds 90 days of one-minute checks (129,600 stream entries, and the rollup levels
rebuilt from them by `Store.rebuild_rollups`, as the commits would have written them) and a
key table of 10,000 capped keys written by `Store.commit`. `credit-monitor serve` runs as a
subprocess on a free port; the bench times whole HTTP answers (status, headers and body)
from a pooled httpx client, taking turns between the paths, after a warm-up. Each figure
stands beside what it replaces or what it costs at least: the history beside the raw
`XRANGE` of the same range read with `Store.history`, the page beside `/healthz` (the same
server's smallest answer), the scrape beside the raw read of the key table it exposes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from credit_tasks.keyspace import Keyspace
from credit_tasks.procs import free_port, stop_process, wait_until
from credit_tasks.store import Commit, Store, connect

from .common import DB_WEB, BenchError, Services, flushdb, summary_ms
from .history import Point, write_stream

PREFIX = "openrouter"
WARMUP = 3
PAGE_TARGET_MS = 100.0
HISTORY_TARGET_MS = 25.0
METRICS_TARGET_MS = 250.0


def history_of(days: float, now: datetime) -> list[Point]:
    """One-minute checks over `days` up to `now`, spending and topped up now and then."""
    count = int(days * 1440)
    usd, out = 60.0, []
    for i in range(count):
        usd -= 0.001 + (i % 17) * 0.0002
        if usd < 3.0:
            usd += 100.0
        status = "critical" if usd < 5 else "warning" if usd < 10 else "ok"
        out.append(Point(now - timedelta(minutes=count - i), usd, 100.0 - usd, status))
    return out


def fleet(count: int) -> dict[str, dict[str, Any]]:
    """`count` capped keys as a check writes them in the key table."""
    rows = {}
    for i in range(count):
        limit = (5.0, 10.0, 25.0, 50.0, 100.0)[i % 5]
        left = round(limit * ((i * 7919) % 1000) / 1000, 4)
        rows[f"{i:064x}"] = {
            "hash": f"{i:064x}",
            "name": f"Customer {i}",
            "label": f"sk-or-v1-c{i:05d}...xyz",
            "limit_usd": limit,
            "remaining_usd": left,
            "usage_usd": round(limit - left, 4),
            "limit_reset": None,
            "status": "critical" if left < limit * 0.05 else "ok",
        }
    return rows


def seed(url: str, days: float, keys: int) -> dict[str, int]:
    """The store the web face reads: its history, its rollups, a snapshot and the key table."""
    flushdb(url)
    now = datetime.now(UTC)
    series = history_of(days, now)
    store = Store(connect(url), Keyspace(PREFIX), retention_s=days * 86400 + 3600, url=url)
    try:
        write_stream(store.redis, store.keys, series[:-1], store.retention_s)
        last = series[-1]
        figures: dict[str, Any] = {"remaining_usd": last.remaining_usd, "usage_usd": last.usage_usd}
        figures |= {"source": "account", "checked_at": last.at.isoformat()}
        figures |= {"burn_rate_usd_per_hour": 0.2, "runway_hours": last.remaining_usd / 0.2}
        store.record_success(figures, last.status, last.at)
        checks = store.rebuild_rollups()
        store.commit(Commit(now, keys=fleet(keys)))
        if store.redis.hlen(store.keys.keys_current) != keys:
            raise BenchError("the key table does not hold the bench's fleet")
    finally:
        store.close()
    return {"checks": checks, "keys": keys}


def _serve(url: str, days: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDIT_", "REDIS_"))}
    env |= {
        "REDIS_URL": url,
        "CREDIT_REDIS_PREFIX": PREFIX,
        "CREDIT_HISTORY_RETENTION_DAYS": f"{days + 1:g}",
        "CREDIT_CHECK_INTERVAL_MINUTES": "1",
    }
    binary = Path(sys.executable).parent / "credit-monitor"
    proc = subprocess.Popen(
        [str(binary), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"credit-monitor serve exited with {proc.returncode}")
        try:
            return httpx.get(base + "/healthz", timeout=2).status_code < 600
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 30, "credit-monitor serve to answer")
    except TimeoutError as exc:
        stop_process(proc)
        raise BenchError(str(exc)) from None
    return proc, base


def _timed(rounds: int, calls: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Each call `rounds` times, taking turns (rotated each round), after a warm-up."""
    names = list(calls)
    for _ in range(WARMUP):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - started)
    return samples


def run(svc: Services, *, days: float, keys: int, rounds: int) -> dict[str, Any]:
    """Seed the store, serve it, and time the three answers beside their raw reads."""
    url = svc.url(DB_WEB)
    seeded = seed(url, days, keys)
    proc, base = _serve(url, days)
    store = Store(connect(url), Keyspace(PREFIX), retention_s=days * 86400 + 3600, url=url)
    http = httpx.Client(base_url=base, timeout=30)
    hours = days * 24
    month_h = min(hours, 720.0)

    def get(path: str) -> Callable[[], object]:
        def call() -> object:
            answer = http.get(path)
            if answer.status_code != 200:
                raise BenchError(f"{path} answered {answer.status_code}")
            return answer.content

        return call

    def raw(hours_back: float) -> Callable[[], object]:
        def call() -> object:
            end = datetime.now(UTC)
            return store.history(end - timedelta(hours=hours_back), end)

        return call

    def raw_keys() -> object:
        return [json.loads(row) for row in store.redis.hvals(store.keys.keys_current)]

    try:
        history = http.get("/api/history", params={"hours": f"{hours:g}"}).json()
        page = http.get("/").text
        samples = _timed(
            rounds,
            {
                "page": get("/"),
                "healthz": get("/healthz"),
                "history": get(f"/api/history?hours={hours:g}"),
                "history_30d": get(f"/api/history?hours={month_h:g}"),
                "metrics": get("/metrics"),
                "raw_keys": raw_keys,
            },
        )
        # the raw reads are long: fewer of them, after the others
        raw_samples = _timed(max(1, rounds // 10), {"raw": raw(hours), "raw_30d": raw(month_h)})
        scrape = http.get("/metrics").text
    finally:
        http.close()
        store.close()
        stop_process(proc)
        flushdb(url)
    stats = {name: summary_ms(s) for name, s in (samples | raw_samples).items()}
    return {
        **seeded,
        "days": days,
        "rounds": rounds,
        "history_buckets": len(history["buckets"]),
        "history_bucket_s": history["bucket_s"],
        "page_bytes": len(page.encode()),
        "page_key_rows": page.count("<tr class="),
        "metrics_samples": sum(1 for line in scrape.splitlines() if line.startswith("openrouter_")),
        "ms": stats,
        "history_speedup": round(stats["raw"]["median_ms"] / stats["history"]["median_ms"], 1),
    }
