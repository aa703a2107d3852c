"""The Redis store: current snapshot, monitoring status, timeline, alert state and records.

Redis errors are translated in `connection`, and only there, into `StoreError` with a line
that says what to do. A check costs three round trips whatever the number of keys: `claim`
(the lock), `load` (states, silences and acks, burn window, failure count) and `commit`, a
script that compares and sets the alert states (and the silences' version) and writes the
rest at once, so any number of concurrent checks on any number of workers commits each
transition once. The store stores; what to write is decided elsewhere.

`Store` is one class made of parts, one job a module:

- `connection`: `connect`, the client and key names, Redis errors translated;
- `check`: `claim` and `renewing` the lock, `load`, `commit` (the compare-and-set script);
- `plan`: `Commit`, `Cooldown` and the commands a commit runs;
- `renewer`: one thread per store that keeps the held check locks alive;
- `delivery`: `deliver` (the publishing script), `undelivered`, each channel's outcome;
- `silencing`: silences and acks, and those in force;
- `reads`: what the faces read (`buckets`, `keys_page`, `overview`, `scrape`, ...);
- `reports`: the daily reports.
"""

from __future__ import annotations

from .check import REPLICA_WAIT_MS, Checks, Claim, Loaded
from .connection import connect
from .delivery import Delivery
from .plan import Commit, Cooldown
from .reads import Reads
from .reports import Reports
from .silencing import SilencesAndAcks

__all__ = ["REPLICA_WAIT_MS", "Claim", "Commit", "Cooldown", "Loaded", "Store", "connect"]


class Store(Checks, Delivery, SilencesAndAcks, Reads, Reports):
    """Everything credit_tasks keeps in Redis."""
