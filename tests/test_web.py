"""The web face: standalone and mounted in a FastAPI host, on real checks in a real Redis."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from credit_tasks import notify, rollup
from credit_tasks.check import run_check
from credit_tasks.client import OpenRouterClient
from credit_tasks.runtime import Runtime
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator
from credit_tasks.store import Commit, Store
from credit_tasks.text import money
from credit_tasks.web import create_app
from credit_tasks.web.command import loopback, refuse_open_bind
from credit_tasks.web.page import SPEND
from credit_tasks.web.views import KEYS_PER_PAGE, BadQuery, health, hours_of, page_of, range_of

from .conftest import make_settings, run_cli, service_env

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


def check(settings: Settings, store: Store, now: datetime | None = None) -> Any:
    with OpenRouterClient(settings) as api:
        result = run_check(settings, api, store, now)
    for alert in result.alerts:
        notify.deliver(store, alert, now=now or datetime.now(UTC))
    return result


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store)) as client:
        yield client


def a_fleet(store: Store, count: int) -> dict[str, dict[str, Any]]:
    """`count` capped keys in the key table, as a check writes it, with distinct balances."""
    rows = {}
    for i in range(count):
        limit = 10.0 + i % 7
        left = round((i * 37 % count) / count * limit, 4)
        rows[f"h{i:05d}"] = {
            "hash": f"h{i:05d}",
            "name": f"Customer {i}",
            "label": f"sk-or-v1-c{i:03d}...xyz",
            "limit_usd": limit,
            "remaining_usd": left,
            "usage_usd": limit - left,
            "limit_reset": None,
            "status": "critical" if left < 0.05 * limit else "ok",
        }
    store.commit(Commit(datetime.now(UTC), keys=rows))
    return rows


def test_the_page_shows_the_balance_its_status_source_runway_and_alerts(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    for usd in (12.0, 9.0, 8.25):
        balance(sim, usd)
        check(settings, store)
    page = web.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<p class="balance" data-usd="8.25">$8.25</p>' in html
    assert 'id="balance" data-live class="card status-warning"' in html
    assert "the account&#x27;s balance" in html
    assert "/h</span>" in html and "Runway" in html
    assert "OpenRouter credits are low" in html  # the warning alert, listed
    assert "delivered 20" in html  # with its delivery
    assert 'class="marker alert-warning"' in html  # and marked on the chart
    assert "Failures in a row</dt><dd>0" in html


def section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}".*?</section>', html, re.S)
    assert found, f"no #{name} section"
    return found[0]


def test_the_page_lists_the_silences_and_acks_added_from_the_command_line(
    sim: Simulator,
    redis_server: str,
    settings: Settings,
    store: Store,
    web: TestClient,
    tmp_path: Path,
) -> None:
    empty = section(web.get("/").text, "silences")
    assert 'data-silences="0" data-acks="0"' in empty
    assert "No silence or ack in force" in empty
    assert "credit-monitor silence add --subject account --for 6h" in empty  # how to add one
    for usd in (20.0, 8.0):  # a warning, delivered
        balance(sim, usd)
        check(settings, store)
    [warning] = [a for a in store.recent_alerts(10) if a["type"] == "warning"]
    env = service_env(sim, redis_server)
    added = run_cli(
        env,
        "silence",
        "add",
        "--subject",
        "account",
        "--type",
        "critical",
        "--for",
        "6h",
        "--reason",
        "top-up <ordered> & paid",
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    acked = run_cli(env, "ack", warning["id"], "--reason", "finance knows", cwd=tmp_path)
    assert acked.returncode == 0, acked.stderr

    shown = section(web.get("/").text, "silences")
    assert 'data-silences="1" data-acks="1"' in shown
    assert "1 silence and 1 ack in force" in shown
    assert f"id <code>{silence_id}</code>" in shown
    assert "<strong>account</strong>, critical alerts" in shown
    assert "top-up &lt;ordered&gt; &amp; paid" in shown  # escaped, as every stored value
    assert re.search(r'<span class="left">(5h 59m|6h 0m) left</span>, until 20', shown)
    assert f"repeats of alert <code>{warning['id']}</code>" in shown
    assert "finance knows" in shown

    balance(sim, 4.0)  # a critical under the silence: recorded, held back; a new episode
    check(settings, store)
    html = web.get("/").text
    assert f"held back: silenced by {silence_id}" in section(html, "alerts")
    assert 'data-silences="1" data-acks="0"' in section(html, "silences")  # the ack's is over

    assert store.expire_silence(silence_id, datetime.now(UTC)) is not None
    after = section(web.get("/").text, "silences")
    assert "No silence or ack in force" in after and silence_id not in after
    assert web.get("/api/status").json()["silences"] == []


def test_the_page_shows_the_spend_of_the_day_week_and_month_once_stored(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    balance(sim, 20.0)
    check(settings, store)
    stored = store.current()
    html = section(web.get("/").text, "runway")
    for _, field in SPEND:  # as the check stored them, if it does
        shown = money(stored.get(field), missing="-")
        assert f'data-usd="{stored.get(field) or ""}"><span class="figure">{shown}</span>' in html
    store.redis.hdel(store.keys.current, *(field for _, field in SPEND))
    html = section(web.get("/").text, "runway")
    for period in ("today", "week", "month"):  # none stored: "-"
        assert f'<p data-period="{period}" data-usd=""><span class="figure">-</span>' in html, (
            period
        )
    spend = {"spend_today_usd": "1.25", "spend_week_usd": "", "spend_month_usd": "1234.5"}
    store.redis.hset(store.keys.current, mapping=spend)
    html = section(web.get("/").text, "runway")
    assert '<p data-period="today" data-usd="1.25"><span class="figure">$1.25</span>' in html
    assert '<p data-period="week" data-usd=""><span class="figure">-</span>' in html
    assert '<p data-period="month" data-usd="1234.5"><span class="figure">$1,234.50</span>' in html
    assert '<span class="unit">this month</span>' in html


def test_the_chart_has_one_point_per_bucket_the_api_returns(
    settings: Settings, store: Store, web: TestClient
) -> None:
    now = datetime.now(UTC)
    for m in range(600, 0, -1):
        usd = 30.0 - m * 0.01 if m != 200 else 3.0  # one dip below the critical line
        store.record_success(
            {"remaining_usd": usd, "usage_usd": 1.0, "source": "account"},
            "ok",
            now - timedelta(minutes=m),
        )
    api = web.get("/api/history", params={"hours": 24}).json()
    html = web.get("/", params={"range": "24h"}).text
    points = re.search(r'<polyline class="balance" points="([^"]+)"', html)[1]  # type: ignore[index]
    assert len(points.split()) == len(api["buckets"]) > 0
    assert f'data-points="{len(api["buckets"])}"' in html
    assert min(b["min_usd"] for b in api["buckets"]) == 3.0  # the dip survives the bucketing
    assert 'class="threshold warning" data-usd="10"' in html
    assert 'class="threshold critical" data-usd="5"' in html
    assert 'class="topup"' in html  # the rise back from $3 is drawn as a top-up


def test_history_answers_ninety_days_in_at_most_a_thousand_buckets_of_min_max_last(
    store: Store, web: TestClient
) -> None:
    now = datetime.now(UTC)
    for h in range(90 * 24, 0, -1):
        store.record_success(
            {"remaining_usd": 100.0 - h * 0.01, "usage_usd": 1.0, "source": "account"},
            "ok",
            now - timedelta(hours=h),
        )
    answer = web.get("/api/history", params={"hours": 2160}).json()
    assert answer["hours"] == 2160 and answer["bucket_s"] == 3 * 3600
    assert 0 < len(answer["buckets"]) <= rollup.MAX_BUCKETS
    # every check but those of the oldest 3-hour bucket, which the retention trims whole
    assert 90 * 24 - 3 <= sum(b["checks"] for b in answer["buckets"]) <= 90 * 24
    assert set(answer["buckets"][0]) >= {"start", "min_usd", "max_usd", "last_usd"}
    assert answer["summary"]["last_remaining_usd"] == pytest.approx(99.99)


def test_api_status_answers_what_the_status_command_prints(
    sim: Simulator,
    redis_server: str,
    settings: Settings,
    store: Store,
    web: TestClient,
    tmp_path: Path,
) -> None:
    balance(sim, 4.0)
    check(settings, store)
    printed = run_cli(service_env(sim, redis_server), "status", "--json", cwd=tmp_path)
    assert printed.returncode == 2, printed.stderr
    answer = web.get("/api/status")
    assert answer.status_code == 200
    assert answer.json() == json.loads(printed.stdout)
    assert answer.json()["current"]["status"] == "critical"


def test_the_keys_table_pages_least_remaining_first(store: Store, web: TestClient) -> None:
    rows = a_fleet(store, 120)
    ordered = sorted(rows.values(), key=lambda r: r["remaining_usd"])
    seen = []
    for number in (1, 2, 3):
        html = web.get("/", params={"page": number}).text
        names = re.findall(r"<tr class=\"status-\w+\"><td>([^<]+)</td>", html)
        assert len(names) == (KEYS_PER_PAGE if number < 3 else 20)
        assert f'data-page="{number}" data-pages="3"' in html
        seen += names
    assert seen == [r["name"] for r in ordered]
    last = web.get("/", params={"page": 9}).text  # past the end: the last page
    assert 'data-page="3" data-pages="3"' in last


@pytest.mark.parametrize(
    ("path", "params", "sentence"),
    [
        ("/", {"range": "1y"}, "range must be one of 24h, 7d, 30d or 90d."),
        ("/", {"page": "0"}, "page must be a whole number from 1 up."),
        ("/", {"page": "two"}, "page must be a whole number from 1 up."),
        ("/api/history", {"hours": "0"}, "hours must be a number above 0"),
        ("/api/history", {"hours": "-3"}, "hours must be a number above 0"),
        ("/api/history", {"hours": "lots"}, "hours must be a number above 0"),
        ("/api/history", {"hours": "nan"}, "hours must be a number above 0"),
        ("/api/history", {"hours": "1e9"}, "hours must be a number above 0"),
    ],
)
def test_a_bad_query_parameter_gets_a_400_in_one_sentence(
    web: TestClient, path: str, params: dict[str, str], sentence: str
) -> None:
    answer = web.get(path, params=params)
    assert answer.status_code == 400
    assert answer.text.startswith(sentence)
    assert answer.text.count(".") == 1 and answer.text.endswith(".")  # one sentence
    assert "\n" not in answer.text


def test_healthz_is_503_before_any_check_then_200_after_one(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    before = web.get("/healthz")
    assert before.status_code == 503 and before.json()["status"] == "no check yet"
    check(settings, store)
    after = web.get("/healthz")
    assert after.status_code == 200 and after.json()["status"] == "ok"


def test_healthz_is_503_when_redis_does_not_answer(sim: Simulator) -> None:
    settings = make_settings(sim, "redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        answer = client.get("/healthz")
        assert answer.status_code == 503
        assert answer.json()["status"] == "redis unreachable"
        assert "unreachable" in answer.json()["reason"]
        page = client.get("/")
        assert page.status_code == 503 and "unreachable" in page.text
        assert client.get("/api/status").status_code == 503
        assert "openrouter_up 0.0" in client.get("/metrics").text


@pytest.mark.parametrize(
    ("age_s", "ok", "status"),
    [
        (10, True, "ok"),
        (2.5 * 60, True, "ok"),
        (2.5 * 60 + 1, False, "stale"),
        (None, False, "no check yet"),
    ],
)
def test_health_allows_two_and_a_half_intervals(age_s: float | None, ok: bool, status: str) -> None:
    monitoring = (
        {} if age_s is None else {"last_success_at": (NOW - timedelta(seconds=age_s)).isoformat()}
    )
    verdict = health(monitoring, 60.0, NOW)
    assert verdict.ok is ok and verdict.body["status"] == status


@pytest.mark.parametrize(
    ("parse", "given", "expected"),
    [
        (range_of, None, "24h"),
        (range_of, "90d", "90d"),
        (page_of, "", 1),
        (page_of, "12", 12),
        (hours_of, None, 24.0),
        (hours_of, "2160", 2160.0),
        (hours_of, "0.5", 0.5),
    ],
)
def test_good_query_values_are_read(parse: Any, given: str | None, expected: object) -> None:
    assert parse(given) == expected


@pytest.mark.parametrize(("parse", "given"), [(range_of, "7"), (page_of, "-1"), (hours_of, "inf")])
def test_bad_query_values_are_refused(parse: Any, given: str) -> None:
    with pytest.raises(BadQuery):
        parse(given)


@pytest.fixture
def guarded(sim: Simulator, redis_url: str, store: Store) -> Iterator[TestClient]:
    settings = make_settings(sim, redis_url, credit_web_auth="ops:s3cret-pass")
    with TestClient(create_app(settings, store)) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/metrics", "/api/status", "/api/history", "/static/app.js"])
def test_basic_auth_guards_everything_but_healthz(guarded: TestClient, path: str) -> None:
    assert guarded.get(path).status_code == 401
    assert guarded.get(path).headers["www-authenticate"].startswith("Basic")
    assert guarded.get(path, auth=("ops", "wrong")).status_code == 401
    assert guarded.get(path, auth=("ops", "s3cret-pass")).status_code == 200
    assert guarded.get("/healthz").status_code in (200, 503)  # never 401


def test_metrics_can_stay_public_behind_auth(sim: Simulator, redis_url: str, store: Store) -> None:
    settings = make_settings(
        sim, redis_url, credit_web_auth="ops:s3cret-pass", credit_web_metrics_public=True
    )
    with TestClient(create_app(settings, store)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/").status_code == 401


def test_it_mounts_in_a_fastapi_host_with_relative_links(
    sim: Simulator, settings: Settings, store: Store
) -> None:
    balance(sim, 42.0)
    check(settings, store)
    host = FastAPI()

    @host.get("/")
    def root() -> dict[str, str]:
        return {"app": "host"}

    host.mount("/credits", create_app(settings, store))
    with TestClient(host) as client:
        assert client.get("/").json() == {"app": "host"}
        page = client.get("/credits/")
        assert page.status_code == 200 and "$42.00" in page.text
        assert 'href="static/style.css"' in page.text and 'src="static/app.js"' in page.text
        assert client.get("/credits/static/app.js").status_code == 200
        assert client.get("/credits/api/status").json()["current"]["remaining_usd"] == "42.0"
        assert "openrouter_balance_dollars 42.0" in client.get("/credits/metrics").text
        assert client.get("/credits/healthz").status_code == 200
        assert client.get("/credits/api/history", params={"hours": "x"}).status_code == 400


def test_auth_holds_when_mounted(sim: Simulator, redis_url: str, store: Store) -> None:
    host = FastAPI()
    settings = make_settings(sim, redis_url, credit_web_auth="ops:s3cret-pass")
    host.mount("/credits", create_app(settings, store))
    with TestClient(host) as client:
        assert client.get("/credits/").status_code == 401
        assert client.get("/credits/", auth=("ops", "s3cret-pass")).status_code == 200
        assert client.get("/credits/healthz").status_code == 503  # open, and no check yet


@pytest.mark.parametrize(
    ("host", "is_loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.org", False),
    ],
)
def test_only_loopback_addresses_count_as_local(host: str, is_loopback: bool) -> None:
    assert loopback(host) is is_loopback


def test_a_public_bind_needs_basic_auth(sim: Simulator, redis_url: str) -> None:
    open_ = make_settings(sim, redis_url)
    with pytest.raises(Exception, match="CREDIT_WEB_AUTH"):
        refuse_open_bind("0.0.0.0", open_)
    refuse_open_bind("0.0.0.0", make_settings(sim, redis_url, credit_web_auth="a:b"))
    refuse_open_bind("127.0.0.1", open_)


def test_serve_refuses_a_public_address_without_auth_in_one_line(
    sim: Simulator, redis_server: str, tmp_path: Path
) -> None:
    done = run_cli(service_env(sim, redis_server), "serve", "--host", "0.0.0.0", cwd=tmp_path)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CREDIT_WEB_AUTH" in lines[0], done.stderr


def test_no_secret_reaches_the_page_the_json_or_the_metrics(sim: Simulator, own_redis: Any) -> None:
    """Real checks with every secret set, a failing channel whose URL holds a token, then
    every answer of the web face is searched for each secret."""
    server = own_redis("--requirepass", "redis-pw-9d2c4e1f7a")
    secrets = {
        "the Redis password": "redis-pw-9d2c4e1f7a",
        "the web password": "web-pw-3b8e0c6d2f",
        "the channel token": "chan-tok-6a1f9e3c7b",
    }
    settings = make_settings(
        sim,
        f"redis://:{secrets['the Redis password']}@127.0.0.1:{server.port}/0",
        credit_web_auth=f"ops:{secrets['the web password']}",
        credit_alert_urls=f"json://127.0.0.1:1/hook?token={secrets['the channel token']}",
    )
    secrets["the API key"] = settings.require_api_key().get_secret_value()
    assert settings.openrouter_management_key is not None
    secrets["the management key"] = settings.openrouter_management_key.get_secret_value()
    customer = "sk-or-v1-customer-7e2a9c4b1d6f8e0a3c5b7d9f"
    secrets["a customer's key"] = customer
    sim.add_key(customer, name="Customer K", limit=10.0, usage=9.9)
    with Runtime(settings) as rt:
        for usd in (20.0, 3.0):
            balance(sim, usd)
            result = run_check(settings, rt.client, rt.store)
            for alert in result.alerts:
                notify.deliver_with_retries(rt.store, alert, rt.channels, attempts=1, backoff_s=0)
        assert any(
            a.get("delivery_error") or a.get("channels_failed") for a in rt.store.recent_alerts(10)
        )
        with TestClient(create_app(settings, rt.store)) as client:
            auth = ("ops", secrets["the web password"])
            answers = [
                client.get(path, auth=auth).text
                for path in (
                    "/",
                    "/?range=90d",
                    "/api/status",
                    "/api/history?hours=24",
                    "/metrics",
                    "/healthz",
                )
            ]
    text = "\n".join(answers)
    assert "$3.00" in text and "Customer K" in text  # the answers hold the data
    for name, secret in secrets.items():
        middle = secret[12:-3] if len(secret) > 24 else secret  # labels show 12 + 3 chars
        assert secret not in text and middle not in text, f"{name} leaked"
