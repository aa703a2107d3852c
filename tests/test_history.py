"""History arithmetic: spend counts falls only, burn rate, summary and the JSON report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from credit_tasks import rollup
from credit_tasks.history import Point, burn_rate_usd_per_hour, spend_usd, summarize

T0 = datetime(2026, 3, 4, 0, 0, 0, tzinfo=UTC)


def timeline(*rows: tuple[float, float | None]) -> list[Point]:
    """Points from (hours after T0, remaining dollars) rows."""
    return [
        Point(
            timestamp=T0 + timedelta(hours=h),
            remaining_usd=r,
            usage_usd=None if r is None else 100.0 - r,
            status="ok",
            source="credits",
        )
        for h, r in rows
    ]


def balances(*remaining: float | None) -> list[Point]:
    return timeline(*((float(i), r) for i, r in enumerate(remaining)))


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param(balances(), None, id="no points"),
        pytest.param(balances(10.0), None, id="one point"),
        pytest.param(balances(10.0, None), None, id="one known balance"),
        pytest.param(balances(None, None, None), None, id="no known balance"),
        pytest.param(balances(10.0, 8.0), 2.0, id="one fall"),
        pytest.param(balances(10.0, 8.0, 7.5), 2.5, id="two falls"),
        pytest.param(balances(10.0, 8.0, 20.0, 15.0), 7.0, id="a top-up is not negative spend"),
        pytest.param(balances(5.0, 9.0), 0.0, id="only a top-up"),
        pytest.param(balances(5.0, 5.0), 0.0, id="flat"),
        pytest.param(balances(10.0, None, 7.0), 3.0, id="unknown balances are skipped"),
        pytest.param(balances(None, 10.0, None, 6.0, None), 4.0, id="unknown at both ends"),
    ],
)
def test_spend_sums_the_falls_of_the_balance(points: list[Point], expected: float | None) -> None:
    spent = spend_usd(points)
    if expected is None:
        assert spent is None
    else:
        assert spent == pytest.approx(expected)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param(timeline((0, 10.0), (2, 6.0)), 2.0, id="steady fall"),
        pytest.param(timeline((0, 10.0), (1, 8.0), (2, 20.0), (4, 16.0)), 1.5, id="with a top-up"),
        pytest.param(
            timeline((0, None), (1, 10.0), (3, 6.0), (5, None)),
            2.0,
            id="between the first and last known balance",
        ),
        pytest.param(timeline((0, 10.0), (0.5, 10.0)), 0.0, id="nothing spent"),
        pytest.param(timeline((0, 10.0)), None, id="one point"),
        pytest.param(timeline((0, 10.0), (3, None)), None, id="one known balance"),
        pytest.param(timeline(), None, id="no points"),
    ],
)
def test_burn_rate_is_spend_per_hour(points: list[Point], expected: float | None) -> None:
    rate = burn_rate_usd_per_hour(points)
    if expected is None:
        assert rate is None
    else:
        assert rate == pytest.approx(expected)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param(
            timeline((0, 10.0), (1, 8.0), (2, 20.0), (4, 16.0)),
            {
                "points": 4,
                "first_remaining_usd": 10.0,
                "last_remaining_usd": 16.0,
                "min_remaining_usd": 8.0,
                "max_remaining_usd": 20.0,
                "spend_usd": 6.0,
                "burn_rate_usd_per_hour": 1.5,
                "runway_hours": 10.67,  # $16 at $1.50 an hour
            },
            id="a window with a top-up",
        ),
        pytest.param(
            timeline((0, None), (1, 9.0), (2, None), (3, 7.0)),
            {
                "points": 4,
                "first_remaining_usd": 9.0,
                "last_remaining_usd": 7.0,
                "min_remaining_usd": 7.0,
                "max_remaining_usd": 9.0,
                "spend_usd": 2.0,
                "burn_rate_usd_per_hour": 1.0,
                "runway_hours": 7.0,
            },
            id="unknown balances are left out",
        ),
        pytest.param(
            timeline((0, 3.0)),
            {
                "points": 1,
                "first_remaining_usd": 3.0,
                "last_remaining_usd": 3.0,
                "min_remaining_usd": 3.0,
                "max_remaining_usd": 3.0,
                "spend_usd": None,
                "burn_rate_usd_per_hour": None,
                "runway_hours": None,
            },
            id="one point",
        ),
        pytest.param(
            timeline(),
            {
                "points": 0,
                "first_remaining_usd": None,
                "last_remaining_usd": None,
                "min_remaining_usd": None,
                "max_remaining_usd": None,
                "spend_usd": None,
                "burn_rate_usd_per_hour": None,
                "runway_hours": None,
            },
            id="no points",
        ),
    ],
)
def test_summarize_gives_the_window_at_a_glance(
    points: list[Point], expected: dict[str, object]
) -> None:
    assert summarize(points) == pytest.approx(expected)


def test_report_is_json_with_the_buckets_and_their_summary() -> None:
    points = timeline((0, 10.0), (1, None), (2, 7.5))
    buckets = rollup.bucketize(points, 3600)
    data = json.loads(json.dumps(rollup.report(24, 3600, buckets)))
    assert data["hours"] == 24 and data["bucket_s"] == 3600
    assert data["summary"] == pytest.approx(summarize(points) | {"points": 2})
    assert data["buckets"] == [
        {
            "start": "2026-03-04T00:00:00+00:00",
            "checks": 1,
            "min_usd": 10.0,
            "max_usd": 10.0,
            "last_usd": 10.0,
            "first_usd": 10.0,
            "topup_usd": 0.0,
        },
        {
            "start": "2026-03-04T02:00:00+00:00",
            "checks": 1,
            "min_usd": 7.5,
            "max_usd": 7.5,
            "last_usd": 7.5,
            "first_usd": 7.5,
            "topup_usd": 0.0,
        },
    ]


def test_an_empty_report_is_still_json() -> None:
    data = json.loads(json.dumps(rollup.report(1.5, 5, [])))
    assert data == {
        "hours": 1.5,
        "bucket_s": 5,
        "buckets": [],
        "summary": summarize([]) | {"points": 0},
    }


@pytest.mark.parametrize(
    ("remaining_usd", "rate", "expected"),
    [
        (8.2, 0.43, 8.2 / 0.43),
        (10.0, 0.0, None),
        (10.0, None, None),
        (None, 1.0, None),
        (-0.5, 2.0, 0.0),  # overspent: no time left, never a negative runway
    ],
)
def test_runway_is_the_balance_over_the_burn_rate_when_money_burns(
    remaining_usd: float | None, rate: float | None, expected: float | None
) -> None:
    from credit_tasks.history import runway_hours

    assert runway_hours(remaining_usd, rate) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("points", "min_span_h", "rate", "span_h"),
    [
        (timeline((0, 50.0), (1, 45.0)), 1.0, 5.0, 1.0),
        (timeline((0, 50.0), (0.5, 45.0)), 1.0, None, 0.5),  # half an hour: a burst, no pace
        (timeline((0, 50.0), (1 / 3600, 49.0)), 1.0, None, 1 / 3600),  # one second apart
        (timeline((0, 50.0), (1 / 3600, 49.0)), 0.0, 3600.0, 1 / 3600),  # unless asked
        (timeline((0, 50.0), (1, None), (3, 44.0)), 1.0, 2.0, 3.0),
        (timeline((0, 50.0)), 0.0, None, 0.0),
    ],
)
def test_the_burn_rate_waits_for_the_minimum_span_of_history(
    points: list[Point], min_span_h: float, rate: float | None, span_h: float
) -> None:
    from credit_tasks.history import paced_burn_rate, span_hours

    assert paced_burn_rate(points, min_span_h) == pytest.approx(rate)
    assert span_hours(points) == pytest.approx(span_h)
