"""The results as rows: each figure beside its baseline or floor, the ratio, the target."""

from __future__ import annotations

from typing import Any

HEADER = ("benchmark", "figure", "credit_tasks", "baseline / floor", "ratio", "target", "met")
KEYS_TARGET_MS = 5_000.0  # one check of 10,000 keys on a 2-core machine
RETENTION_SLACK = 1.01  # MINID ~ trims whole 100-entry nodes: a few dozen points over


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value >= 10 else f"{value:,.2f} ms"


def _verdict(met: bool | None) -> str:
    return "-" if met is None else "yes" if met else "NO"


def _row(
    bench: str,
    figure: str,
    ours: str,
    against: str,
    ratio: str,
    target: str = "-",
    met: bool | None = None,
) -> dict[str, Any]:
    return {
        "benchmark": bench,
        "figure": figure,
        "credit_tasks": ours,
        "against": against,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def history_rows(h: dict[str, Any]) -> list[dict[str, Any]]:
    s, b, r = h["stream"], h["baseline"], h["retention"]
    over = r["final_over_retention"]
    return [
        _row(
            "1 history",
            f"memory per point ({h['points']:,} pts)",
            f"{s['bytes_per_point']:.1f} B",
            f"{b['bytes_per_point']:.1f} B",
            f"{h['memory_ratio']:.3f}x",
            "<= 0.2x",
            h["memory_ratio"] <= 0.2,
        ),
        _row(
            "1 history",
            f"24 h read ({s['read_24h']['points']:,} pts)",
            _ms(s["read_24h"]["median_s"] * 1000),
            _ms(b["read_24h"]["median_s"] * 1000),
            f"{h['speedup_24h']:.1f}x faster",
            ">= 20x faster",
            h["speedup_24h"] >= 20,
        ),
        _row(
            "1 history",
            "24 h read: time inside redis-server",
            _ms(s["read_24h"]["server_s"] * 1000),
            _ms(b["read_24h"]["server_s"] * 1000),
            f"{s['read_24h']['server_s'] / b['read_24h']['server_s']:.2f}x",
        ),
        _row(
            "1 history",
            f"30 d read ({s['read_30d']['points']:,} pts)",
            _ms(s["read_30d"]["median_s"] * 1000),
            _ms(b["read_30d"]["median_s"] * 1000),
            f"{h['speedup_30d']:.1f}x faster",
        ),
        _row(
            "1 history",
            f"stream length, {r['written']:,} pts at {r['retention_days']:g} d retention",
            f"{r['final_xlen']:,} (max {r['max_xlen_past_retention'] or r['final_xlen']:,})",
            f"{r['retention_points']:,} (retention's worth)",
            f"{over:.3f}x",
            f"<= {RETENTION_SLACK}x",
            over <= RETENTION_SLACK,
        ),
    ]


def check_rows(c: dict[str, Any]) -> list[dict[str, Any]]:
    ours, floor, listing = c["run_check"], c["floor"], c["floor_with_keys"]
    return [
        _row(
            "2 check cost",
            f"per check, median ({c['reps']} each)",
            _ms(ours["median_ms"]),
            _ms(floor["median_ms"]),
            f"{c['ratio_median']:.2f}x",
            "<= 1.5x",
            c["ratio_median"] <= 1.5,
        ),
        _row(
            "2 check cost",
            "per check, median, beside a floor making the check's own requests",
            _ms(ours["median_ms"]),
            _ms(listing["median_ms"]),
            f"{c['ratio_median_with_keys']:.2f}x",
        ),
        _row(
            "2 check cost",
            "the least a check making these requests costs: that floor / the floor",
            _ms(listing["median_ms"]),
            _ms(floor["median_ms"]),
            f"{c['ratio_floors']:.2f}x",
        ),
        _row(
            "2 check cost",
            "per check, p95",
            _ms(ours["p95_ms"]),
            _ms(floor["p95_ms"]),
            f"{c['ratio_p95']:.2f}x",
        ),
        _row(
            "2 check cost",
            "Redis round trips + HTTP requests",
            f"{ours['redis_round_trips']:g} + {ours['http_requests']:g}",
            f"{floor['redis_round_trips']:g} + {floor['http_requests']:g}"
            f" ({listing['redis_round_trips']:g} + {listing['http_requests']:g})",
            "-",
        ),
    ]


def latency_rows(a: dict[str, Any]) -> list[dict[str, Any]]:
    api = a["api"]["per_check_ms"]
    start, enqueue = a["from_check_start"], a["from_enqueue"]
    return [
        _row(
            "3 alert latency",
            f"check start -> message, p50 ({a['crossings']} crossings)",
            _ms(start["median_ms"]),
            _ms(api) + " (API)",
            f"+{_ms(a['beyond_api_p50_ms'])}",
        ),
        _row(
            "3 alert latency",
            "check start -> message, p95",
            _ms(start["p95_ms"]),
            _ms(api) + " (API)",
            f"+{_ms(a['beyond_api_p95_ms'])}",
            "<= +100 ms",
            a["beyond_api_p95_ms"] <= 100,
        ),
        _row(
            "3 alert latency",
            "enqueue -> message, p95",
            _ms(enqueue["p95_ms"]),
            _ms(api) + " (API)",
            f"+{_ms(a['enqueue_beyond_api_p95_ms'])}",
        ),
    ]


def keys_rows(k: dict[str, Any]) -> list[dict[str, Any]]:
    floor = f"{_ms(k['floor']['median_ms'])} (API, {k['pages'] + 2} GETs)"
    counted = k["counted"]
    sizes = " / ".join(f"{c['keys']:,}" for c in counted)
    split = counted[-1]["steady"]
    out = [
        _row(
            "4 10,000 keys",
            f"first check, median ({k['reps']} each, {k['alerts_first']:,} alerts)",
            _ms(k["first"]["median_ms"]),
            floor,
            f"{k['ratio_first']:.2f}x",
            "<= 5 s",
            k["first"]["median_ms"] <= KEYS_TARGET_MS,
        ),
        _row(
            "4 10,000 keys",
            "steady check, median (nothing changes)",
            _ms(k["steady"]["median_ms"]),
            floor,
            f"{k['ratio_steady']:.2f}x",
            "<= 5 s",
            k["steady"]["median_ms"] <= KEYS_TARGET_MS,
        ),
    ]
    for which in ("first", "steady"):
        trips = [c[which]["redis_round_trips"] for c in counted]
        out.append(
            _row(
                "4 10,000 keys",
                f"Redis round trips, {which} check, at {sizes} keys",
                " / ".join(f"{t:g}" for t in trips),
                "-",
                "-",
                "not growing",
                max(trips[1:]) <= trips[0],
            )
        )
    out.append(
        _row(
            "4 10,000 keys",
            f"steady check at {counted[-1]['keys']:,} keys: HTTP / Redis / Python",
            f"{split['http_ms']:,.0f} / {split['redis_ms']:,.0f} / {split['python_ms']:,.0f} ms",
            f"{split['wall_ms']:,.0f} ms (the whole check)",
            "-",
        )
    )
    return out


def keys_latency_rows(k: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _row(
            "6 API latency",
            f"{k['keys']:,} keys at {k['latency_ms']:g} ms per request: a check "
            f"({k['pages']} pages, {k['page_concurrency']} at once)",
            _ms(k["concurrent"]["median_ms"]),
            _ms(k["sequential"]["median_ms"]) + " (one after another)",
            f"{k['speedup']:.1f}x faster",
            "<= 5 s",
            k["concurrent"]["median_ms"] <= KEYS_TARGET_MS,
        )
    ]


def web_rows(w: dict[str, Any]) -> list[dict[str, Any]]:
    ms = w["ms"]
    days = f"{w['days']:g} d"
    setup = f"{w['checks']:,} checks, {w['keys']:,} keys"
    return [
        _row(
            "5 web",
            f"GET / ({setup}; {w['page_key_rows']} key rows)",
            _ms(ms["page"]["median_ms"]),
            _ms(ms["healthz"]["median_ms"]) + " (GET /healthz)",
            f"{ms['page']['median_ms'] / ms['healthz']['median_ms']:.1f}x",
            "<= 100 ms",
            ms["page"]["median_ms"] <= 100,
        ),
        _row(
            "5 web",
            f"GET /api/history, {days} ({w['history_buckets']} buckets, {w['history_bucket_s']} s)",
            _ms(ms["history"]["median_ms"]),
            _ms(ms["raw"]["median_ms"]) + f" (raw read, {days})",
            f"{w['history_speedup']:.1f}x faster",
            "<= 25 ms",
            ms["history"]["median_ms"] <= 25,
        ),
        _row(
            "5 web",
            "GET /api/history, 30 d (or the whole history when shorter)",
            _ms(ms["history_30d"]["median_ms"]),
            _ms(ms["raw_30d"]["median_ms"]) + " (raw read)",
            f"{ms['raw_30d']['median_ms'] / ms['history_30d']['median_ms']:.1f}x faster",
            "<= 25 ms",
            ms["history_30d"]["median_ms"] <= 25,
        ),
        _row(
            "5 web",
            f"GET /metrics ({w['metrics_samples']:,} samples)",
            _ms(ms["metrics"]["median_ms"]),
            _ms(ms["raw_keys"]["median_ms"]) + " (raw read of the key table)",
            f"{ms['metrics']['median_ms'] / ms['raw_keys']['median_ms']:.1f}x",
            "<= 250 ms",
            ms["metrics"]["median_ms"] <= 250,
        ),
    ]


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    b = results["benchmarks"]
    return (
        history_rows(b["history"])
        + check_rows(b["check_cost"])
        + latency_rows(b["alert_latency"])
        + keys_rows(b["keys_10k"])
        + web_rows(b["web"])
        + (keys_latency_rows(b["keys_at_latency"]) if "keys_at_latency" in b else [])
    )


def render(table: list[dict[str, Any]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [list(HEADER)] + [
        [
            r["benchmark"],
            r["figure"],
            r["credit_tasks"],
            r["against"],
            r["ratio"],
            r["target"],
            _verdict(r["met"]),
        ]
        for r in table
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
