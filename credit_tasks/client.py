"""The OpenRouter client: reads `/key` (and `/credits` with a management key) into a Snapshot.

Money figures are taken as the API gives them: a negative `limit_remaining` is an overspent key
(a request in flight can take a key past its cap), never a malformed answer.

Every request goes through one tenacity retry layer (attempts and a time budget from the
settings); httpx errors are translated into the project's FetchError family in one place.
Secrets are read with `get_secret_value()` only to build the Authorization header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from .answers import (
    ActivityPage,
    CreditsAnswer,
    ErrorAnswer,
    KeyAnswer,
    KeyItem,
    KeysPage,
    WorkspacesPage,
    malformed,
    parse_json,
    validate,
)
from .errors import ApiUnavailable, FetchError, KeyRejected, MalformedAnswer
from .readings import SOURCES as SOURCES  # re-exported: the client's readings
from .readings import Activity, KeyListing, Reading
from .readings import KeyInfo as KeyInfo
from .readings import Snapshot as Snapshot
from .settings import Settings
from .text import plain

log = logging.getLogger(__name__)

KEYS_URL = "https://openrouter.ai/settings/keys"
MANAGEMENT_KEYS_URL = "https://openrouter.ai/settings/management-keys"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
KEYS_PAGE_SIZE = 100
MAX_KEY_PAGES = 1000  # 100,000 keys: a server that ignores offset cannot loop us forever
KEYS_CONCURRENCY = 8  # /keys pages asked at once, at most
MAX_WORKSPACE_PAGES = 100
MANAGEMENT_PATHS = ("credits", "keys", "workspaces", "activity")
_BACKOFF = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)

try:
    _VERSION = importlib.metadata.version("credit-tasks")
except importlib.metadata.PackageNotFoundError:
    _VERSION = "0"


class _Transient(Exception):
    """A failure worth another attempt; `what` ends up in the final message."""

    def __init__(self, what: str, retry_after_s: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after_s = retry_after_s


class _PaymentRequired(Exception):
    """402: the money is gone; a result, not an error."""


class _NotManagement(KeyRejected):
    """403 on `/credits` or `/keys`: OPENROUTER_MANAGEMENT_KEY is not a management key."""


class _NotFound(Exception):
    """404 on a path; `/key` falls back to `/auth/key` on it."""


class OpenRouterClient:
    """Reads the spendable balance from OpenRouter; use as a context manager or call close()."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        page_concurrency: int = KEYS_CONCURRENCY,
    ) -> None:
        if page_concurrency < 1:
            raise ValueError("page_concurrency must be at least 1")
        self._settings = settings
        self._api_key = settings.require_api_key()
        self._owns_http = http is None
        if http is None:
            timeout_s = settings.credit_http_timeout_s
            http = httpx.Client(
                base_url=settings.openrouter_base_url,
                timeout=httpx.Timeout(timeout_s, connect=self._connect_timeout_s()),
                headers={"User-Agent": f"credit-tasks/{_VERSION}"},
            )
        self._http = http
        self._sleep = sleep
        self._key_path = "key"
        self._pool: ThreadPoolExecutor | None = None
        self._page_concurrency = page_concurrency
        self._page_pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> OpenRouterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the httpx client, only if this client created it."""
        for pool in (self._pool, self._page_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._page_pool = None
        if self._owns_http:
            self._http.close()

    def read(self, now: datetime) -> Reading:
        """One check's reading: `/key`, then `/credits` and the `/keys` listing side by side.

        The listing starts only once `/key` has answered, so a rejected key costs one
        request. Its failure leaves the snapshot standing; a failed snapshot raises.
        """
        listing: Future[KeyListing] | None = None

        def list_keys_beside() -> None:
            nonlocal listing
            if self._settings.openrouter_management_key is not None:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="openrouter-keys")
                listing = self._pool.submit(self.list_keys, now)

        try:
            snapshot = self.fetch_snapshot(now, key_answered=list_keys_beside)
        except FetchError:
            if listing is not None:
                wait([listing])  # its answer is not needed, but no request outlives the check
            raise
        if listing is None:
            return Reading(snapshot, KeyListing())
        try:
            return Reading(snapshot, listing.result())
        except FetchError as exc:
            return Reading(snapshot, None, exc)

    def fetch_snapshot(
        self, now: datetime, *, key_answered: Callable[[], None] | None = None
    ) -> Snapshot:
        """Read OpenRouter once; raises a FetchError child when it cannot say.

        `key_answered` is called once `/key` has answered well (or said 402), before `/credits`.
        """
        now = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)
        try:
            body = self._read_key(now)
        except _PaymentRequired:
            if key_answered is not None:
                key_answered()
            return Snapshot(now, 0.0, None, "payment_required", None, None, None, None, None)
        key = validate(KeyAnswer, body, self._key_path).data
        if key_answered is not None:
            key_answered()
        limit_remaining = key.limit_remaining
        if key.limit is not None and limit_remaining is None:
            limit_remaining = key.limit - key.usage
        known = Snapshot(
            checked_at=now,
            remaining_usd=None,
            usage_usd=key.usage,
            source="none",
            limit_usd=key.limit,
            limit_remaining_usd=limit_remaining,
            account_balance_usd=None,
            key_label=self._scrub_label(key.label),
            is_free_tier=key.is_free_tier,
            usage_daily_usd=key.usage_daily,
            usage_weekly_usd=key.usage_weekly,
            usage_monthly_usd=key.usage_monthly,
        )
        try:
            account = self._read_account(now)
        except _PaymentRequired:
            return dataclasses.replace(known, remaining_usd=0.0, source="payment_required")
        except _NotManagement as exc:
            if key.limit is None or limit_remaining is None:
                raise  # nothing else shows the money: the check cannot say
            # the key's own cap still gives a figure: a setting to fix, not a failed check
            account, known = None, dataclasses.replace(known, credits_forbidden=str(exc))
        known = dataclasses.replace(known, account_balance_usd=account)

        candidates: list[tuple[float, str]] = []
        if key.limit is not None and limit_remaining is not None:
            candidates.append((limit_remaining, "key_limit"))
        if account is not None:
            candidates.append((account, "account"))
        if candidates:
            remaining, source = min(candidates, key=lambda pair: pair[0])
            return dataclasses.replace(known, remaining_usd=remaining, source=source)
        initial = self._settings.credit_initial_balance
        if initial is not None:
            remaining = initial - key.usage
            return dataclasses.replace(known, remaining_usd=remaining, source="initial_balance")
        return known

    def list_keys(self, now: datetime) -> KeyListing:
        """Every enabled key of the account, in every workspace, with a management key; none
        without one. `/keys` alone lists the default workspace: an account with workspaces is
        listed one workspace at a time; one without (404 or an empty list) as before them.

        The pages of each workspace: the first two are asked one at a time (most accounts
        have one page, and the second says whether the server honours `offset`); while pages
        come back full, the next ones are asked in windows of 2, 4, then `page_concurrency` at
        once, and read in order until a short page (the pages after it in its window go
        unread). An item that cannot be read is skipped and named in
        `unreadable`; only a page that is not a list of items makes the whole listing fail.
        Each hash counts once, and a page that brings no new hash ends the listing (a server
        that ignores `offset` sends the same page forever); the listing's note says so.
        """
        management_key = self._settings.openrouter_management_key
        if management_key is None:
            return KeyListing()
        listed = _Listed()
        stopped: str | None = None
        workspaces: list[tuple[str | None, str | None]] = [(None, None)]
        for workspace_id, workspace in [*self._workspaces(management_key, now)] or workspaces:
            stopped = self._list_workspace(listed, now, workspace_id, workspace) or stopped
        return listed.listing(stopped, complete=stopped is None)

    def _list_workspace(
        self, listed: _Listed, now: datetime, workspace_id: str | None, workspace: str | None
    ) -> str | None:
        """Add one workspace's keys (the default one's for None) to `listed`, a window of pages
        at a time, read in page order; why the listing stopped before its last page, or None."""
        query = "" if workspace_id is None else f"&workspace_id={quote(workspace_id, safe='')}"
        first, window = 0, 1
        while first < MAX_KEY_PAGES:
            numbers = range(first, min(first + window, MAX_KEY_PAGES))
            pages = self._key_pages(numbers, query, now)
            for page_number, page in zip((n + 1 for n in numbers), pages, strict=True):
                named, duplicates = len(listed.hashes), listed.duplicates
                for index, raw in enumerate(page):
                    where = f"item {index + 1} of page {page_number}"
                    self._read_item(raw, where, listed, workspace)
                # no page-size parameter: a short page is the last; later ones are not read
                if len(page) < KEYS_PAGE_SIZE:
                    return None
                if len(listed.hashes) == named:
                    listed.duplicates = duplicates  # a repeated page is said as such, not per item
                    return (
                        f"/keys page {page_number} brought no new key: listing stopped there "
                        "(does the server ignore offset?)"
                    )
            first += len(numbers)
            window = 1 if first < 2 else min(2 * window, self._page_concurrency)
        return f"/keys went on past {MAX_KEY_PAGES} pages: listing stopped there"

    def _key_pages(self, numbers: range, query: str, now: datetime) -> list[list[object]]:
        """The `/keys` pages `numbers` (from 0), asked at once; the first failure in page order
        raises."""
        secret = self._settings.openrouter_management_key
        assert secret is not None

        def page(number: int) -> list[object]:
            path = f"keys?offset={number * KEYS_PAGE_SIZE}&include_disabled=false{query}"
            body = self._management_get(path, secret, now, "list keys")
            return validate(KeysPage, body, "keys").data

        if len(numbers) == 1:
            return [page(numbers[0])]
        if self._page_pool is None:
            self._page_pool = ThreadPoolExecutor(
                self._page_concurrency, thread_name_prefix="openrouter-pages"
            )
        futures = [self._page_pool.submit(page, number) for number in numbers]
        wait(futures)  # every request of the window ends before the listing goes on or fails
        return [future.result() for future in futures]

    def _workspaces(self, secret: SecretStr, now: datetime) -> list[tuple[str, str]]:
        """(id, name) of each workspace; none for an account from before workspaces (404)."""
        found: list[tuple[str, str]] = []
        for page_number in range(MAX_WORKSPACE_PAGES):
            path = f"workspaces?offset={page_number * KEYS_PAGE_SIZE}&limit={KEYS_PAGE_SIZE}"
            try:
                body = self._management_get(path, secret, now, "list workspaces")
            except _NotFound:
                return []
            page = validate(WorkspacesPage, body, "workspaces").data
            found += [(w.id, self._scrub_label(w.name) or w.id) for w in page]
            if len(page) < KEYS_PAGE_SIZE:
                break
        return found

    def activity(self, now: datetime, day: str | None = None) -> list[Activity]:
        """`/activity` across every workspace: the last 30 completed UTC days, or one `day`."""
        secret = self._settings.openrouter_management_key
        if secret is None:
            raise FetchError("/activity needs OPENROUTER_MANAGEMENT_KEY: set it to read spend")
        path = "activity" if day is None else f"activity?date={quote(day, safe='')}"
        body = self._management_get(path, secret, now, "read the activity")
        rows = validate(ActivityPage, body, "activity").data
        return [
            Activity(
                r.date, self._scrub(r.model), self._scrub(r.provider_name), r.usage, r.requests
            )
            for r in rows
        ]

    def _management_get(
        self, path: str, secret: SecretStr, now: datetime, what: str
    ) -> dict[str, Any]:
        try:
            return self._get(path, secret, now)
        except _PaymentRequired as exc:
            raise FetchError(f"OpenRouter refused to {what} ({exc})") from None

    def _read_item(
        self, raw: object, where: str, listed: _Listed, workspace: str | None = None
    ) -> None:
        """Add one `/keys` item to `listed`: a KeyInfo, or its name among the unreadable."""
        try:
            item = validate(KeyItem, raw, "keys")
        except MalformedAnswer as exc:
            named = raw.get("hash") if isinstance(raw, dict) else None
            name = self._scrub(named) if isinstance(named, str) else ""
            log.warning("skipped an unreadable key (%s): %s", name or where, exc)
            listed.skip(name or where, hashed=bool(name))
            return
        key_hash = self._scrub(item.hash)
        if not key_hash:  # nothing left to name the key by: a subject needs a name
            log.warning("skipped an unreadable key (%s): a blank hash", where)
            listed.skip(where, hashed=False)
            return
        if item.disabled:
            listed.hashes.add(key_hash)
            return
        remaining = item.limit_remaining
        if item.limit is not None and remaining is None:
            remaining = item.limit - item.usage
        listed.add(
            KeyInfo(
                key_hash,
                self._scrub_label(item.name) or "",
                self._scrub_label(item.label) or "",
                item.limit,
                remaining,
                item.usage,
                self._scrub_label(item.limit_reset),
                workspace,
                item.usage_daily,
                item.usage_weekly,
                item.usage_monthly,
            )
        )

    def _read_key(self, now: datetime) -> dict[str, Any]:
        if self._key_path == "key":
            with contextlib.suppress(_NotFound):
                return self._get("key", self._api_key, now)
        # older deployments only know /auth/key; remember it so we ask once
        body = self._get("auth/key", self._api_key, now)
        self._key_path = "auth/key"
        return body

    def _read_account(self, now: datetime) -> float | None:
        """total_credits - total_usage, or None when no management key or not visible."""
        management_key = self._settings.openrouter_management_key
        if management_key is None:
            return None
        body = self._get("credits", management_key, now)
        credits = validate(CreditsAnswer, body, "credits").data
        # all zeros is how some keys are told "not visible", not a $0 balance
        if credits.total_credits == 0 and credits.total_usage == 0:
            return None
        return credits.total_credits - credits.total_usage

    def _get(self, path: str, secret: SecretStr, now: datetime) -> dict[str, Any]:
        """GET `path` through the retry layer; the JSON object of a 2xx answer."""
        retrying = Retrying(
            retry=retry_if_exception_type((_Transient, httpx.HTTPError)),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            retry_error_callback=self._give_up,
        )
        body: dict[str, Any] = retrying(self._attempt, path, secret, now)
        return body

    def _attempt(self, path: str, secret: SecretStr, now: datetime) -> dict[str, Any]:
        started = time.monotonic()
        try:
            auth = {"Authorization": f"Bearer {secret.get_secret_value()}"}
            response = self._http.get(path, headers=auth)
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
        self._raise_for(path, status, self._scrub(message), response.headers, now)

    def _raise_for(
        self, path: str, status: int, message: str, headers: httpx.Headers, now: datetime
    ) -> NoReturn:
        management = path.split("?")[0] in MANAGEMENT_PATHS
        setting = "OPENROUTER_MANAGEMENT_KEY" if management else "OPENROUTER_API_KEY"
        what = f"{status} {message}".strip()
        if status == 402:
            raise _PaymentRequired(what)
        if status == 403 and management:
            raise _NotManagement(
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
            raise _Transient(what, wait_s)
        if status == 404 and (path == "key" or path.startswith("workspaces")):
            raise _NotFound(what)
        if status == 404 and path == "auth/key":
            raise FetchError(
                f"OpenRouter has neither /key nor /auth/key ({what}): check "
                "OPENROUTER_BASE_URL, e.g. https://openrouter.ai/api/v1"
            )
        raise FetchError(f"OpenRouter answered {what} for /{path}: check OPENROUTER_BASE_URL")

    def _scrub_label(self, text: str | None) -> str | None:
        # OpenRouter masks labels; a server that echoes a whole key must not get it stored
        return None if text is None else self._scrub(text)

    def _scrub(self, text: str) -> str:
        """Server text made safe to store and show: no control or bidi character, no secret,
        one line, short. Every text from the API passes here before it goes anywhere."""
        # cleaned first: a zero-width character inside an echoed key would hide it from replace
        text = plain(text)
        for secret in (self._api_key, self._settings.openrouter_management_key):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "***")
        return text[:200]

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after_s is not None:
            return exc.retry_after_s
        return _BACKOFF(state)

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._settings.credit_retry_attempts:
            return True
        # never sleep past the budget: a longer Retry-After stops at once
        return _spent_s(state) + state.upcoming_sleep > self._settings.credit_retry_budget_s

    def _give_up(self, state: RetryCallState) -> NoReturn:
        exc = state.outcome.exception() if state.outcome else None
        what = exc.what if isinstance(exc, _Transient) else self._transport_error(exc)
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
            return f"{name}, cannot connect: {self._scrub(reason)}"
        if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
            return f"{name}, the connection broke before a full answer"
        return name

    def _connect_timeout_s(self) -> float:
        return min(5.0, self._settings.credit_http_timeout_s)


@dataclass
class _Listed:
    """The `/keys` items read so far, one per hash."""

    keys: dict[str, KeyInfo] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    hashes: set[str] = field(default_factory=set)  # every hash named, disabled ones too
    duplicates: int = 0
    unnamed: bool = False  # an item was skipped with no hash to name it by

    def add(self, key: KeyInfo) -> None:
        if key.hash not in self.hashes:
            self.hashes.add(key.hash)
            self.keys[key.hash] = key
            return
        self.duplicates += 1
        # two copies that disagree: the one with less left counts, whatever their order,
        # so a duplicate can neither hide a low key nor make it flap between checks
        kept = self.keys.get(key.hash)
        if kept is not None and _less_left(key, kept):
            self.keys[key.hash] = key

    def skip(self, name: str, *, hashed: bool) -> None:
        if not hashed:
            self.unnamed = True
        elif name in self.hashes:
            self.duplicates += 1
            return
        else:
            self.hashes.add(name)
        self.unreadable.append(name)

    def listing(self, stopped: str | None = None, *, complete: bool = False) -> KeyListing:
        notes = [stopped] if stopped else []
        if self.duplicates:
            plural = "s" if self.duplicates != 1 else ""
            notes.append(f"{self.duplicates} duplicate /keys item{plural} ignored")
        return KeyListing(
            list(self.keys.values()),
            self.unreadable,
            note="; ".join(notes) or None,
            complete=complete and not self.unnamed,
        )


def _less_left(key: KeyInfo, than: KeyInfo) -> bool:
    if key.remaining_usd is None:
        return False
    return than.remaining_usd is None or key.remaining_usd < than.remaining_usd


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
