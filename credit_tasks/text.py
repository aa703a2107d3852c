"""Figures as people read them, the same in alerts, the CLI and the live view; and the one
cleaner for text that came from outside."""

from __future__ import annotations

import math

UNKNOWN_AMOUNT = "an unknown amount"
ELLIPSIS = "…"


def money(value: object, missing: str = UNKNOWN_AMOUNT) -> str:
    """`$1,234.50`; `missing` for no figure (None, "" as Redis keeps it, or not finite)."""
    if value is None or value == "":
        return missing
    number = value if isinstance(value, float) else float(str(value))
    return f"${number:,.2f}" if math.isfinite(number) else missing


def duration(hours: float) -> str:
    """`about 19 h`, `about 25 min` under an hour, `under a minute` below that."""
    if hours * 60 < 1:
        return "under a minute"
    return f"about {hours * 60:.0f} min" if hours < 1 else f"about {hours:,.0f} h"


def span(hours: float) -> str:
    """A span of history: `3 h`, `1.5 h`, `25 min`, `40 s`."""
    if hours * 60 < 1:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{round(hours, 1):g} h" if hours < 10 else f"{hours:,.0f} h"


def plain(text: str) -> str:
    """`text` safe for a terminal and one line: printable characters only, any run of
    whitespace (newlines and tabs included) one space.

    Gone are controls (C0, C1, DEL), format characters (bidi overrides and isolates,
    zero-width marks), surrogates, private-use and unassigned code points: a terminal obeys
    the first two, and JSON escaping is no help, as a subscriber prints what it decodes.
    `ESC[2J` loses its ESC and stays as harmless text.
    """
    if not text.isprintable():
        text = "".join(
            " " if ch.isspace() else ch for ch in text if ch.isprintable() or ch.isspace()
        )
    return " ".join(text.split())


def cut(text: str, width: int) -> str:
    """`text` at most `width` characters, the cut marked with an ellipsis; cleaned first."""
    text = plain(text)
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS
