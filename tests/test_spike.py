"""The spike's arithmetic as tables: the usual pace, the window's spend, each key's growth."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from credit_tasks import spike
from credit_tasks.history import Point
from credit_tasks.rules import KeySpend

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = T0.date()
HOUR = timedelta(hours=1)


def days(*spend_usd: float) -> dict[str, float]:
    """Daily totals of the days before TODAY: the first figure is yesterday's."""
    return {(TODAY - timedelta(days=n)).isoformat(): usd for n, usd in enumerate(spend_usd, 1)}


@pytest.mark.parametrize(
    ("daily", "usual"),
    [
        (days(24, 24, 24, 24, 24, 24, 24), 1.0),
        (days(12.24, 12.24, 12.24, 12.24, 12.24, 12.24, 12.24), 0.51),
        (days(24, 24, 24, 480, 24, 24, 24), 1.0),  # one bad day does not move the median
        (days(48, 48, 48, 48), 2.0),  # three days of nothing, four of $48: the median is $48
        (days(48, 48, 48), 0.0),  # four days of nothing: the median of 7 is $0
        (days(48, 48, 48, 48, 0, 0, 0, 999), 2.0),  # the 8th day back is not counted
        ({TODAY.isoformat(): 500.0, **days(24)}, 0.0),  # today is never complete
        ({}, None),  # no row in 7 days: no usual pace at all
        (days(0, 0, 0, 0, 0, 0, 0, 24), 0.0),  # rows with no spend still say "usually $0"
    ],
)
def test_the_usual_pace_is_the_median_day_of_the_last_7_over_24(
    daily: dict[str, float], usual: float | None
) -> None:
    result = spike.activity_baseline(daily, TODAY)
    assert result == (None if usual is None else pytest.approx(usual))


def test_activity_rows_are_summed_per_date() -> None:
    rows = [("2026-11-25", 1.0), ("2026-11-25", 0.5), ("2026-11-24", 2.0)]
    assert spike.daily_totals(rows) == {"2026-11-25": 1.5, "2026-11-24": 2.0}


def point(minutes: float, remaining: float | None, usage: float | None = None) -> Point:
    return Point(T0 + timedelta(minutes=minutes), remaining, usage, "ok", "account")


@pytest.mark.parametrize(
    ("points", "spent"),
    [
        ([point(0, 50.0), point(30, 40.0), point(60, 35.8)], 14.2),
        ([point(0, 50.0), point(30, 100.0), point(60, 95.0)], 5.0),  # a top-up is not spend
        ([point(0, 50.0), point(30, 150.0)], 0.0),
        ([point(0, None, 1.0), point(30, None, 4.5)], 3.5),  # no balance: the key's usage
        ([point(0, 50.0)], 0.0),
        ([], 0.0),
    ],
)
def test_the_window_spend_counts_falls_and_never_a_top_up(
    points: list[Point], spent: float
) -> None:
    assert spike.window_spend(points) == pytest.approx(spent)


def history(hours_back: float, every_h: float, usd_per_hour: float) -> list[Point]:
    """Checks from `hours_back` hours before T0 up to T0, spending at a steady pace."""
    count = int(hours_back / every_h)
    return [
        Point(T0 - (count - i) * every_h * HOUR, 500.0 - i * every_h * usd_per_hour, None, "", "")
        for i in range(count + 1)
    ]


def test_a_history_of_24_hours_gives_the_pace_before_the_window() -> None:
    points = history(25, 0.5, 2.0)
    assert spike.history_baseline(points, T0, HOUR) == pytest.approx(2.0)
    # the window itself does not count: a burst in it leaves the usual pace alone
    burst = [*points[:-1], points[-1]._replace(remaining_usd=points[-1].remaining_usd - 40)]
    assert spike.history_baseline(burst, T0, HOUR) == pytest.approx(2.0)


@pytest.mark.parametrize("hours_back", [23.5, 12, 0])
def test_a_history_shorter_than_24_hours_gives_no_usual_pace(hours_back: float) -> None:
    assert spike.history_baseline(history(hours_back, 0.5, 2.0), T0, HOUR) is None


