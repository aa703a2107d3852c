"""The project's exceptions, one tree.

    CreditTasksError
     ├── ConfigError        a setting is missing or invalid
     ├── FetchError         OpenRouter could not be read
     │    ├── KeyRejected   401/403: the key is wrong, disabled or lacks the right
     │    ├── ApiUnavailable  outage, timeout, rate limit: retries ran out
     │    └── MalformedAnswer  an answer that is not the API's shape
     ├── StoreError         Redis could not be reached or refused a command
     ├── StartError         a process of `demo` or `run` did not start
     └── InputError         a command's argument was refused: nothing was written

Errors of the layer below (httpx, redis, pydantic) are translated at the edge of the
module that talks to it, so every message here is one line an operator can act on.
"""

from __future__ import annotations


class CreditTasksError(Exception):
    """Base class: an expected failure with a one-line message that says what to do."""


class ConfigError(CreditTasksError):
    """A setting is missing or invalid."""


class FetchError(CreditTasksError):
    """OpenRouter could not be read."""


class KeyRejected(FetchError):
    """OpenRouter refused the key (401 or 403): a configuration problem, never retried."""


class ApiUnavailable(FetchError):
    """OpenRouter did not answer usefully within the retry budget."""


class MalformedAnswer(FetchError):
    """OpenRouter answered something that is not the documented shape."""


class StoreError(CreditTasksError):
    """Redis could not be reached or refused a command."""


class StartError(CreditTasksError):
    """A process that `credit-monitor demo` or `run` starts exited or did not get ready."""


class InputError(CreditTasksError):
    """A command's argument was refused (an unknown id, an unreadable duration); nothing written."""
