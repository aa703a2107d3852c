"""Money as alerts, the CLI and the live view print it: one formatter, three spellings of none."""

from __future__ import annotations

import math

import pytest

from credit_tasks.text import cut, money, plain


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


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J\x1b[HCLEARED", "[2J[HCLEARED"),  # ESC gone: no screen cleared
        ("\x1b]0;owned\x07Key", "]0;ownedKey"),  # OSC retitling the terminal, BEL
        ("\x9b31mred", "31mred"),  # the one-byte C1 CSI
        ("pay\x08\x08\x08fee", "payfee"),  # backspace hiding text
        ("del\x7fete", "delete"),
        ("\u202eevil\u202c.txt", "evil.txt"),  # right-to-left override and its pop
        ("a\u2066b\u2069c\u200ed\u200ff\u061cg", "abcdfg"),  # isolates, marks
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("two\nlines\r\tand\u2028more\x85", "two lines and more"),  # whitespace: one space
        ("  Customer   Key ", "Customer Key"),
        ("bad \ud800 surrogate", "bad surrogate"),
        ("private\U000f0000use", "privateuse"),
        ("Ünïcødé 名前 ✓", "Ünïcødé 名前 ✓"),  # printable text of any script stays
    ],
)
def test_text_from_outside_loses_every_control_and_bidi_character(raw: str, shown: str) -> None:
    assert plain(raw) == shown


def test_plain_text_is_printable_on_one_line() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 or c % 97 == 0)
    cleaned = plain(every)
    assert cleaned.isprintable()
    assert "\x1b" not in cleaned and "\n" not in cleaned


@pytest.mark.parametrize(
    ("raw", "width", "shown"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("a name far too long", 10, "a name fa…"),
        ("\x1b[31m" + "x" * 40, 8, "[31mxxx…"),  # cleaned before it is cut
    ],
)
def test_cut_keeps_a_column_to_its_width_and_marks_the_cut(
    raw: str, width: int, shown: str
) -> None:
    assert cut(raw, width) == shown