@pytest.mark.parametrize(
    ("raw", "now", "due"),
    [
        ({}, T0, True),
        (spike.baseline_record(TODAY, 0.5), T0, False),  # read today: not again
        (spike.baseline_record(TODAY - timedelta(days=1), 0.5), T0, True),
        (spike.baseline_record(TODAY, None), T0, False),  # no spend shown is an answer too
        (spike.failed_record({}, T0 - timedelta(minutes=30), "503"), T0, False),
        (spike.failed_record({}, T0 - timedelta(minutes=61), "503"), T0, True),
    ],
)
def test_activity_is_read_once_a_day_and_a_failure_an_hour_later(
    raw: dict[str, str], now: datetime, due: bool
) -> None:
    assert spike.baseline_due(raw, now) is due


@pytest.mark.parametrize(
    ("raw", "usual"),
    [
        (spike.baseline_record(TODAY, 0.51), 0.51),
        (spike.baseline_record(TODAY - timedelta(days=1), 0.51), 0.51),  # while a retry waits
        (spike.baseline_record(TODAY - timedelta(days=2), 0.51), None),  # too old
        (spike.failed_record(spike.baseline_record(TODAY, 0.51), T0, "503"), 0.51),
        (spike.baseline_record(TODAY, None), None),
        ({}, None),
    ],
)
def test_the_cached_usual_pace_serves_for_a_day(raw: dict[str, str], usual: float | None) -> None:
    assert spike.cached_baseline(raw, TODAY) == usual


def test_usage_samples_round_trip() -> None:
    samples = [(1764158400, 12.5), (1764159000, 13.25)]
    text = spike.encode_samples(samples)
    assert text == "1764158400:12.5;1764159000:13.25"
    assert spike.decode_samples(text) == samples
    assert spike.decode_samples(None) == spike.decode_samples("") == []


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def track(
    stored: dict[str, str], usages: dict[str, float], minutes: float, since: float | None
) -> spike.Tracked:
    now = at(minutes)
    return spike.track_usage(stored, usages, now, now - HOUR, None if since is None else at(since))


def test_a_key_grows_by_what_it_spent_since_the_windows_first_check() -> None:
    first = track({}, {"a": 10.0, "b": 5.0}, 0, None)
    assert first.growth_usd == {} and set(first.writes) == {"a", "b"}  # first sight
    second = track(first.writes, {"a": 10.0, "b": 18.9}, 30, since=0)
    assert second.growth_usd == {"b": pytest.approx(13.9)}
    assert list(second.writes) == ["b"]  # an idle key is not rewritten
    assert second.changed == ["b"]
    stored = {**first.writes, **second.writes}
    third = track(stored, {"a": 10.0, "b": 19.0}, 90, since=30)
    assert third.growth_usd == {"b": pytest.approx(0.1)}  # only since the window's first check


def test_a_key_no_longer_listed_is_removed_and_old_samples_are_dropped() -> None:
    stored = {
        "a": spike.encode_samples([(int(at(m).timestamp()), float(m)) for m in range(0, 300, 30)])
    }
    tracked = track({**stored, "gone": "1:1.0"}, {"a": 500.0}, 300, since=240)
    assert tracked.removed == ["gone"]
    kept = [ts for ts, _ in spike.decode_samples(tracked.writes["a"])]
    # the last sample before the window, those inside it, and this one
    assert kept == [int(at(m).timestamp()) for m in (240, 270, 300)]


def test_a_key_first_seen_inside_the_window_grows_from_its_first_sight() -> None:
    stored = {"new": spike.encode_samples([(int(at(20).timestamp()), 3.0)])}
    assert track(stored, {"new": 7.5}, 30, since=0).growth_usd == {"new": 4.5}


def test_the_top_keys_are_the_five_that_grew_most() -> None:
    growth = {f"h{i}": float(i) for i in range(8)}
    names = {f"h{i}": f"key-{i}" for i in range(8)}
    top = spike.top_keys(growth, names)
    assert top == tuple(KeySpend(f"h{i}", f"key-{i}", float(i)) for i in (7, 6, 5, 4, 3))
    assert spike.top_keys({}, names) == ()


def test_a_day_is_a_utc_date() -> None:
    assert spike.baseline_record(date(2026, 11, 26), 1.0)[spike.DAY] == "2026-11-26"
