"""The page `/` as HTML: balance, runway, spend, chart, keys, alerts, silences and acks, and
the monitor's health.

Every part that changes sits in an element with an `id` and `data-live`; the page's script
fetches the page again every 30 s and swaps those parts in place, so nothing flashes. Links
are relative, so the page works mounted under any path of a host app. Every value from
Redis is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import urlencode

from ..rollup import width_text
from ..rules import ANY_SUBJECT, ANY_TYPE, Status
from ..silences import held_note, remaining
from ..text import duration, money, span
from . import chart
from .views import KEYS_PER_PAGE, RANGES_H, RECENT_ALERTS, PageData

SOURCES = {
    "account": "the account's balance (/credits)",
    "key_limit": "the key's own limit",
    "initial_balance": "CREDIT_INITIAL_BALANCE less usage",
    "payment_required": "a 402 from OpenRouter",
}
SPEND = (
    ("today", "spend_today_usd"),
    ("this week", "spend_week_usd"),
    ("this month", "spend_month_usd"),
)
SILENCE_HOW = 'credit-monitor silence add --subject account --for 6h --reason "top-up ordered"'


def _status(value: str | None) -> str:
    try:
        return Status(value or "unknown").value
    except ValueError:
        return Status.UNKNOWN.value


def _time(text: str | None) -> str:
    if not text:
        return "-"
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return escape(text)


def _ago(text: str | None, now: datetime) -> str:
    try:
        seconds = (now - datetime.fromisoformat(text or "")).total_seconds()
    except ValueError:
        return ""
    return f" ({duration(max(seconds, 0) / 3600).replace('about ', '')} ago)"


def _stamp(alert: dict[str, str]) -> datetime:
    return datetime.fromisoformat(alert["timestamp"])


def _href(data: PageData, **change: object) -> str:
    query = {"range": data.range, "page": data.page} | change
    return "?" + escape(urlencode(query))


def _balance(data: PageData) -> str:
    cur = data.current
    status = _status(cur.get("status"))
    source = cur.get("source") or ""
    shown = SOURCES.get(source, source.replace("_", " ") or "no check yet")
    rate, runway = cur.get("burn_rate_usd_per_hour"), cur.get("runway_hours")
    observed = cur.get("burn_span_hours")  # the history the rate was really measured over
    if rate and runway:
        pace = f"the pace of the last {span(float(observed))}" if observed else "the recent pace"
        projected = f"{duration(float(runway))} at {pace}"
    else:
        need = span(data.settings.credit_runway_min_span_minutes / 60)
        projected = f"not projected yet: it needs {need} of history with spend in the window"
    return f"""<section id="balance" data-live class="card status-{status}">
<p class="label">Balance</p>
<p class="balance" data-usd="{escape(cur.get("remaining_usd") or "")}">{
        escape(money(cur.get("remaining_usd"), missing="unknown"))
    }</p>
<p><span class="pill">{status.upper()}</span> from {escape(shown)}</p>
<p class="muted">checked {_time(cur.get("checked_at"))}{_ago(cur.get("checked_at"), data.now)};
used {escape(money(cur.get("usage_usd"), missing="-"))} so far</p>
</section>
<section id="runway" data-live class="card">
<p class="label">Runway</p><p class="figure">{escape(projected)}</p>
<p class="label">Burn rate</p><p class="figure">{
        escape(money(rate, missing="-"))
    }<span class="unit">/h</span></p>
<p class="label">Spend</p><div class="spend">{_spend(data)}</div>
<p class="muted">warning below {escape(money(data.settings.credit_warning_threshold))},
critical below {escape(money(data.settings.credit_critical_threshold))}</p>
</section>"""


def _spend(data: PageData) -> str:
    """Today's, this week's and this month's spend; "-" for a figure the check has not stored."""
    return "".join(
        f'<p data-period="{period.split()[-1]}" data-usd="{escape(data.current.get(field) or "")}">'
        f'<span class="figure">{escape(money(data.current.get(field), missing="-"))}</span> '
        f'<span class="unit">{period}</span></p>'
        for period, field in SPEND
    )


