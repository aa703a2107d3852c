"""The balance chart as server-drawn SVG: no script, no library, one point per bucket.

A band spans each bucket's lowest and highest balance and a line joins their last ones, so
a dip below a threshold shows even when a bucket holds a day. The warning and critical lines,
the alerts (where they fired) and the top-ups are drawn over it. Pure: it takes the buckets
and the times, and returns markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from ..rollup import Bucket, topups
from ..text import money

WIDTH, HEIGHT = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 8, 8, 16, 40  # the money labels sit inside, over their lines
TOPUP_MIN_USD = 0.005  # a rise below half a cent is rounding, not a top-up


@dataclass(frozen=True)
class Marker:
    """An alert drawn where it fired."""

    at: datetime
    type: str
    text: str


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1.0, 2.0, 2.5, 5.0):
        if raw <= mult * power:
            return mult * power
    return 10.0 * power


def _time_label(when: datetime, span_s: float) -> str:
    if span_s <= 2 * 86400:
        return when.strftime("%H:%M:%S" if span_s <= 600 else "%H:%M")
    return when.strftime("%b %d %H:%M" if span_s <= 10 * 86400 else "%b %d")


class _Scale:
    def __init__(self, x0_ms: int, x1_ms: int, lo: float, hi: float) -> None:
        self.x0, self.x1 = x0_ms, max(x1_ms, x0_ms + 1)
        self.lo, self.hi = lo, hi if hi > lo else lo + 1.0

    def x(self, ms: int) -> float:
        return round(LEFT + (ms - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT), 1)

    def y(self, usd: float) -> float:
        return round(TOP + (self.hi - usd) / (self.hi - self.lo) * (HEIGHT - TOP - BOTTOM), 1)


def _domain(buckets: list[Bucket], warning: float, critical: float) -> tuple[float, float]:
    lows = [b.min_usd for b in buckets] + [critical]
    highs = [b.max_usd for b in buckets] + [warning]
    lo, hi = min(lows), max(highs)
    pad = (hi - lo) * 0.08 or 1.0
    low = lo - pad
    if low < 0 <= lo:
        low = 0.0  # no negative axis unless a balance went negative
    return low, hi + pad


def render(
    buckets: list[Bucket],
    *,
    start: datetime,
    end: datetime,
    warning_usd: float,
    critical_usd: float,
    markers: list[Marker],
    label: str,
) -> str:
    """The chart of `buckets` between `start` and `end`, as an inline `<svg>` element."""
    start_ms, end_ms = _ms(start), _ms(end)
    # from the first check in range, so a young history fills the chart
    x0 = max(start_ms, min([b.first_ms for b in buckets] + [end_ms]))
    shown = [m for m in markers if x0 <= _ms(m.at) <= end_ms]
    if buckets and x0 >= end_ms:
        x0 = end_ms - 60_000
    scale = _Scale(x0, end_ms, *_domain(buckets, warning_usd, critical_usd))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" data-points="{len(buckets)}">'
    ]
    parts += _axes(scale, end_ms - x0)
    if buckets:
        parts.append(_band(scale, buckets))
        line = " ".join(f"{scale.x(b.last_ms)},{scale.y(b.last_usd)}" for b in buckets)
        parts.append(f'<polyline class="balance" points="{line}"/>')
    else:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "No checks in this range yet.</text>"
        )
    for name, usd in (("warning", warning_usd), ("critical", critical_usd)):
        y = scale.y(usd)
        parts.append(
            f'<g class="threshold {name}" data-usd="{usd:g}">'
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4}" text-anchor="end">'
            f"{name} {escape(money(usd))}</text></g>"
        )
    for b, up in zip(buckets, topups(buckets), strict=True):
        if up >= TOPUP_MIN_USD:
            x, y = scale.x(b.last_ms), scale.y(b.max_usd) - 6
            parts.append(
                f'<g class="topup"><path d="M{x - 6},{y} L{x + 6},{y} L{x},{y - 10} Z"/>'
                f"<title>top-up of {escape(money(up))}</title></g>"
            )
    for m in shown:
        x = scale.x(_ms(m.at))
        parts.append(
            f'<g class="marker alert-{escape(m.type)}" data-type="{escape(m.type)}">'
            f'<line x1="{x}" x2="{x}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
            f'<circle cx="{x}" cy="{TOP + 5}" r="5"/><title>{escape(m.text)}</title></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _band(scale: _Scale, buckets: list[Bucket]) -> str:
    top = [
        f"{scale.x(b.first_ms)},{scale.y(b.max_usd)} {scale.x(b.last_ms)},{scale.y(b.max_usd)}"
        for b in buckets
    ]
    bottom = [
        f"{scale.x(b.last_ms)},{scale.y(b.min_usd)} {scale.x(b.first_ms)},{scale.y(b.min_usd)}"
        for b in reversed(buckets)
    ]
    return f'<polygon class="band" points="{" ".join(top + bottom)}"/>'


def _axes(scale: _Scale, span_ms: int) -> list[str]:
    out = []
    step = _nice_step(scale.hi - scale.lo)
    tick = math.ceil(scale.lo / step) * step
    while tick <= scale.hi:
        y = scale.y(tick)
        out.append(
            f'<g class="grid"><line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text x="{LEFT + 2}" y="{y - 4}">{escape(money(tick))}</text></g>'
        )
        tick += step
    for i in range(5):
        ms = scale.x0 + (scale.x1 - scale.x0) * i // 4
        when = datetime.fromtimestamp(ms / 1000, UTC)
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        minor = " minor" if i % 2 else ""  # left out at a phone's width
        out.append(
            f'<text class="time{minor}" x="{scale.x(ms)}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
            f"{_time_label(when, span_ms / 1000)}</text>"
        )
    return out


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
