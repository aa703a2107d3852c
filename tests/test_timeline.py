"""The timeline entry's codec: the stored fields, and the history point read back from them."""

from __future__ import annotations

from datetime import UTC, datetime

from credit_tasks import timeline
from credit_tasks.history import Point


def test_an_entry_keeps_its_short_field_names_and_figures_as_text() -> None:
    fields = timeline.encode(9.95, 2.55, "warning", "account")
    assert fields == {"r": "9.95", "u": "2.55", "s": "warning", "src": "account"}


def test_an_unknown_figure_is_stored_as_an_empty_string() -> None:
    fields = timeline.encode(None, None, "unknown", None)
    assert fields == {"r": "", "u": "", "s": "unknown", "src": ""}


def test_an_entry_reads_back_as_the_point_it_was_written_from() -> None:
    at = datetime(2025, 1, 1, 12, 0, 5, 250_000, tzinfo=UTC)
    entry_id = f"{int(at.timestamp() * 1000)}-0"
    fields = timeline.encode(0.1 + 0.2, 1e-10, "ok", "key_limit")
    assert timeline.decode(entry_id, fields) == Point(at, 0.1 + 0.2, 1e-10, "ok", "key_limit")


def test_missing_or_empty_fields_read_as_unknown() -> None:
    point = timeline.decode("1735732800000-3", {"r": "", "s": "critical"})
    assert point == Point(datetime(2025, 1, 1, 12, tzinfo=UTC), None, None, "critical", "")
