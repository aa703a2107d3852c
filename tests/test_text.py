"""Money as alerts, the CLI and the live view print it: one formatter, three spellings of none."""

from __future__ import annotations

import math

import pytest

from credit_tasks.text import money


@pytest.mark.parametrize(
    ("value", "text"),
    [(9.95, "$9.95"), (1234.5, "$1,234.50"), (0, "$0.00"), ("7.5", "$7.50")],
)
def test_a_figure_reads_in_dollars_and_cents(value: object, text: str) -> None:
    assert money(value) == text


@pytest.mark.parametrize("value", [None, "", math.nan, math.inf])
def test_no_figure_reads_as_an_unknown_amount_in_a_sentence(value: object) -> None:
    assert money(value) == "an unknown amount"


@pytest.mark.parametrize("value", [None, ""])
def test_a_table_shows_no_figure_as_a_dash(value: object) -> None:
    assert money(value, missing="-") == "-"


@pytest.mark.parametrize(
    ("hours", "text"),
    [(3.0, "3 h"), (1.5, "1.5 h"), (24.0, "24 h"), (0.75, "45 min"), (0.01, "36 s")],
)
def test_a_span_of_history_reads_in_hours_minutes_or_seconds(hours: float, text: str) -> None:
    from credit_tasks.text import span

    assert span(hours) == text
