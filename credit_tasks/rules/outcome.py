"""A check's outcome: how bad each status is, the worst of several, and what besides the account
is not ok; the worst status is what the exit code follows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .states import Status

EXIT_CODES = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}
# the worst of several statuses, as Nagios aggregators rank them: unknown only beats ok
_SEVERITY = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


def severity(status: Status) -> int:
    """How bad `status` is: ok 0, unknown 1, warning 2, critical 3."""
    return _SEVERITY[status]


def worst_of(statuses: Iterable[Status]) -> Status:
    """The most severe of `statuses` (critical, warning, unknown, ok); ok when there are none."""
    return max(statuses, key=severity, default=Status.OK)


def others_note(runway: Status | None, keys: Iterable[Status], spike: Status | None = None) -> str:
    """`runway warning, spike warning, 1 key critical`: what besides the account is not ok."""
    parts = [f"runway {runway.value}"] if runway not in (None, Status.OK) else []
    if spike not in (None, Status.OK):
        parts.append(f"spike {spike.value}")
    keys = list(keys)
    for status in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN):
        if count := keys.count(status):
            parts.append(f"{count} key{'s' if count != 1 else ''} {status.value}")
    return ", ".join(parts)


def stored_worst(current: Mapping[str, str], monitoring: Mapping[str, str]) -> tuple[Status, str]:
    """The last recorded check's worst status, as its exit code was, and what besides the
    account made it so; unknown when the checks now fail."""
    account = Status(current.get("status") or Status.UNKNOWN.value)
    failing = int(monitoring.get("consecutive_failures") or 0) > 0
    if account is Status.UNKNOWN and failing:
        return account, ""  # the keys and runway of an older check say nothing about now
    worst = worst_of([account, Status(current.get("worst_status") or account.value)])
    return worst, current.get("worst_note") or ""
