"""Alert delivery to people through Apprise: Slack, Telegram, e-mail, webhooks and the rest.

`CREDIT_ALERT_URLS` holds Apprise URLs, comma-separated, or the path of an Apprise config
file (text or YAML). The URLs carry tokens, so a channel is known by `id` (a short hash, safe
to store) and shown only by `label` (Apprise's privacy-masked form, without its query).

Apprise logs on the "apprise" logger. While parsing, it logs rejected URLs raw or only
heuristically masked, and some plugins log the invalid token itself, so its records are
dropped while `load_channels` runs (in that thread only) and replaced by our own one line.
While sending, its INFO and WARNING lines name only the host; its DEBUG lines (and urllib3's)
show request URLs, which for Slack, Telegram and webhook paths contain the token.

A slow channel is bounded by Apprise's own timeouts: 4 s to connect and 4 s per read by
default, settable per URL with `?cto=` and `?rto=` (seconds); `?retry=N` multiplies that.
Channels are sent one after another, so the worst case is the sum over the channels.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from apprise import Apprise, AppriseConfig, NotificationManager, NotifyBase, NotifyType

from .alerts import Alert
from .errors import ConfigError

log = logging.getLogger(__name__)

APPRISE_WIKI = "https://github.com/caronc/apprise/wiki"
TITLE_PREFIX = "OpenRouter credits"

NOTIFY_TYPES: dict[str, str] = {
    "warning": NotifyType.WARNING.value,
    "critical": NotifyType.FAILURE.value,
    "unknown": NotifyType.FAILURE.value,
    "resolved": NotifyType.SUCCESS.value,
    "runway": NotifyType.WARNING.value,
    "spike": NotifyType.WARNING.value,
    "report": NotifyType.INFO.value,
}

# Apprise's and urllib3's DEBUG lines carry request URLs, i.e. channel tokens: never below INFO
for _name in ("apprise", "urllib3"):
    if logging.getLogger(_name).getEffectiveLevel() < logging.INFO:
        logging.getLogger(_name).setLevel(logging.INFO)

_SCHEME_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_PLUGINS = NotificationManager()  # type: ignore[no-untyped-call]  # Apprise's singleton


@dataclass(frozen=True)
class Channel:
    """One place alerts go: `id` and `label` are safe to store and print; the plugin is not."""

    id: str
    label: str
    _plugin: NotifyBase = field(repr=False, compare=False)


class _ThisThread(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        if record.levelno >= logging.WARNING:
            self.dropped += 1
        return False


@contextmanager
def _apprise_silenced() -> Iterator[_ThisThread]:
    """Drop this thread's Apprise log records: while parsing they may quote the URL."""
    apprise_log = logging.getLogger("apprise")
    quiet = _ThisThread()
    apprise_log.addFilter(quiet)
    try:
        yield quiet
    finally:
        apprise_log.removeFilter(quiet)


def _url(plugin: NotifyBase, *, privacy: bool) -> str:
    return str(plugin.url(privacy=privacy))  # type: ignore[no-untyped-call]  # untyped in Apprise


def _channel(plugin: NotifyBase) -> Channel:
    # the canonical URL, so one channel has one id whether written in the env or in a file
    full = _url(plugin, privacy=False)
    label = _url(plugin, privacy=True).split("?", 1)[0]
    return Channel(hashlib.sha256(full.encode()).hexdigest()[:12], label, plugin)


def _refuse(number: int, scheme: str | None, *, known: bool = False) -> ConfigError:
    if scheme is None:
        what = "no scheme, and not an existing config file either"
    elif known:
        what = f"a {scheme!r} URL, but its parts do not parse"
    else:
        what = f"scheme {scheme!r}"
    return ConfigError(
        f"CREDIT_ALERT_URLS entry {number} is not a URL Apprise knows ({what}): see {APPRISE_WIKI}"
    )


def _from_url(number: int, entry: str) -> NotifyBase:
    match = _SCHEME_RE.match(entry)
    scheme = match.group(1).lower() if match else None
    try:
        plugin = Apprise.instantiate(entry)
    except Exception:  # its text could quote the URL
        plugin = None
    if plugin is None:
        raise _refuse(number, scheme, known=scheme is not None and scheme in _PLUGINS)
    return plugin


def _from_file(path: str) -> list[NotifyBase]:
    with _apprise_silenced() as quiet:
        plugins = list(AppriseConfig(path).services())
    if not plugins:
        raise ConfigError(
            f"CREDIT_ALERT_URLS file {path} yields no Apprise URL: make it readable and "
            f"list at least one URL (text: one a line; YAML: under `urls:`), see {APPRISE_WIKI}"
        )
    if quiet.dropped:
        log.warning(
            "CREDIT_ALERT_URLS file %s: Apprise reported problems, some entries may be skipped; "
            "`apprise --dry-run -vv --config %s` shows which (and prints their secrets)",
            path,
            path,
        )
    return plugins


def load_channels(spec: str | None) -> list[Channel]:
    """The channels `spec` names; ConfigError (one line, no secrets) on anything Apprise refuses.

    An existing file is read as an Apprise config file, anything else as comma-separated
    URLs. A channel listed twice is kept once.
    """
    if not spec or not spec.strip():
        return []
    path = os.path.expanduser(spec.strip())
    if os.path.isfile(path):
        plugins = _from_file(path)
    else:
        entries = [entry.strip() for entry in spec.split(",")]
        with _apprise_silenced():
            plugins = [
                _from_url(number, entry)
                for number, entry in enumerate((e for e in entries if e), start=1)
            ]
    channels: dict[str, Channel] = {}
    for plugin in plugins:
        channel = _channel(plugin)
        channels.setdefault(channel.id, channel)
    return list(channels.values())


def title_for(kind: str | None) -> str:
    """The notification title: the alert type, shouted unless it is good news."""
    kind = kind or "alert"
    return f"{TITLE_PREFIX}: {kind if kind == 'resolved' else kind.upper()}"


def send(channels: Sequence[Channel], alert: Alert, *, skip: Collection[str] = ()) -> list[str]:
    """Send `alert` to every channel not in `skip`; the ids of those that failed, in order.

    A failing channel never stops the others. Apprise's log line (host only) says why.
    """
    title = title_for(alert.type.value)
    body = alert.message or title  # Apprise refuses an empty body
    notify_type = NotifyType(NOTIFY_TYPES.get(alert.type.value, NotifyType.INFO.value))
    alert_id = alert.id
    failed: list[str] = []
    for channel in channels:
        if channel.id in skip:
            continue
        try:
            delivered = bool(
                channel._plugin.notify(body=body, title=title, notify_type=notify_type)
            )
            why = "see the apprise log"
        except Exception as exc:  # a plugin bug is one failed channel, not a failed check
            delivered, why = False, type(exc).__name__  # its text may quote the URL
        if delivered:
            log.info("alert %s delivered to %s", alert_id, channel.label)
        else:
            log.warning("alert %s not delivered to %s (%s)", alert_id, channel.label, why)
            failed.append(channel.id)
    return failed
