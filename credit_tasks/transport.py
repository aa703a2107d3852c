"""The client's transport: GETs to OpenRouter through one retry layer, failures made FetchErrors.

Every request goes through one tenacity retry layer (attempts and a time budget from the
settings), waiting as long as Retry-After or X-RateLimit-Reset asks; httpx errors and error
bodies are translated into the project's FetchError family in one place. Secrets are read
with `get_secret_value()` only to build the Authorization header, and every text from the
API is scrubbed of them here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import httpx
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from .answers import ErrorAnswer, malformed, parse_json, validate
from .errors import ApiUnavailable, FetchError, KeyRejected, MalformedAnswer
from .settings import Settings
from .text import plain

# the client's log, as before it was split: one logger to turn up for every request it makes
log = logging.getLogger("credit_tasks.client")

KEYS_URL = "https://openrouter.ai/settings/keys"
MANAGEMENT_KEYS_URL = "https://openrouter.ai/settings/management-keys"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
MANAGEMENT_PATHS = ("credits", "keys", "workspaces", "activity")
_BACKOFF = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)

try:
    _VERSION = importlib.metadata.version("credit-tasks")
except importlib.metadata.PackageNotFoundError:
    _VERSION = "0"


class Transient(Exception):
    """A failure worth another attempt; `what` ends up in the final message."""

    def __init__(self, what: str, retry_after_s: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after_s = retry_after_s


class PaymentRequired(Exception):
    """402: the money is gone; a result, not an error."""


class NotManagement(KeyRejected):
    """403 on `/credits` or `/keys`: OPENROUTER_MANAGEMENT_KEY is not a management key."""


class NotFound(Exception):
    """404 on a path; `/key` falls back to `/auth/key` on it."""


class Transport:
    """GETs from OpenRouter with retries; owns the httpx client unless one is passed in."""

    def __init__(
        self,
        settings: Settings,
        api_key: SecretStr,
        http: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._api_key = api_key
        self._owns_http = http is None
        if http is None:
            timeout_s = settings.credit_http_timeout_s
            http = httpx.Client(
                base_url=settings.openrouter_base_url,
                timeout=httpx.Timeout(timeout_s, connect=self._connect_timeout_s()),
                headers={"User-Agent": f"credit-tasks/{_VERSION}"},
            )
        self.http = http
        self._sleep = sleep

    def close(self) -> None:
        """Close the httpx client, only if this transport created it."""
        if self._owns_http:
            self.http.close()

    def get(self, path: str, secret: SecretStr, now: datetime) -> dict[str, Any]:
        """GET `path` through the retry layer; the JSON object of a 2xx answer."""
        retrying = Retrying(
            retry=retry_if_exception_type((Transient, httpx.HTTPError)),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            retry_error_callback=self._give_up,
        )
        body: dict[str, Any] = retrying(self._attempt, path, secret, now)
        return body

    def management_get(
        self, path: str, secret: SecretStr, now: datetime, what: str
    ) -> dict[str, Any]:
        """`get` for a management path, where a 402 is a refusal to `what`, not a result."""
        try:
            return self.get(path, secret, now)
        except PaymentRequired as exc:
            raise FetchError(f"OpenRouter refused to {what} ({exc})") from None

    def scrub_label(self, text: str | None) -> str | None:
        # OpenRouter masks labels; a server that echoes a whole key must not get it stored
        return None if text is None else self.scrub(text)

    def scrub(self, text: str) -> str:
        """Server text made safe to store and show: no control or bidi character, no secret,
        one line, short. Every text from the API passes here before it goes anywhere."""
        # cleaned first: a zero-width character inside an echoed key would hide it from replace
        text = plain(text)
        for secret in (self._api_key, self._settings.openrouter_management_key):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "***")
        return text[:200]

    def _attempt(self, path: str, secret: SecretStr, now: datetime) -> dict[str, Any]:
        started = time.monotonic()
        try:
            auth = {"Authorization": f"Bearer {secret.get_secret_value()}"}
            response = self.http.get(path, headers=auth)
        except httpx.HTTPError as exc:
            log.debug(
                "GET /%s failed after %.3f s: %s",
                path,
                time.monotonic() - started,
                type(exc).__name__,
            )
            raise
        log.debug("GET /%s -> %d in %.3f s", path, response.status_code, time.monotonic() - started)
        status, message = response.status_code, response.reason_phrase
        if response.is_success:
            body = parse_json(path, response.text)
            if "error" not in body:
                return body
            # a 200 carrying an error is that error
            error = validate(ErrorAnswer, body, path).error
            if 200 <= error.code < 300:
                raise MalformedAnswer(malformed(path, f"an error coded {error.code}"))
            status, message = error.code, error.message or httpx.codes.get_reason_phrase(error.code)
        else:
            # a proxy's HTML error page is fine here: the status says enough
            with contextlib.suppress(ValueError, RecursionError):
                message = ErrorAnswer.model_validate_json(response.text).error.message or message
        self._raise_for(path, status, self.scrub(message), response.headers, now)

    def _raise_for(
        self, path: str, status: int, message: str, headers: httpx.Headers, now: datetime
    ) -> NoReturn:
        management = path.split("?")[0] in MANAGEMENT_PATHS
        setting = "OPENROUTER_MANAGEMENT_KEY" if management else "OPENROUTER_API_KEY"
        what = f"{status} {message}".strip()
        if status == 402:
            raise PaymentRequired(what)
        if status == 403 and management:
            raise NotManagement(
                f"{setting} is not a management key ({what}): "
                f"create one under Management keys at {MANAGEMENT_KEYS_URL} "
                "or unset it"
            )
        if status in (401, 403):
            where = MANAGEMENT_KEYS_URL if management else KEYS_URL
            raise KeyRejected(f"OpenRouter rejected {setting} ({what}): check the key at {where}")
        if status in TRANSIENT_STATUSES or 500 <= status < 600:
            wait_s = None
            if status in RETRY_AFTER_STATUSES:
                waits = [
                    _retry_after_s(headers.get("Retry-After"), now),
                    _rate_limit_reset_s(headers.get("X-RateLimit-Reset")),
                ]
                # both honoured: the later of the two
                wait_s = max((w for w in waits if w is not None), default=None)
            raise Transient(what, wait_s)
        if status == 404 and (path == "key" or path.startswith("workspaces")):
            raise NotFound(what)
        if status == 404 and path == "auth/key":
            raise FetchError(
                f"OpenRouter has neither /key nor /auth/key ({what}): check "
                "OPENROUTER_BASE_URL, e.g. https://openrouter.ai/api/v1"
            )
        raise FetchError(f"OpenRouter answered {what} for /{path}: check OPENROUTER_BASE_URL")

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after_s is not None:
            return exc.retry_after_s
        return _BACKOFF(state)

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._settings.credit_retry_attempts:
            return True
        # never sleep past the budget: a longer Retry-After stops at once
        return _spent_s(state) + state.upcoming_sleep > self._settings.credit_retry_budget_s

    def _give_up(self, state: RetryCallState) -> NoReturn:
        exc = state.outcome.exception() if state.outcome else None
        what = exc.what if isinstance(exc, Transient) else self._transport_error(exc)
        if state.attempt_number < self._settings.credit_retry_attempts:
            what += (
                f"; the next try in {state.upcoming_sleep:.1f} s would pass the "
                f"{self._settings.credit_retry_budget_s:g} s retry budget"
            )
        plural = "s" if state.attempt_number != 1 else ""
        message = (
            f"OpenRouter unavailable after {state.attempt_number} attempt{plural} over "
            f"{_spent_s(state):.1f} s (last: {what}): will retry at the next check"
        )
        # the one place where httpx errors become ours
        raise ApiUnavailable(message) from exc

    def _transport_error(self, exc: BaseException | None) -> str:
        """An httpx error and what it means: `ReadTimeout, no answer within 10 s (…)`."""
        name = type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return f"{name}, no connection within {self._connect_timeout_s():g} s"
        if isinstance(exc, httpx.TimeoutException):
            timeout_s = self._settings.credit_http_timeout_s
            return f"{name}, no answer within {timeout_s:g} s (CREDIT_HTTP_TIMEOUT_S)"
        if isinstance(exc, httpx.ConnectError):
            # "[Errno 111] Connection refused" -> "Connection refused"
            reason = str(exc).split("] ")[-1] or "failed"
            return f"{name}, cannot connect: {self.scrub(reason)}"
        if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
            return f"{name}, the connection broke before a full answer"
        return name

    def _connect_timeout_s(self) -> float:
        return min(5.0, self._settings.credit_http_timeout_s)


def _spent_s(state: RetryCallState) -> float:
    # idle_for covers an injected sleep that does not move the clock
    return max(state.seconds_since_start or 0.0, state.idle_for)


def _retry_after_s(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: a number of seconds or an HTTP-date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _rate_limit_reset_s(value: str | None) -> float | None:
    """X-RateLimit-Reset (when the rate window reopens, epoch milliseconds) as seconds from now."""
    if not value:
        return None
    try:
        stamp = float(value)
    except ValueError:
        return None
    if not math.isfinite(stamp):
        return None
    # OpenRouter sends milliseconds; a figure this small can only be seconds (before 1973 in ms)
    stamp_s = stamp if stamp < 1e11 else stamp / 1000
    return max(stamp_s - time.time(), 0.0)
