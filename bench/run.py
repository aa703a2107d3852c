"""`python -m bench.run`: every benchmark in one run, a table on stdout, `bench/results.json`.

`--smoke` runs each at a tiny size (the test suite does, so the benchmarks do not rot);
its figures say nothing about the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import check_cost, history, keys, latency, table, web
from .common import BenchError, machine, services

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Sizes:
    points: int
    rounds_24h: int
    rounds_30d: int
    retention_days: float
    check_reps: int
    crossings: int
    keys: int
    keys_reps: int
    latency_ms: float
    latency_reps: int
    web_days: float
    web_keys: int
    web_rounds: int


FULL = Sizes(
    points=525_600,  # a year of one-minute checks
    rounds_24h=20,
    rounds_30d=2,  # the baseline's 30 d read is 43,200 round trips: ~10 s here
    retention_days=history.DEFAULT_RETENTION_DAYS,
    check_reps=300,
    crossings=60,
    keys=10_000,  # 101 pages of /keys with the bench's own key
    keys_reps=5,
    latency_ms=100.0,  # every API request, as from a server far from OpenRouter
    latency_reps=3,
    web_days=90.0,  # 129,600 one-minute checks
    web_keys=10_000,
    web_rounds=40,
)
SMOKE = Sizes(
    points=2_000,
    rounds_24h=1,
    rounds_30d=1,
    retention_days=0.25,  # 360 points, so 2,000 writes go well past it
    check_reps=3,
    crossings=2,
    keys=250,  # 3 pages
    keys_reps=2,
    latency_ms=100.0,
    latency_reps=1,
    web_days=1.0,
    web_keys=250,
    web_rounds=2,
)


def _revision() -> str | None:
    """The commit measured, with "+dirty" when the work tree differs from it."""
    root = RESULTS.parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None  # no git: a copy, not a clone
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def run_all(sizes: Sizes, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Run every benchmark on fresh services, write `out`, and return the results."""

    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": _revision(),
        "sizes": asdict(sizes),
    }
    with services() as svc:
        results["machine"] = machine(svc.url(0))
        say(f"history: {sizes.points:,} points in each layout …")
        hist = history.run(
            svc,
            points=sizes.points,
            rounds_24h=sizes.rounds_24h,
            rounds_30d=sizes.rounds_30d,
            retention_days=sizes.retention_days,
        )
        say(f"cost per check: {sizes.check_reps} checks each way …")
        cost = check_cost.run(svc, reps=sizes.check_reps)
        say(f"alert latency: {sizes.crossings} crossings through a worker …")
        alert = latency.run(svc, crossings=sizes.crossings)
        say(f"{sizes.keys:,} keys: checks of a management key with a fleet of capped keys …")
        fleet = keys.run(svc, keys=sizes.keys, reps=sizes.keys_reps, say=say)
        say(f"{sizes.keys:,} keys at {sizes.latency_ms:g} ms per request, pages at once and not …")
        slow = keys.at_latency(svc, sizes.keys, sizes.latency_ms, sizes.latency_reps)
        say(f"web: {sizes.web_days:g} days of one-minute checks and {sizes.web_keys:,} keys …")
        face = web.run(svc, days=sizes.web_days, keys=sizes.web_keys, rounds=sizes.web_rounds)
    results["benchmarks"] = {
        "history": hist,
        "check_cost": cost,
        "alert_latency": alert,
        "keys_10k": fleet,
        "keys_at_latency": slow,
        "web": face,
    }
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["table"] = table.rows(results)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)  # a reader never sees half a file
    return results


def describe(results: dict[str, Any]) -> str:
    m = results["machine"]
    return (
        f"{m['nproc']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, Redis {m['redis_server']}, redis-py {m['redis_py']} "
        f"(hiredis: {m['hiredis'] or 'no'}), Celery {m['celery']}; "
        f"revision {results['revision']}; {results['duration_s']} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = parser.parse_args(argv)
    try:
        results = run_all(SMOKE if args.smoke else FULL, args.out)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(table.render(results["table"]))
    print(f"\n{describe(results)}; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
