"""Figures as people read them, the same in alerts, the CLI and the live view."""

from __future__ import annotations

import math

UNKNOWN_AMOUNT = "an unknown amount"


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
