"""The OpenRouter client: reads `/key` (and `/credits` with a management key) into a Snapshot.

Money figures are taken as the API gives them: a negative `limit_remaining` is an overspent key
(a request in flight can take a key past its cap), never a malformed answer.

Every request goes through the transport (`transport`: one retry layer, errors translated once,
every text scrubbed of secrets); the account's keys are listed by `listing`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from .answers import ActivityPage, CreditsAnswer, KeyAnswer, validate
from .errors import FetchError
from .listing import KEYS_CONCURRENCY as KEYS_CONCURRENCY  # re-exported: the default
from .listing import MAX_KEY_PAGES, KeyLister  # the bound, passed to each listing from here
from .readings import SOURCES as SOURCES  # re-exported: the client's readings
from .readings import Activity, KeyListing, Reading
from .readings import KeyInfo as KeyInfo
from .readings import Snapshot as Snapshot
from .settings import Settings
from .transport import NotFound, NotManagement, PaymentRequired, Transport


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
        self._transport = Transport(settings, self._api_key, http, sleep=sleep)
        self._key_path = "key"
        self._pool: ThreadPoolExecutor | None = None
        self._lister = KeyLister(self._transport, page_concurrency)

    @property
    def _http(self) -> httpx.Client:
        """The httpx client every request goes through."""
        return self._transport.http

    def __enter__(self) -> OpenRouterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the httpx client, only if this client created it."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self._lister.close()
        self._transport.close()

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
        except PaymentRequired:
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
            key_label=self._transport.scrub_label(key.label),
            is_free_tier=key.is_free_tier,
            usage_daily_usd=key.usage_daily,
            usage_weekly_usd=key.usage_weekly,
            usage_monthly_usd=key.usage_monthly,
        )
        try:
            account = self._read_account(now)
        except PaymentRequired:
            return dataclasses.replace(known, remaining_usd=0.0, source="payment_required")
        except NotManagement as exc:
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

        The pages are asked a window at a time, at most `page_concurrency` at once (see
        `KeyLister.listing`); a listing that goes on past MAX_KEY_PAGES pages stops there.
        """
        management_key = self._settings.openrouter_management_key
        if management_key is None:
            return KeyListing()
        return self._lister.listing(management_key, now, max_pages=MAX_KEY_PAGES)

    def activity(self, now: datetime, day: str | None = None) -> list[Activity]:
        """`/activity` across every workspace: the last 30 completed UTC days, or one `day`."""
        secret = self._settings.openrouter_management_key
        if secret is None:
            raise FetchError("/activity needs OPENROUTER_MANAGEMENT_KEY: set it to read spend")
        path = "activity" if day is None else f"activity?date={quote(day, safe='')}"
        body = self._transport.management_get(path, secret, now, "read the activity")
        rows = validate(ActivityPage, body, "activity").data
        scrub = self._transport.scrub
        return [
            Activity(r.date, scrub(r.model), scrub(r.provider_name), r.usage, r.requests)
            for r in rows
        ]

    def _read_key(self, now: datetime) -> dict[str, Any]:
        if self._key_path == "key":
            with contextlib.suppress(NotFound):
                return self._transport.get("key", self._api_key, now)
        # older deployments only know /auth/key; remember it so we ask once
        body = self._transport.get("auth/key", self._api_key, now)
        self._key_path = "auth/key"
        return body

    def _read_account(self, now: datetime) -> float | None:
        """total_credits - total_usage, or None when no management key or not visible."""
        management_key = self._settings.openrouter_management_key
        if management_key is None:
            return None
        body = self._transport.get("credits", management_key, now)
        credits = validate(CreditsAnswer, body, "credits").data
        # all zeros is how some keys are told "not visible", not a $0 balance
        if credits.total_credits == 0 and credits.total_usage == 0:
            return None
        return credits.total_credits - credits.total_usage
