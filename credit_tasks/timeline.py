"""The timeline stream's record: one codec for its writer, its readers and the benchmarks.

Each completed check is one entry of the stream `<prefix>:credits:timeline`. The entry id is
the check's time in milliseconds; the fields are short, as a year of one-minute checks is
half a million entries. An unknown figure is stored as an empty string.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .history import Point

REMAINING = "r"  # remaining_usd
USAGE = "u"  # usage_usd
STATUS = "s"
SOURCE = "src"  # where the balance came from: "account", "key_limit", …


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def encode(
    remaining_usd: float | None, usage_usd: float | None, status: str, source: str | None
) -> dict[str, str]:
    """The fields of one timeline entry."""
    return {
        REMAINING: _text(remaining_usd),
        USAGE: _text(usage_usd),
        STATUS: status,
        SOURCE: _text(source),
    }


def entry_time(entry_id: str) -> datetime:
    """The check time an entry id carries (`<ms>-<seq>`), in UTC."""
    return datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, UTC)


def decode(entry_id: str, fields: dict[str, str]) -> Point:
    """The history point of one timeline entry; a missing field reads as unknown."""
    return Point(
        timestamp=entry_time(entry_id),
        remaining_usd=_float(fields.get(REMAINING)),
        usage_usd=_float(fields.get(USAGE)),
        status=fields.get(STATUS, ""),
        source=fields.get(SOURCE, ""),
    )
