"""One thread per store that keeps the held check locks alive.

A check holds the lock with a short TTL, so a dead holder's lock lapses soon; while the check
runs, its token is renewed every third of the TTL. One long-lived thread does that for every
check of the process: a check registers its token and removes it, and costs no thread of its
own. The thread starts at the first hold (again in a forked child, which has none) and ends
with `close()`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import redis


class Renewer:
    """Calls `renew(token, ttl_s)` every `ttl_s / 3` for each token held."""

    def __init__(self, renew: Callable[[str, float], object]) -> None:
        self._renew = renew
        self._held: dict[str, tuple[float, float]] = {}  # token -> (next renewal, ttl_s)
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's: set by close()
        self._pid = os.getpid()

    @contextlib.contextmanager
    def holding(self, token: str, ttl_s: float) -> Iterator[None]:
        """Keep `token` renewed while the block runs."""
        self._forget_parent()
        with self._changed:
            if self._thread is None or not self._thread.is_alive():
                # the first hold, or a store used again after close() (as redis-py allows)
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="check-lock", daemon=True
                )
                self._thread.start()
            self._held[token] = (time.monotonic() + ttl_s / 3, ttl_s)
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._held.pop(token, None)

    def close(self) -> None:
        """End the thread; a renewal in flight finishes first."""
        self._forget_parent()
        with self._changed:
            self._stop.set()
            self._changed.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _forget_parent(self) -> None:
        """In a forked child, start afresh: the parent's thread did not come along, and its
        lock may have been held at the fork."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._held, self._changed, self._thread = {}, threading.Condition(), None

    def _run(self, stop: threading.Event) -> None:
        with self._changed:
            while not stop.is_set():
                now = time.monotonic()
                due = [(t, ttl) for t, (at, ttl) in self._held.items() if at <= now]
                if not due:
                    nearest = min((at for at, _ in self._held.values()), default=None)
                    self._changed.wait(None if nearest is None else nearest - now)
                    continue
                for token, ttl_s in due:
                    self._held[token] = (now + ttl_s / 3, ttl_s)
                self._changed.release()
                try:
                    for token, ttl_s in due:
                        # Redis away: the lock lapses, and the commit's compare still guards
                        with contextlib.suppress(redis.RedisError):
                            self._renew(token, ttl_s)
                finally:
                    self._changed.acquire()
