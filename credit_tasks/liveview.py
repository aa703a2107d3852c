"""The demo's terminal: each new check (the timeline stream) and alert (the channel) as a line.

`12:00:05  check  warning   $9.95 left, $2.55 used (account)`
`12:00:05  ALERT  warning   OpenRouter credits are low: …`
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis

from . import timeline
from .errors import StoreError
from .history import Point
from .keyspace import Keyspace
from .text import money

TOP_UP_MIN_USD = 0.01  # a smaller rise is rounding, not money added


def check_line(point: Point, previous_usd: float | None) -> str:
    """`12:00:05  check  warning   $9.95 left, $2.55 used (account)` for one timeline entry."""
    when = point.timestamp.astimezone().strftime("%H:%M:%S")
    remaining = point.remaining_usd
    text = "balance unknown" if remaining is None else f"{money(remaining)} left"
    if point.usage_usd is not None:
        text += f", {money(point.usage_usd)} used"
    if point.source:
        text += f" ({point.source.replace('_', ' ')})"
    if (
        remaining is not None
        and previous_usd is not None
        and remaining > previous_usd + TOP_UP_MIN_USD
    ):
        text += f"  ↑ {money(remaining - previous_usd)}: a top-up"
    return f"{when}  check  {point.status or '?':<9} {text}"


def alert_line(alert: dict[str, Any]) -> str:
    """`12:00:05  ALERT  warning   OpenRouter credits are low: …` for one channel message."""
    subject = alert.get("subject")
    about = "" if subject in (None, "account") else f"[{subject}] "
    when = datetime.now().strftime("%H:%M:%S")
    return f"{when}  ALERT  {alert.get('type', '?'):<9} {about}{alert.get('message', '')}"


class LiveView:
    """The checks and alerts of one keyspace from now on; StoreError when Redis goes away."""

    def __init__(self, redis_url: str, keys: Keyspace, client: redis.Redis | None = None) -> None:
        self.keys = keys
        if client is None:
            client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        # Any: redis-py's types cannot tell that decode_responses gives str
        client_: Any = client
        self.client, self.pubsub = client_, client_.pubsub(ignore_subscribe_messages=True)
        self.last_id = "0-0"
        self.previous_usd: float | None = None
        try:
            self.pubsub.subscribe(keys.channel)
            newest = self.client.xrevrange(keys.timeline, count=1)
        except redis.RedisError as exc:
            self.close()
            raise StoreError(str(exc)) from None
        if newest:
            self.last_id = newest[0][0]

    def lines(self, block_ms: int = 500) -> Iterator[str]:
        """The lines of what happened since the last call, waiting up to `block_ms` for one."""
        try:
            for _, entries in self.client.xread(
                {self.keys.timeline: self.last_id}, count=100, block=block_ms
            ):
                for self.last_id, fields in entries:
                    point = timeline.decode(self.last_id, fields)
                    yield check_line(point, self.previous_usd)
                    if point.remaining_usd is not None:
                        self.previous_usd = point.remaining_usd
            while (message := self.pubsub.get_message(timeout=0.0)) is not None:
                if message["type"] == "message":
                    yield alert_line(json.loads(message["data"]))
        except redis.RedisError as exc:
            raise StoreError(str(exc)) from None

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()
