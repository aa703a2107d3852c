"""History in buckets: the pure bucketing, and the levels the commit keeps as checks land."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import redis

from credit_tasks import rollup
from credit_tasks.history import Point, summarize
from credit_tasks.rollup import bucketize, merge
from credit_tasks.store import Store

T0 = datetime(2026, 3, 4, tzinfo=UTC)


def points(*pairs: tuple[float, float | None]) -> list[Point]:
    """Points at `minutes` after T0 with a balance (None: unknown)."""
    return [Point(T0 + timedelta(minutes=m), usd, None, "ok", "account") for m, usd in pairs]


def walk(count: int, every_s: float, seed: int = 3) -> list[Point]:
    """An account that spends unevenly and is topped up now and then."""
    rng = random.Random(seed)
    usd, out = 50.0, []
    for i in range(count):
        usd -= rng.random() * 0.2
        if usd < 5:
            usd += 40.0
        out.append(Point(T0 + timedelta(seconds=i * every_s), round(usd, 6), None, "ok", "x"))
    return out


def test_a_bucket_keeps_the_lowest_highest_first_and_last_balance_of_its_checks() -> None:
    [bucket] = bucketize(points((0, 10.0), (1, 4.0), (2, 12.0), (3, 9.0)), 300)
    assert (bucket.first_usd, bucket.min_usd, bucket.max_usd, bucket.last_usd) == (
        10.0,
        4.0,
        12.0,
        9.0,
    )
    assert bucket.checks == 4
    assert bucket.spent_usd == pytest.approx(6.0 + 3.0)  # 10 -> 4, 12 -> 9
    assert bucket.rise_usd == pytest.approx(8.0)  # 4 -> 12: a top-up


def test_a_dip_inside_a_bucket_is_never_averaged_away() -> None:
    many = points(*((m, 20.0) for m in range(59)), (59, 2.0), (60, 20.0))
    buckets = bucketize(many, 3600)
    assert min(b.min_usd for b in buckets) == 2.0


def test_buckets_align_on_the_epoch_and_skip_unknown_balances() -> None:
    buckets = bucketize(points((0, 10.0), (4, None), (6, 8.0), (11, 7.0)), 300)
    assert [b.start for b in buckets] == [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    assert [b.checks for b in buckets] == [1, 1, 1]


def test_a_bucket_survives_its_codec() -> None:
    [bucket] = bucketize(points((0, 10.25), (1, 3.5), (2, 7.125)), 900)
    assert rollup.decode(rollup.encode(bucket), 900) == bucket


@pytest.mark.parametrize("width_s", [600, 3600, 10800])
def test_merging_fine_buckets_gives_the_buckets_of_the_checks(width_s: int) -> None:
    series = walk(2_000, 61)
    merged = merge(bucketize(series, 300), width_s)
    direct = bucketize(series, width_s)
    assert len(merged) == len(direct)
    for a, b in zip(merged, direct, strict=True):
        assert (a.start_ms, a.checks, a.first_usd, a.last_usd) == (
            b.start_ms,
            b.checks,
            b.first_usd,
            b.last_usd,
        )
        assert (a.min_usd, a.max_usd) == (b.min_usd, b.max_usd)
        assert a.spent_usd == pytest.approx(b.spent_usd)
        assert a.rise_usd == pytest.approx(b.rise_usd)


def test_the_summary_of_buckets_is_the_summary_of_their_checks() -> None:
    series = walk(3_000, 60)
    for width_s in (60, 300, 3600):
        got = rollup.summarize(bucketize(series, width_s))
        assert got == pytest.approx(summarize(series))


def test_top_ups_show_in_the_bucket_where_the_balance_rose() -> None:
    buckets = bucketize(points((0, 6.0), (5, 5.0), (10, 25.0), (15, 24.0)), 300)
    assert rollup.topups(buckets) == pytest.approx([0.0, 0.0, 20.0, 0.0])


@pytest.mark.parametrize(
    ("hours", "level_s", "width_s"),
    [
        (1, 300, 5),
        (24, 300, 120),
        (24 * 7, 900, 900),
        (24 * 30, 3600, 3600),
        (24 * 90, 10800, 10800),
    ],
)
def test_each_range_is_answered_in_at_most_a_thousand_buckets(
    hours: float, level_s: int, width_s: int
) -> None:
    span_s = hours * 3600
    assert rollup.level_for(span_s) == level_s
    assert rollup.width_for(span_s) == width_s
    assert span_s / rollup.width_for(span_s, level_s) <= rollup.MAX_BUCKETS


def test_a_range_longer_than_the_levels_merges_the_coarsest_one() -> None:
    span_s = 5 * 365 * 86400
    width = rollup.width_for(span_s, rollup.LEVELS_S[-1])
    assert width % rollup.LEVELS_S[-1] == 0
    assert span_s / width <= rollup.MAX_BUCKETS


def test_no_bucket_gives_an_empty_summary() -> None:
    assert rollup.summarize([]) == summarize([]) | {"points": 0}


def _record(store: Store, series: list[Point]) -> None:
    for p in series:
        figures = {"remaining_usd": p.remaining_usd, "usage_usd": 1.0, "source": "account"}
        store.record_success(figures, "ok", p.timestamp)


def test_the_commit_keeps_every_level_as_the_checks_would_bucket(
    store: Store, rdb: redis.Redis
) -> None:
    series = walk(400, 47, seed=9)
    _record(store, series)
    for width_s in rollup.LEVELS_S:
        members = rdb.zrange(store.keys.rollup(width_s), 0, -1, withscores=True)
        stored = [rollup.decode(m, width_s) for m, _ in members]
        assert [int(score) for _, score in members] == [b.start_ms for b in stored]
        expected = bucketize(series, width_s)
        assert [(b.start_ms, b.checks, b.first_ms, b.last_ms) for b in stored] == [
            (b.start_ms, b.checks, b.first_ms, b.last_ms) for b in expected
        ]
        for got, want in zip(stored, expected, strict=True):
            assert (got.first_usd, got.last_usd, got.min_usd, got.max_usd) == pytest.approx(
                (want.first_usd, want.last_usd, want.min_usd, want.max_usd)
            )
            assert got.spent_usd == pytest.approx(want.spent_usd, abs=1e-9)
            assert got.rise_usd == pytest.approx(want.rise_usd, abs=1e-9)


def test_a_check_with_an_unknown_balance_adds_no_bucket(store: Store, rdb: redis.Redis) -> None:
    store.record_success({"remaining_usd": None, "usage_usd": 3.0, "source": "key"}, "ok", T0)
    assert all(rdb.zcard(store.keys.rollup(w)) == 0 for w in rollup.LEVELS_S)
    assert rdb.xlen(store.keys.timeline) == 1


def test_the_levels_are_trimmed_to_the_retention(store: Store, rdb: redis.Redis) -> None:
    day = Store(store.redis, store.keys, retention_s=86_400)
    series = [Point(T0 + timedelta(hours=h), 10.0 + h, None, "ok", "x") for h in range(72)]
    _record(day, series)
    for width_s in rollup.LEVELS_S:
        starts = [int(s) for _, s in rdb.zrange(store.keys.rollup(width_s), 0, -1, withscores=True)]
        cutoff = rollup.bucketize(series[-1:], width_s)[0].start_ms - 86_400_000
        assert min(starts) >= cutoff - width_s * 1000
        assert len(starts) <= 86_400 // width_s + 1


def test_short_ranges_are_read_from_the_checks_and_long_ones_from_the_levels(store: Store) -> None:
    series = walk(3_000, 60, seed=5)  # a little over two days of one-minute checks
    _record(store, series)
    end = series[-1].timestamp
    width, buckets = store.buckets(end - timedelta(hours=6), end)
    assert width == 30 and sum(b.checks for b in buckets) == 361  # both ends included
    width, buckets = store.buckets(end - timedelta(hours=48), end)
    assert width == 300 and len(buckets) <= rollup.MAX_BUCKETS
    assert sum(b.checks for b in buckets) >= 48 * 60
    assert min(b.min_usd for b in buckets) == min(
        p.remaining_usd for p in series if p.timestamp >= end - timedelta(hours=48, minutes=5)
    )


def test_a_young_history_is_bucketed_from_its_first_check_not_the_range(store: Store) -> None:
    series = walk(30, 4)  # two minutes of checks every 4 s, asked over a day
    _record(store, series)
    end = series[-1].timestamp
    width, buckets = store.buckets(end - timedelta(hours=24), end)
    assert width == 1 and len(buckets) == 30


def test_history_written_before_the_levels_is_read_from_its_newest_checks(
    store: Store, rdb: redis.Redis
) -> None:
    series = walk(1_500, 60, seed=2)
    _record(store, series)
    for width_s in rollup.LEVELS_S:
        rdb.delete(store.keys.rollup(width_s))
    end = series[-1].timestamp
    _, buckets = store.buckets(end - timedelta(hours=48), end)
    assert sum(b.checks for b in buckets) == rollup.MAX_BUCKETS
    assert buckets[-1].last_usd == series[-1].remaining_usd
    assert store.rebuild_rollups() == 1_500
    _, buckets = store.buckets(end - timedelta(hours=48), end)
    assert sum(b.checks for b in buckets) == 1_500


def test_rebuilt_levels_equal_the_levels_the_commits_wrote(store: Store, rdb: redis.Redis) -> None:
    _record(store, walk(500, 113, seed=4))
    written = {w: rdb.zrange(store.keys.rollup(w), 0, -1) for w in rollup.LEVELS_S}
    store.rebuild_rollups()
    for width_s, members in written.items():
        again = rdb.zrange(store.keys.rollup(width_s), 0, -1)
        assert [rollup.decode(m, width_s).checks for m in again] == [
            rollup.decode(m, width_s).checks for m in members
        ]
