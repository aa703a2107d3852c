"""The fault queue: what the next requests on a path should suffer instead of a normal answer.

Faults are taken in the order they were queued; each serves `times` requests, then leaves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

API_PREFIX = "/api/v1"
FAULT_KINDS = frozenset(
    {"status", "error_in_200", "body", "data", "delay", "reset", "hang", "close"}
)


@dataclass
class Fault:
    kind: str
    path: str | None  # after /api/v1, e.g. "/key" or "/keys/{hash}"; None = any path
    times: int
    status: int | None
    retry_after: float | None
    body: str | None
    content_type: str | None
    data: object
    delay_s: float | None
    message: str | None
    reset_in_s: float | None = None  # a 429's X-RateLimit-Reset, this far after the answer


class FaultQueue:
    """Queued faults, safe to use from the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(
        self,
        kind: str,
        *,
        path: str | None = None,
        times: int = 1,
        status: int | None = None,
        retry_after: float | None = None,
        body: str | None = None,
        content_type: str | None = None,
        data: object = None,
        delay_s: float | None = None,
        message: str | None = None,
        reset_in_s: float | None = None,
    ) -> None:
        """Queue a fault for the next request(s) on `path` (after /api/v1), or on any path."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}")
        if kind == "status" and status is None:
            raise ValueError("a status fault needs a status")
        if times < 1:
            raise ValueError("times must be at least 1")
        if path is not None:
            path = "/" + path.removeprefix(API_PREFIX).lstrip("/")
        fault = Fault(
            kind,
            path,
            times,
            status,
            retry_after,
            body,
            content_type,
            data,
            delay_s,
            message,
            reset_in_s,
        )
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, *paths: str) -> Fault | None:
        """The first queued fault for any of `paths` (or for any path), counted down once."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.path is None or fault.path in paths:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[index]
                    return fault
        return None