def _chart(data: PageData) -> str:
    current = ' aria-current="page"'
    tabs = "".join(
        f'<a href="{_href(data, range=name)}" data-nav{current if name == data.range else ""}>'
        f"{name}</a>"
        for name in RANGES_H
    )
    markers = [
        chart.Marker(
            datetime.fromisoformat(a["timestamp"]), a.get("type", ""), a.get("message", "")
        )
        for a in data.alerts
        if a.get("timestamp")
    ]
    svg = chart.render(
        data.buckets,
        start=data.start,
        end=data.now,
        warning_usd=data.settings.credit_warning_threshold,
        critical_usd=data.settings.credit_critical_threshold,
        markers=markers,
        label=f"Balance over the last {data.range}",
    )
    checks = sum(b.checks for b in data.buckets)
    return f"""<section id="chart" data-live class="card wide">
<div class="head"><h2>Balance over the last {data.range}</h2><nav class="tabs">{tabs}</nav></div>
{svg}
<p class="muted">{checks:,} checks in {len(data.buckets):,} buckets of {width_text(data.width_s)}:
the band spans each bucket's lowest and highest balance, the line its last.
<span class="key-topup">▲ top-up</span> <span class="key-alert">● alert</span></p>
</section>"""


def _percent(row: dict[str, object]) -> str:
    limit, left = row.get("limit_usd"), row.get("remaining_usd")
    if not isinstance(limit, int | float) or not isinstance(left, int | float) or limit <= 0:
        return "-"
    return f"{left / limit * 100:.0f} %"


def _keys(data: PageData) -> str:
    if not data.keys_total:
        body = (
            '<p class="muted">No keys recorded: set OPENROUTER_MANAGEMENT_KEY so each check '
            "lists the account's keys.</p>"
        )
    else:
        rows = "".join(
            f'<tr class="status-{_status(str(r.get("status")))}">'
            f"<td>{escape(str(r.get('name') or '-'))}</td>"
            f'<td class="opt"><code>{escape(str(r.get("label") or ""))}</code></td>'
            f'<td class="num">{escape(money(r.get("remaining_usd"), missing="no limit"))}</td>'
            f'<td class="num">{escape(money(r.get("limit_usd"), missing="-"))}</td>'
            f'<td class="num opt">{_percent(r)}</td>'
            f'<td><span class="pill">{_status(str(r.get("status")))}</span></td></tr>'
            for r in data.keys
        )
        first = (data.page - 1) * KEYS_PER_PAGE + 1
        last = first + len(data.keys) - 1
        prev = (
            f'<a href="{_href(data, page=data.page - 1)}#keys" data-nav rel="prev">Previous</a>'
            if data.page > 1
            else '<span class="off">Previous</span>'
        )
        nxt = (
            f'<a href="{_href(data, page=data.page + 1)}#keys" data-nav rel="next">Next</a>'
            if data.page < data.pages
            else '<span class="off">Next</span>'
        )
        body = f"""<div class="scroll"><table>
<thead><tr><th>Name</th><th class="opt">Label</th><th class="num">Left</th>
<th class="num">Limit</th><th class="num opt">Left of limit</th><th>Status</th></tr></thead>
<tbody>{rows}</tbody></table></div>
<nav class="pager">{prev}<span class="where" data-page="{data.page}" data-pages="{data.pages}">
keys {first:,}–{last:,} of {data.keys_total:,},
page {data.page} of {data.pages}</span>{nxt}</nav>"""
    return f"""<section id="keys" data-live class="card wide">
<h2>Keys, least remaining first</h2>{body}</section>"""


def _delivery(alert: dict[str, str]) -> str:
    if alert.get("delivery_error"):
        return f'<span class="bad">delivery failed: {escape(alert["delivery_error"])}</span>'
    if held := held_note(alert):  # recorded, never meant to go out
        return f'<span class="muted">held back: {escape(held)}</span>'
    if not alert.get("delivered_at"):
        return '<span class="warn">not delivered yet</span>'
    channels = [c for c in (alert.get("channels_ok") or "").split(",") if c]
    also = f", {len(channels)} channel(s)" if channels else ""
    return f'<span class="good">delivered {_time(alert["delivered_at"])}{also}</span>'


def _alerts(data: PageData) -> str:
    recent = data.alerts[:RECENT_ALERTS]
    if not recent:
        items = '<p class="muted">No alert yet.</p>'
    else:
        items = (
            "<ul>"
            + "".join(
                f'<li class="alert-{escape(a.get("type", ""))}">'
                f'<span class="pill">{escape(a.get("type", ""))}</span> '
                f'<span class="muted">{_time(a.get("timestamp"))}</span>'
                f"<br>{escape(a.get('message', ''))}<br>{_delivery(a)}</li>"
                for a in recent
            )
            + "</ul>"
        )
    return f"""<section id="alerts" data-live class="card">
<h2>Recent alerts</h2>{items}</section>"""


def _subject(subject: object) -> str:
    return "every subject" if subject == ANY_SUBJECT else escape(str(subject))


