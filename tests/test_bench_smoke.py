"""The benchmarks at a tiny size, so they do not rot: well-formed figures, never the targets.

One smoke run (`bench.run` with `--smoke` sizes) starts its own redis-server, simulator and
worker, and every test below reads what it produced.
"""

from __future__ import annotations

import json
import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from bench import breakdown, history, keys, run, table
from bench.common import services
from credit_tasks.store import Store


def _children() -> set[int]:
    """Live processes whose parent is this one."""
    me, out = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone while we looked
            if int(fields[1]) == me and fields[0] != "Z":
                out.add(int(entry.name))
    return out


def _bench_workers() -> list[int]:
    """Any process left from a bench worker, wherever it was reparented."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"--hostname=bench@" in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    before = _children()
    results = run.run_all(run.SMOKE, out, progress=False)
    return {
        "results": results,
        "file": out,
        "new_children": _children() - before,
        "workers": _bench_workers(),
    }


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_the_smoke_run_writes_the_results_it_returns(smoke: dict[str, Any]) -> None:
    written = json.loads(smoke["file"].read_text())
    assert written == smoke["results"]
    assert not smoke["file"].with_name("results.json.tmp").exists()
    assert written["sizes"] == {
        "points": 2_000,
        "rounds_24h": 1,
        "rounds_30d": 1,
        "retention_days": 0.25,
        "check_reps": 3,
        "crossings": 2,
        "keys": 250,
        "keys_reps": 2,
        "latency_ms": 100.0,
        "latency_reps": 1,
        "web_days": 1.0,
        "web_keys": 250,
        "web_rounds": 2,
    }
    assert written["machine"]["nproc"] >= 1 and written["machine"]["redis_server"]


def test_history_measures_memory_and_reads_of_both_layouts(smoke: dict[str, Any]) -> None:
    h = smoke["results"]["benchmarks"]["history"]
    for layout in ("stream", "baseline"):
        assert _positive(h[layout]["bytes_per_point"])
        assert h[layout]["read_24h"]["points"] == 1_440
        assert h[layout]["read_30d"]["points"] == 2_000  # the whole tiny series
        assert _positive(h[layout]["read_24h"]["median_s"])
        assert _positive(h[layout]["read_30d"]["median_s"])
        assert _positive(h[layout]["read_24h"]["server_s"])
    assert _positive(h["stream"]["xrange_only_24h"]["median_s"])
    assert _positive(h["memory_ratio"]) and _positive(h["speedup_24h"])


def test_history_writes_past_the_retention_and_reports_the_stream_length(
    smoke: dict[str, Any],
) -> None:
    r = smoke["results"]["benchmarks"]["history"]["retention"]
    assert r["retention_points"] == 360 and r["written"] == 2_000
    assert 0 < r["final_xlen"] < r["written"]  # trimmed, whatever the margin
    assert [s["written"] for s in r["samples"]][-1] == 2_000


def test_check_cost_times_both_ways_and_counts_their_round_trips(smoke: dict[str, Any]) -> None:
    c = smoke["results"]["benchmarks"]["check_cost"]
    for way in ("run_check", "floor"):
        assert c[way]["n"] == 3
        assert _positive(c[way]["median_ms"]) and c[way]["p95_ms"] >= c[way]["median_ms"]
        assert c[way]["http_requests"] >= 2
    assert c["floor"]["redis_round_trips"] == 1 and c["floor"]["http_requests"] == 2
    # the second floor makes the check's own requests, bare: it must follow the check's
    listing = c["floor_with_keys"]
    assert listing["redis_round_trips"] == 1
    assert listing["http_requests"] == c["run_check"]["http_requests"] == 4
    assert _positive(c["ratio_median"]) and _positive(c["ratio_floors"])


def test_alert_latency_times_each_crossing_through_the_worker(smoke: dict[str, Any]) -> None:
    a = smoke["results"]["benchmarks"]["alert_latency"]
    assert a["from_check_start"]["n"] == a["from_enqueue"]["n"] == 2
    assert _positive(a["from_check_start"]["median_ms"])
    assert a["from_enqueue"]["median_ms"] >= a["from_check_start"]["min_ms"]
    assert _positive(a["api"]["per_check_ms"])
    assert math.isfinite(a["beyond_api_p95_ms"])


def test_the_keys_benchmark_times_first_and_steady_checks_of_the_whole_fleet(
    smoke: dict[str, Any],
) -> None:
    k = smoke["results"]["benchmarks"]["keys_10k"]
    assert k["keys"] == 250 and k["pages"] == 3  # the bench's own key tips it into a third
    assert k["alerts_first"] == 30  # 3 critical and 7 warning in every 100
    for way in ("first", "steady", "floor"):
        assert k[way]["n"] == 2 and _positive(k[way]["median_ms"])
    assert _positive(k["ratio_first"]) and _positive(k["ratio_steady"])


def test_the_latency_benchmark_times_checks_with_pages_at_once_and_one_after_another(
    smoke: dict[str, Any],
) -> None:
    k = smoke["results"]["benchmarks"]["keys_at_latency"]
    assert (k["keys"], k["pages"], k["latency_ms"], k["page_concurrency"]) == (250, 3, 100.0, 8)
    for way in ("concurrent", "sequential"):
        assert k[way]["n"] == 1 and _positive(k[way]["median_ms"])
    # /key, then /credits beside the pages: 2 waits at once against 3 in a row, at least
    assert k["concurrent"]["median_ms"] >= 300 and k["sequential"]["median_ms"] >= 400
    assert _positive(k["speedup"])


def test_the_keys_benchmark_counts_round_trips_at_three_fleet_sizes(
    smoke: dict[str, Any],
) -> None:
    k = smoke["results"]["benchmarks"]["keys_10k"]
    assert [(c["keys"], c["pages"]) for c in k["counted"]] == [(2, 1), (25, 1), (250, 3)]
    assert [c["pages_asked"] for c in k["counted"]] == [1, 1, 4]
    for c in k["counted"]:
        for which in ("first", "steady"):
            figures = c[which]
            assert figures["redis_round_trips"] >= 1 and figures["redis_commands"] >= 1
            # /key, /credits, /workspaces, the pages asked (windows of 1, 1, 2, ...: 4 for a
            # fleet of 3 pages), and /activity once a day (the first check of an empty store
            # reads it; the steady one finds it cached)
            usual = 1 if which == "first" else 0
            assert figures["http_requests"] == c["pages_asked"] + 3 + usual
            assert _positive(figures["wall_ms"]) and _positive(figures["http_ms"])
            assert _positive(figures["redis_ms"]) and _positive(figures["list_keys_ms"])
            parts = figures["http_ms"] + figures["redis_ms"] + figures["python_ms"]
            assert math.isclose(parts, figures["wall_ms"], abs_tol=0.01)
            # pages side by side count once: no part is negative
            assert figures["python_ms"] > 0 and figures["http_ms"] < figures["wall_ms"]
        # a first check writes what it alerts about; a steady one writes no alert
        assert c["first"]["redis_commands"] > c["steady"]["redis_commands"]
    assert isinstance(k["round_trips_flat"], bool)


def test_time_in_flight_counts_overlapping_requests_once() -> None:
    assert keys.in_flight_s([]) == 0
    assert keys.in_flight_s([(0, 2), (1, 3), (5, 6)]) == 4  # 0-3 and 5-6
    assert keys.in_flight_s([(1, 4), (0, 5), (2, 3)]) == 5  # one inside another


def test_the_table_puts_each_figure_beside_its_baseline_or_floor(smoke: dict[str, Any]) -> None:
    rows = smoke["results"]["table"]
    text = table.render(rows)
    assert text.splitlines()[0].split() == [
        "benchmark",
        "figure",
        "credit_tasks",
        "baseline",
        "/",
        "floor",
        "ratio",
        "target",
        "met",
    ]
    assert len(text.splitlines()) == len(rows) + 2
    targeted = [r for r in rows if r["target"] != "-"]
    assert len(targeted) == 14 and all(isinstance(r["met"], bool) for r in targeted)
    assert all(r["against"] for r in rows)


def test_the_web_bench_times_the_page_the_history_and_the_scrape_beside_raw_reads(
    smoke: dict[str, Any],
) -> None:
    w = smoke["results"]["benchmarks"]["web"]
    assert w["checks"] == 1_440 and w["keys"] == 250
    assert 0 < w["history_buckets"] <= 1_000
    assert w["page_key_rows"] == 50  # the first page of keys, not the whole fleet
    assert w["metrics_samples"] >= 3 * 250  # limit, remaining and status of each key
    for name in ("page", "healthz", "history", "history_30d", "metrics", "raw_keys"):
        assert w["ms"][name]["n"] == 2 and _positive(w["ms"][name]["median_ms"])
    for name in ("raw", "raw_30d"):
        assert w["ms"][name]["n"] == 1 and _positive(w["ms"][name]["median_ms"])
    assert _positive(w["history_speedup"])


def test_the_bench_leaves_no_process_behind(smoke: dict[str, Any]) -> None:
    assert smoke["new_children"] == set()
    assert smoke["workers"] == []


def test_the_bench_writes_timeline_entries_exactly_as_record_success_does(
    store: Store, rdb: redis.Redis
) -> None:
    point = history.year(1)[0]
    snapshot = {
        "remaining_usd": point.remaining_usd,
        "usage_usd": point.usage_usd,
        "source": point.source,
    }
    store.record_success(snapshot, point.status, point.at)
    later = history.Point(
        point.at + timedelta(minutes=1), point.remaining_usd, point.usage_usd, point.status
    )
    history.write_stream(rdb, store.keys, [later], store.retention_s)
    entries: Any = rdb.xrange(store.keys.timeline)
    (first_id, by_store), (second_id, by_bench) = entries
    assert by_bench == by_store
    assert int(second_id.split("-")[0]) == later.ms and int(first_id.split("-")[0]) == point.ms


def test_the_breakdown_times_the_check_beside_its_parts_and_per_interval() -> None:
    with services() as svc:
        medians = breakdown.parts(svc, rounds=2)
        intervals = breakdown.by_interval(svc, rounds=2, intervals_min=(30, 60))
    assert len(medians) == 5 and all(_positive(ms) for ms in medians.values())
    assert [(row["interval_min"], row["points"]) for row in intervals] == [(30, 48), (60, 24)]
    assert all(_positive(row["run_check_ms"]) for row in intervals)
