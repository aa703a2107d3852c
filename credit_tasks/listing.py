"""The account's keys: `/workspaces` and the `/keys` pages of each, read into one KeyListing.

Pages are asked a window at a time on a bounded pool; each hash counts once, an item that
cannot be read is skipped and named, and the listing's note says why it stopped early or
what it ignored. Every request goes through the client's transport.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from pydantic import SecretStr

from .answers import KeyItem, KeysPage, WorkspacesPage, validate
from .errors import MalformedAnswer
from .readings import KeyInfo, KeyListing
from .transport import NotFound, Transport

# the client's log, as before it was split: the skipped keys are said under its name
log = logging.getLogger("credit_tasks.client")

KEYS_PAGE_SIZE = 100
MAX_KEY_PAGES = 1000  # 100,000 keys: a server that ignores offset cannot loop us forever
KEYS_CONCURRENCY = 8  # /keys pages asked at once, at most
MAX_WORKSPACE_PAGES = 100


class KeyLister:
    """Lists the keys of an account through `transport`, `page_concurrency` (at least 1) pages
    at most at once; call close() to end its pool."""

    def __init__(self, transport: Transport, page_concurrency: int = KEYS_CONCURRENCY) -> None:
        self._transport = transport
        self._page_concurrency = page_concurrency
        self._page_pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """End the page pool, waiting for the requests in flight."""
        if self._page_pool is not None:
            self._page_pool.shutdown(wait=True, cancel_futures=True)
        self._page_pool = None

    def listing(
        self, secret: SecretStr, now: datetime, *, max_pages: int = MAX_KEY_PAGES
    ) -> KeyListing:
        """Every enabled key, in every workspace, read with the management key `secret`.

        The pages of each workspace: the first two are asked one at a time (most accounts
        have one page, and the second says whether the server honours `offset`); while pages
        come back full, the next ones are asked in windows of 2, 4, then `page_concurrency` at
        once, and read in order until a short page (the pages after it in its window go
        unread). An item that cannot be read is skipped and named in
        `unreadable`; only a page that is not a list of items makes the whole listing fail.
        Each hash counts once, and a page that brings no new hash ends the listing (a server
        that ignores `offset` sends the same page forever); the listing's note says so; so
        does one that goes on past `max_pages`.
        """
        listed = _Listed()
        stopped: str | None = None
        workspaces: list[tuple[str | None, str | None]] = [(None, None)]
        for workspace_id, workspace in [*self._workspaces(secret, now)] or workspaces:
            stopped = (
                self._list_workspace(listed, secret, now, workspace_id, workspace, max_pages)
                or stopped
            )
        return listed.listing(stopped, complete=stopped is None)

    def _list_workspace(
        self,
        listed: _Listed,
        secret: SecretStr,
        now: datetime,
        workspace_id: str | None,
        workspace: str | None,
        max_pages: int,
    ) -> str | None:
        """Add one workspace's keys (the default one's for None) to `listed`, a window of pages
        at a time, read in page order; why the listing stopped before its last page, or None."""
        query = "" if workspace_id is None else f"&workspace_id={quote(workspace_id, safe='')}"
        first, window = 0, 1
        while first < max_pages:
            numbers = range(first, min(first + window, max_pages))
            pages = self._key_pages(secret, numbers, query, now)
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
        return f"/keys went on past {max_pages} pages: listing stopped there"

    def _key_pages(
        self, secret: SecretStr, numbers: range, query: str, now: datetime
    ) -> list[list[object]]:
        """The `/keys` pages `numbers` (from 0), asked at once; the first failure in page order
        raises."""

        def page(number: int) -> list[object]:
            path = f"keys?offset={number * KEYS_PAGE_SIZE}&include_disabled=false{query}"
            body = self._transport.management_get(path, secret, now, "list keys")
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
                body = self._transport.management_get(path, secret, now, "list workspaces")
            except NotFound:
                return []
            page = validate(WorkspacesPage, body, "workspaces").data
            found += [(w.id, self._transport.scrub_label(w.name) or w.id) for w in page]
            if len(page) < KEYS_PAGE_SIZE:
                break
        return found

    def _read_item(
        self, raw: object, where: str, listed: _Listed, workspace: str | None = None
    ) -> None:
        """Add one `/keys` item to `listed`: a KeyInfo, or its name among the unreadable."""
        scrub, scrub_label = self._transport.scrub, self._transport.scrub_label
        try:
            item = validate(KeyItem, raw, "keys")
        except MalformedAnswer as exc:
            named = raw.get("hash") if isinstance(raw, dict) else None
            name = scrub(named) if isinstance(named, str) else ""
            log.warning("skipped an unreadable key (%s): %s", name or where, exc)
            listed.skip(name or where, hashed=bool(name))
            return
        key_hash = scrub(item.hash)
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
                scrub_label(item.name) or "",
                scrub_label(item.label) or "",
                item.limit,
                remaining,
                item.usage,
                scrub_label(item.limit_reset),
                workspace,
                item.usage_daily,
                item.usage_weekly,
                item.usage_monthly,
            )
        )


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