def _silence(row: dict[str, object]) -> str:
    kind = str(row.get("type") or ANY_TYPE)
    covers = "alerts of any type" if kind == ANY_TYPE else f"{escape(kind)} alerts"
    left = remaining(float(str(row.get("remaining_s") or 0)))
    return (
        f'<li class="silence"><span class="pill">silence</span> '
        f"<strong>{_subject(row.get('subject'))}</strong>, {covers}<br>"
        f"{escape(str(row.get('reason') or ''))}<br>"
        f'<span class="muted"><span class="left">{escape(left)} left</span>, until '
        f"{_time(str(row.get('ends_at') or ''))} · id <code>{escape(str(row.get('id')))}</code>"
        "</span></li>"
    )


def _ack(row: dict[str, object]) -> str:
    reason = str(row.get("reason") or "")
    return (
        f'<li class="ack"><span class="pill">ack</span> '
        f"<strong>{_subject(row.get('subject'))}</strong>: repeats of alert "
        f"<code>{escape(str(row.get('alert_id')))}</code> held back while the condition lasts<br>"
        + (f"{escape(reason)}<br>" if reason else "")
        + f'<span class="muted">acknowledged episode since {_time(str(row.get("since") or ""))}'
        "</span></li>"
    )


def _silences(data: PageData) -> str:
    silences, acks = len(data.silences), len(data.acks)
    counts = f'data-silences="{silences}" data-acks="{acks}"'
    if not silences and not acks:
        body = (
            f'<p class="muted" {counts}>No silence or ack in force. To hold '
            f"alerts back for a while: <code>{escape(SILENCE_HOW)}</code>; to stop the "
            "repeats of an alert: <code>credit-monitor ack ALERT_ID</code>.</p>"
        )
    else:
        counted = ((silences, "silence"), (acks, "ack"))
        said = " and ".join(f"{n} {what}{'s' * (n != 1)}" for n, what in counted if n)
        body = (
            f'<p class="muted" {counts}>{said} in force; '
            "<code>credit-monitor silence expire ID</code> ends a silence early.</p><ul>"
            + "".join(_silence(r) for r in data.silences)
            + "".join(_ack(r) for r in data.acks)
            + "</ul>"
        )
    return f"""<section id="silences" data-live class="card">
<h2>Silences and acks</h2>{body}</section>"""


def _health(data: PageData) -> str:
    mon = data.monitoring
    verdict = data.health
    state = "good" if verdict.ok else "bad"
    said = "healthy" if verdict.ok else str(verdict.body.get("reason", ""))
    unreadable = mon.get("unreadable_keys")
    more = (
        f"<dt>Unreadable keys</dt><dd>{escape(unreadable.replace(',', ', '))}</dd>"
        if unreadable
        else ""
    )
    return f"""<section id="health" data-live class="card">
<h2>Monitor health</h2><p class="{state}">{escape(said)}</p><dl>
<dt>Last check</dt><dd>{_time(mon.get("last_check_at"))}{
        _ago(mon.get("last_check_at"), data.now)
    }</dd>
<dt>Last success</dt><dd>{_time(mon.get("last_success_at"))}{
        _ago(mon.get("last_success_at"), data.now)
    }</dd>
<dt>Failures in a row</dt><dd>{escape(mon.get("consecutive_failures") or "0")}</dd>
<dt>Last error</dt><dd>{escape(mon.get("last_error") or "none")}</dd>{more}</dl></section>"""


def render(data: PageData) -> str:
    """The whole page."""
    status = _status(data.current.get("status"))
    title = f"{money(data.current.get('remaining_usd'), missing='unknown')} · OpenRouter credits"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" href="static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="static/style.css">
<script src="static/app.js" defer></script>
</head><body class="status-{status}" data-refresh-s="30">
<header><h1>OpenRouter credits</h1>
<p class="muted" id="stamp" data-live>as of {_time(data.now.isoformat())} · refreshes every 30 s
<span id="offline"></span></p></header>
<main>
{_balance(data)}
{_chart(data)}
{_alerts(data)}
{_silences(data)}
{_health(data)}
{_keys(data)}
</main>
<footer class="muted">credit_tasks · <a href="metrics">metrics</a> ·
<a href="api/status">status JSON</a> · <a href="api/history?hours={RANGES_H[data.range]:g}">history
JSON</a> · <a href="healthz">health</a></footer>
</body></html>
"""


def error_page(message: str) -> str:
    """A short page for when Redis cannot be read: what failed, in one sentence."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpenRouter credits: unavailable</title>
<link rel="icon" href="static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="static/style.css"><script src="static/app.js" defer></script>
</head><body class="status-unknown" data-refresh-s="30"><header><h1>OpenRouter credits</h1></header>
<main><section id="balance" data-live class="card wide"><p class="bad">{escape(message)}</p>
</section></main></body></html>
"""
