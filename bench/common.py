"""What every benchmark shares: a private redis-server, the simulator, settings and statistics.

Each benchmark owns Redis databases of its own (numbered here, in one place), so one never
measures or flushes another's data.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import redis

from credit_tasks.procs import RedisServer, wait_until
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator

API_KEY = "sk-or-v1-bench-ordinary-0123456789abcdef0123456789abcdef"
MANAGEMENT_KEY = "sk-or-v1-bench-management-fedcba9876543210fedcba9876543210"
BIN = Path(sys.executable).parent

DB_STREAM = 2  # history: the project's stream timeline
DB_BASELINE = 3  # history: the original hash-per-entry layout
DB_RETENTION = 4  # history: a year written past the retention
DB_CHECK = 5  # cost per check
DB_LATENCY = 6  # alert latency: the worker's data
DB_BROKER = 7  # alert latency: the worker's broker and results
DB_KEYS = 8  # 10,000 keys
DB_WEB = 9  # the web face: 90 days of history and 10,000 keys

T = TypeVar("T")


class BenchError(Exception):
    """A benchmark could not run; the message says what to fix."""


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll `predicate` until it returns something truthy, or raise BenchError."""
    try:
        return wait_until(predicate, timeout_s, what)
    except TimeoutError as exc:
        raise BenchError(str(exc)) from None


@dataclass(frozen=True)
class Services:
    """The bench's own redis-server and simulator."""

    redis_base: str  # redis://127.0.0.1:<port>, without a db
    redis_pid: int
    sim: Simulator

    def url(self, db: int) -> str:
        return f"{self.redis_base}/{db}"


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """Start redis-server on a free port (data in a temp dir) and the simulator; stop both."""
    with tempfile.TemporaryDirectory(prefix="credit-bench-") as workdir:
        # no persistence: the bench measures memory and reads, never the disk
        server = RedisServer(Path(workdir), new_session=True)
        try:
            server.start()
        except FileNotFoundError:
            raise BenchError(
                "redis-server is not installed: run `make bench` (it installs it)"
            ) from None
        except (RuntimeError, TimeoutError) as exc:
            raise BenchError(str(exc)) from None
        try:
            assert server.proc is not None
            with Simulator() as sim:
                yield Services(server.url(), server.proc.pid, sim)
        finally:
            server.stop(grace_s=20.0)


def prime(sim: Simulator, balance_usd: float) -> None:
    """The simulator reset to one ordinary key (no cap), a management key and a balance."""
    sim.reset()
    set_balance(sim, balance_usd)
    sim.add_key(API_KEY, name="Bench")
    sim.add_key(MANAGEMENT_KEY, name="Bench management", management=True)


def set_balance(sim: Simulator, balance_usd: float) -> None:
    sim.set_account(total_credits=balance_usd + 1.0, total_usage=1.0)


def bench_settings(sim: Simulator, redis_url: str, **overrides: Any) -> Settings:
    """Settings for a check against the simulator, built directly (no environment)."""
    values: dict[str, Any] = {
        "openrouter_api_key": API_KEY,
        "openrouter_management_key": MANAGEMENT_KEY,
        "openrouter_base_url": sim.base_url,
        "redis_url": redis_url,
        "credit_retry_attempts": 2,
        "credit_retry_budget_s": 5.0,
        "credit_http_timeout_s": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def flushdb(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def percentile(samples: list[float], pct: int) -> float:
    """The `pct`-th percentile, interpolated; a single sample is its own percentile."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def summary_ms(samples_s: list[float]) -> dict[str, float | int]:
    """Median, p95, mean, min and max of durations in seconds, as milliseconds."""
    if not samples_s:
        raise BenchError("no samples to summarize")
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 4),
        "p95_ms": round(percentile(ms, 95), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "min_ms": round(min(ms), 4),
        "max_ms": round(max(ms), 4),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    return None


def machine(redis_url: str) -> dict[str, object]:
    """The machine and versions the figures come from."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        server: Any = client.info("server")
        memory: Any = client.info("memory")
    finally:
        client.close()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        # other work on the machine shows up as noise in every figure
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "redis_server": server["redis_version"],
        "redis_allocator": memory.get("mem_allocator", "unknown"),
        "redis_py": metadata.version("redis"),
        "hiredis": _version_or_none("hiredis"),
        "celery": metadata.version("celery"),
        "httpx": metadata.version("httpx"),
    }


def _version_or_none(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
