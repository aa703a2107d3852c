"""The chart's SVG: one vertex per bucket, threshold lines always in view, marks and top-ups."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from credit_tasks.history import Point
from credit_tasks.rollup import bucketize
from credit_tasks.web.chart import BOTTOM, HEIGHT, TOP, Marker, render

T0 = datetime(2026, 3, 4, tzinfo=UTC)


def draw(values: list[float], markers: list[Marker] | None = None) -> str:
    points = [Point(T0 + timedelta(minutes=i), v, None, "ok", "x") for i, v in enumerate(values)]
    return render(
        bucketize(points, 60),
        start=T0 - timedelta(hours=1),
        end=T0 + timedelta(minutes=len(values)),
        warning_usd=10.0,
        critical_usd=5.0,
        markers=markers or [],
        label="Balance",
    )


def _y(svg: str, name: str) -> float:
    return float(re.search(rf'class="threshold {name}"[^>]*><line [^>]*y1="([\d.]+)"', svg)[1])  # type: ignore[index]


def test_each_bucket_is_one_vertex_of_the_line() -> None:
    svg = draw([30.0, 29.0, 28.5, 27.0])
    points = re.search(r'<polyline class="balance" points="([^"]+)"', svg)[1]  # type: ignore[index]
    assert len(points.split()) == 4 and 'data-points="4"' in svg


def test_the_threshold_lines_stay_in_view_far_above_the_balance() -> None:
    svg = draw([500.0, 480.0])
    for name in ("warning", "critical"):
        assert TOP <= _y(svg, name) <= HEIGHT
    assert _y(svg, "critical") > _y(svg, "warning")  # lower money, lower on the chart


def test_a_negative_balance_is_drawn_below_zero_inside_the_chart() -> None:
    svg = draw([2.0, -1.5])
    points = re.search(r'<polyline class="balance" points="([^"]+)"', svg)[1]  # type: ignore[index]
    lowest = max(float(p.split(",")[1]) for p in points.split())
    zero = float(re.search(r'y1="([\d.]+)" y2="[\d.]+"/><text [^>]*>\$0\.00<', svg)[1])  # type: ignore[index]
    assert zero < lowest <= HEIGHT - BOTTOM


def test_alerts_in_range_are_marked_and_top_ups_flagged() -> None:
    fired = Marker(T0 + timedelta(minutes=1), "critical", "credits are critical")
    before = Marker(T0 - timedelta(days=3), "warning", "long ago")
    svg = draw([6.0, 4.0, 24.0], [fired, before])
    assert svg.count('class="marker alert-critical"') == 1
    assert "long ago" not in svg
    assert svg.count('class="topup"') == 1 and "top-up of $20.00" in svg


def test_an_empty_range_says_so_and_still_draws_the_lines() -> None:
    svg = draw([])
    assert "No checks in this range yet." in svg and 'data-points="0"' in svg
    assert 'class="threshold warning"' in svg


def test_text_from_redis_is_escaped() -> None:
    svg = draw([12.0], [Marker(T0, "warning", "<script>alert(1)</script>")])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
