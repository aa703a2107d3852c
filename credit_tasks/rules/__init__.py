"""Alert rules: states, recovery, cooldown, runway, and the one decision a check makes.

Pure decisions: no Redis, HTTP or Celery here, and the current time is an argument, so
every rule is a row in a table test. `decide` takes everything a check observed, the stored
alert states, the policy and the team's silences and acks, and returns everything decided;
the store commits it atomically.

One job a module, each importing only the others here:

- `states`: one subject's statuses, thresholds and alert state, and how a check moves it;
- `subjects`: what a decision takes: the subjects, the figures observed, the policy;
- `silencing`: the team's silences and acks;
- `decision`: `decide`, which judges each subject once and marks what is held back;
- `outcome`: a check's worst status (which the exit code follows) and what else is not ok.
"""

from __future__ import annotations

from .decision import PAYMENT_REQUIRED, Decision, Due, decide, distinct, subjects_of
from .outcome import EXIT_CODES, others_note, severity, stored_worst, worst_of
from .silencing import ANY_SUBJECT, ANY_TYPE, Ack, Silence, Silencing
from .states import (
    AlertState,
    AlertType,
    Notice,
    Status,
    Thresholds,
    as_runway,
    cents,
    classify,
    classify_runway,
    classify_spike,
    cooldown_due,
    evaluate,
    is_unknown,
    key_thresholds,
)
from .subjects import (
    ACCOUNT,
    RUNWAY,
    SPIKE,
    About,
    Failure,
    KeyFigures,
    KeySpend,
    Observation,
    Policy,
    SpikeFigures,
    Subject,
)

__all__ = [
    "ACCOUNT",
    "ANY_SUBJECT",
    "ANY_TYPE",
    "EXIT_CODES",
    "PAYMENT_REQUIRED",
    "RUNWAY",
    "SPIKE",
    "About",
    "Ack",
    "AlertState",
    "AlertType",
    "Decision",
    "Due",
    "Failure",
    "KeyFigures",
    "KeySpend",
    "Notice",
    "Observation",
    "Policy",
    "Silence",
    "Silencing",
    "SpikeFigures",
    "Status",
    "Subject",
    "Thresholds",
    "as_runway",
    "cents",
    "classify",
    "classify_runway",
    "classify_spike",
    "cooldown_due",
    "decide",
    "distinct",
    "evaluate",
    "is_unknown",
    "key_thresholds",
    "others_note",
    "severity",
    "stored_worst",
    "subjects_of",
    "worst_of",
]
