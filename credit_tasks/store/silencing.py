"""Silences and acks: a silence added or expired, an ack put only while its subject's state
still holds the episode it names (one script), and those in force read in one round trip.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from .. import silences as codec
from ..keyspace import Keyspace
from ..rules import Ack, AlertState, Silence, Silencing, Subject
from .connection import Connection, translated

_ACK = """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[3])
return 1
"""

# The silences, the acks and the state of each ack's subject, in one round trip (an ack lasts
# while its subject's state holds the episode it named). Queued in the faces' pipelines.
_SILENCING = """
local acks = redis.call('HGETALL', KEYS[2])
local held, states = {}, {}
for i = 1, #acks, 2 do
  held[#held + 1] = acks[i + 1]
  states[#states + 1] = redis.call('HGET', KEYS[3], acks[i]) or ''
end
return {redis.call('HVALS', KEYS[1]), held, states}
"""


def _state(raw: str | None) -> AlertState:
    return AlertState.from_json(json.loads(raw)) if raw else AlertState()


def _silencing(silences: list[str], acks: list[str]) -> Silencing:
    """The stored silences and acks; a record this version cannot read is left out."""
    read = [codec.decode_silence(raw) for raw in silences]
    acked = [codec.decode_ack(raw) for raw in acks]
    return Silencing(
        silences=tuple(sorted((s for s in read if s), key=lambda s: (s.ends_at, s.id))),
        acks={a.subject: a for a in acked if a},
    )


def _in_force(reply: list[list[str]], now: datetime) -> tuple[list[Silence], list[Ack]]:
    """`_SILENCING`'s answer read: the silences still running, soonest end first, and the acks
    whose episode still lasts, by subject."""
    silences, acks, states = reply
    loaded = _silencing(silences, [])
    lasting = [
        ack
        for ack, raw in zip(map(codec.decode_ack, acks), states, strict=True)
        if ack is not None and _state(raw or None).since == ack.since
    ]
    lasting.sort(key=lambda a: str(a.subject))
    return [s for s in loaded.silences if s.active(now)], lasting


def _queue_silencing(pipe: Any, keys: Keyspace) -> None:
    """Queue the read of the silences and acks (`_in_force` reads the answer)."""
    names = (keys.silences, keys.acks, keys.alert_state)
    pipe.eval(_SILENCING, len(names), *names)


class SilencesAndAcks(Connection):
    """The team's silences and acks, and what an ack reads first."""

    def _register_scripts(self, client: redis.Redis) -> None:
        super()._register_scripts(client)
        self._ack = client.register_script(_ACK)

    @translated
    def add_silence(self, silence: Silence) -> None:
        """Store a silence; the next check honours it (a check deciding now decides again)."""
        pipe = self.redis.pipeline()
        pipe.hset(self.keys.silences, silence.id, codec.encode_silence(silence))
        pipe.incr(self.keys.silences_version)
        pipe.execute()

    @translated
    def expire_silence(self, silence_id: str, now: datetime) -> Silence | None:
        """End an active silence at once; None when there is no such active silence."""
        silence = codec.decode_silence(self.redis.hget(self.keys.silences, silence_id) or "")
        if silence is None or not silence.active(now):
            return None
        pipe = self.redis.pipeline()
        pipe.hdel(self.keys.silences, silence_id)
        pipe.incr(self.keys.silences_version)
        pipe.execute()
        return silence

    @translated
    def silencing(self, now: datetime) -> tuple[list[Silence], list[Ack]]:
        """The silences still running and the acks whose episode still lasts, soonest end first;
        one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        _queue_silencing(pipe, self.keys)
        return _in_force(pipe.execute()[0], now)

    @translated
    def alert_record(self, alert_id: str) -> dict[str, str]:
        """An alert's stored record; empty when there is none (or it expired)."""
        return dict(self.redis.hgetall(self.keys.alert(alert_id)))

    @translated
    def alert_state(self, subject: Subject) -> tuple[str | None, AlertState]:
        """A subject's alert state, raw as stored (for `put_ack`) and read."""
        raw = self.redis.hget(self.keys.alert_state, str(subject))
        return raw, _state(raw)

    @translated
    def put_ack(self, ack: Ack, state_raw: str | None) -> bool:
        """Store an ack unless the subject's state changed since `state_raw` was read."""
        keys = [self.keys.alert_state, self.keys.acks, self.keys.silences_version]
        args = [str(ack.subject), state_raw or "", codec.encode_ack(ack)]
        return bool(self._ack(keys=keys, args=args))
