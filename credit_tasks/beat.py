"""RedBeat that waits out a Redis failover instead of ending beat.

RedBeat retries its own reads (`retry_period`), but not the extension of its leader lock,
which every tick makes: while Sentinel promotes a replica (a few seconds), that one
`ConnectionError` (or "no master found") would end `celery beat`, and with it the checks.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat.schedulers import RedBeatScheduler as _RedBeatScheduler

log = logging.getLogger("celery.beat")

RETRY_S = 1.0  # the next tick while Redis is away


class RedBeatScheduler(_RedBeatScheduler):  # type: ignore[misc]
    """`redbeat.RedBeatScheduler` whose tick rides out a Redis that is briefly unreachable."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            interval: float = super().tick(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # a lock lost meanwhile still ends beat (LockError), as RedBeat means it to
            log.warning("beat: Redis unreachable (%s): next tick in %g s", exc, RETRY_S)
            return RETRY_S
        return interval
