"""One set of resources per process: the settings, the store, the OpenRouter client, the channels.

A worker process builds one on first use after the fork and closes it at shutdown (see
`tasks`); the CLI builds the same object for one command; tests build it from their own
settings. The client and the channels are made on first use: `status` needs neither, and
`send_alert` needs no API key.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cached_property

from .channels import Channel, load_channels
from .client import OpenRouterClient
from .errors import ConfigError
from .report import Report, build
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)


class Runtime:
    """The resources of one process; `close()` frees them."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store.from_settings(settings)
        self._client: OpenRouterClient | None = None

    @property
    def client(self) -> OpenRouterClient:
        """One pooled HTTP client, made on first use (it needs OPENROUTER_API_KEY)."""
        if self._client is None:
            self._client = OpenRouterClient(self.settings)
        return self._client

    @cached_property
    def _channels(self) -> tuple[list[Channel], str | None]:
        urls = self.settings.credit_alert_urls
        try:
            return load_channels(urls.get_secret_value() if urls else None), None
        except ConfigError as exc:
            # one policy for both faces: the check runs and the alert reaches Redis; the
            # bad setting is said once here and on every alert record
            log.error("%s: alerts go to the Redis channel only", exc)
            return [], str(exc)

    @property
    def channels(self) -> list[Channel]:
        """The Apprise channels of CREDIT_ALERT_URLS; none when the setting is bad."""
        return self._channels[0]

    @property
    def channels_error(self) -> str | None:
        """Why CREDIT_ALERT_URLS gave no channels, when it is bad."""
        return self._channels[1]

    def report(self, day: str) -> Report:
        """The daily report of `day` (YYYY-MM-DD), read from the store and, with the
        management key, /activity; the same for the task and the command."""
        managed = self.settings.openrouter_management_key is not None
        read = (lambda d: self.client.activity(datetime.now(UTC), d)) if managed else None
        return build(self.store, day, managed=managed, read_activity=read)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
