"""/metrics: the contract's names, read from Redis at each scrape, checked by promtool."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from credit_tasks import notify
from credit_tasks import silences as codec
from credit_tasks.check import run_check
from credit_tasks.client import OpenRouterClient
from credit_tasks.rules import Subject
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator
from credit_tasks.store import Store
from credit_tasks.web import create_app
from credit_tasks.web.metrics import NAMES, exposition, registry

from .conftest import MANAGEMENT_KEY, make_settings


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


def check(settings: Settings, store: Store) -> Any:
    with OpenRouterClient(settings) as api:
        result = run_check(settings, api, store)
    for alert in result.alerts:
        notify.deliver(store, alert, now=datetime.now(UTC))
    return result


@pytest.fixture
def settings(sim: Simulator, redis_url: str) -> Settings:
    # a burn rate from two checks moments apart: no waiting for the runway's hour of history
    return make_settings(sim, redis_url, credit_runway_min_span_minutes=0)


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store)) as client:
        yield client


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Each sample's labels and value, by sample name, as Prometheus would parse them."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_a_scrape_reads_the_figures_the_last_check_stored(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    sim.add_key("sk-or-v1-customer-b-0123456789", name="Customer B", limit=100.0, usage=99.5)
    balance(sim, 20.0)
    check(settings, store)
    balance(sim, 8.0)  # a warning, and spend for a burn rate
    check(settings, store)
    answer = web.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    got = samples(answer.text)
    assert got["openrouter_up"] == [({}, 1.0)]
    assert got["openrouter_balance_dollars"] == [({}, pytest.approx(8.0))]
    assert got["openrouter_status"] == [({}, 1.0)]
    assert got["openrouter_check_consecutive_failures"] == [({}, 0.0)]
    assert got["openrouter_burn_rate_dollars_per_hour"][0][1] > 0
    runway_h = float(store.current()["runway_hours"])
    assert got["openrouter_runway_seconds"][0][1] == pytest.approx(runway_h * 3600)
    success = datetime.fromisoformat(store.monitoring_status()["last_success_at"]).timestamp()
    assert got["openrouter_last_success_timestamp_seconds"] == [({}, pytest.approx(success))]
    [(labels, value)] = [
        s for s in got["openrouter_key_limit_remaining_dollars"] if s[0]["key_name"] == "Customer B"
    ]
    assert value == pytest.approx(0.5) and len(labels["key_hash"]) > 8
    assert ({**labels}, 100.0) in got["openrouter_key_limit_dollars"]
    assert (labels, 2.0) in got["openrouter_key_status"]  # critical: 0.5 % of its limit
    sent = {s[0]["type"]: s[1] for s in got["openrouter_alerts_sent_total"]}
    published = [a["type"] for a in store.recent_alerts(100) if a.get("delivered_at")]
    assert sent == {t: float(published.count(t)) for t in sent}
    assert set(sent) == {"warning", "critical", "unknown", "resolved", "runway", "spike", "report"}
    assert sent["warning"] == 1.0 and sent["critical"] == 1.0  # the account's, the key's


def test_every_name_of_the_contract_is_exposed_once_the_figures_are_known(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    sim.add_key("sk-or-v1-customer-a-0123456789", name="Customer A", limit=10.0, usage=1.0)
    for usd in (20.0, 19.0):
        balance(sim, usd)
        check(settings, store)
    store.redis.hset(store.keys.current, mapping=SPEND)  # until a check stores them
    assert set(samples(web.get("/metrics").text)) == set(NAMES)


SPEND = {"spend_today_usd": "1.5", "spend_week_usd": "12.25", "spend_month_usd": "40"}


def test_the_silences_and_acks_in_force_are_counted(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    got = samples(web.get("/metrics").text)
    assert got["openrouter_silences_active"] == [({}, 0.0)]
    assert got["openrouter_acks_active"] == [({}, 0.0)]
    for usd in (20.0, 8.0):  # a warning to acknowledge
        balance(sim, usd)
        check(settings, store)
    now = datetime.now(UTC)
    for n, subject in enumerate(("account", "*")):
        store.add_silence(
            codec.new_silence(f"s{n}", subject, "any", timedelta(hours=2), "known", now)
        )
    [warning] = [a for a in store.recent_alerts(10) if a["type"] == "warning"]
    raw, state = store.alert_state(Subject.parse("account"))
    assert store.put_ack(codec.ack_for(warning["id"], warning, state, "seen", now), raw)
    got = samples(web.get("/metrics").text)
    assert got["openrouter_silences_active"] == [({}, 2.0)]
    assert got["openrouter_acks_active"] == [({}, 1.0)]
    assert store.expire_silence("s0", now) is not None
    balance(sim, 4.0)  # worse: the acknowledged episode is over
    check(settings, store)
    got = samples(web.get("/metrics").text)
    assert got["openrouter_silences_active"] == [({}, 1.0)]
    assert got["openrouter_acks_active"] == [({}, 0.0)]
    later = store.scrape(now + timedelta(hours=3))  # past its end, before a check drops it
    assert later["silences_active"] == 0


def test_the_spend_of_each_period_is_exposed_once_stored(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    balance(sim, 20.0)
    check(settings, store)
    store.redis.hdel(store.keys.current, *SPEND)  # as before a check stores them
    assert "openrouter_spend_dollars" not in samples(web.get("/metrics").text)
    store.redis.hset(store.keys.current, mapping=SPEND | {"spend_week_usd": ""})
    got = samples(web.get("/metrics").text)["openrouter_spend_dollars"]
    assert got == [({"period": "today"}, 1.5), ({"period": "month"}, 40.0)]  # no week: absent
    store.redis.hset(store.keys.current, mapping=SPEND)
    got = samples(web.get("/metrics").text)["openrouter_spend_dollars"]
    assert got == [
        ({"period": "today"}, 1.5),
        ({"period": "week"}, 12.25),
        ({"period": "month"}, 40.0),
    ]


def test_an_unknown_balance_is_absent_not_zero(
    sim: Simulator, redis_url: str, store: Store
) -> None:
    from .conftest import make_settings

    settings = make_settings(sim, redis_url, openrouter_management_key=None)
    check(settings, store)  # the ordinary key has no cap: nothing shows the balance
    with TestClient(create_app(settings, store)) as client:
        got = samples(client.get("/metrics").text)
    assert "openrouter_balance_dollars" not in got
    assert "openrouter_runway_seconds" not in got
    assert got["openrouter_status"] == [({}, 3.0)]
    assert got["openrouter_up"] == [({}, 1.0)]


def test_nothing_is_read_before_a_scrape_and_redis_is_read_at_each(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    assert "openrouter_balance_dollars" not in samples(web.get("/metrics").text)
    balance(sim, 30.0)
    check(settings, store)
    assert samples(web.get("/metrics").text)["openrouter_balance_dollars"] == [({}, 30.0)]


def test_no_label_holds_a_key(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    secret = "sk-or-v1-customer-secret-abcdef0123456789abcdef"
    sim.add_key(secret, name="Customer S", limit=10.0, usage=1.0)
    balance(sim, 20.0)
    check(settings, store)
    text = web.get("/metrics").text
    assert "Customer S" in text
    for key in (secret, MANAGEMENT_KEY, settings.require_api_key().get_secret_value()):
        assert key not in text and key[12:-3] not in text


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `make test` (it installs prometheus)")
    return found


def test_promtool_accepts_the_exposition(
    sim: Simulator, settings: Settings, store: Store, web: TestClient
) -> None:
    sim.add_key("sk-or-v1-customer-p-0123456789", name='Quote " and \\ back', limit=5.0, usage=4.9)
    for usd in (20.0, 4.0):
        balance(sim, usd)
        check(settings, store)
    store.redis.hset(store.keys.current, mapping=SPEND)
    store.add_silence(
        codec.new_silence("s1", "*", "any", timedelta(hours=1), "x", datetime.now(UTC))
    )
    text = web.get("/metrics").text
    assert "openrouter_spend_dollars{" in text and "openrouter_silences_active 1.0" in text
    done = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_exposition_is_byte_for_byte_what_prometheus_client_writes(
    sim: Simulator, settings: Settings, store: Store
) -> None:
    for i, name in enumerate(['Quote " here', "back \\ slash", "new\nline", "café ✓", ""]):
        sim.add_key(f"sk-or-v1-odd-name-{i}-0123456789abcdef", name=name, limit=5.0 + i, usage=1.0)
    sim.add_key("sk-or-v1-no-cap-0123456789abcdef", name="Uncapped")
    for usd in (20.0, 4.0):
        balance(sim, usd)
        check(settings, store)
    reg = registry(lambda: store)
    ours = exposition(reg)
    assert ours == generate_latest(reg)
    assert b'key_name="Quote \\" here"' in ours and b'key_name="back \\\\ slash"' in ours
    assert b"openrouter_alerts_sent_total{" in ours


class _Stored:
    """A store's scrape, as given: for label values no check would store."""

    def __init__(self, rows: list[dict[str, object]]) -> None:
        self.rows = rows

    def scrape(self) -> dict[str, Any]:
        current = {"remaining_usd": "1e6", "status": "ok", "runway_hours": "inf"}
        current |= {"spend_today_usd": "0.5"}
        return {
            "current": current,
            "monitoring": {},
            "keys": self.rows,
            "alerts_sent": {},
            "silences_active": 2,
            "acks_active": 0,
        }


def test_the_exposition_escapes_as_prometheus_client_does_whatever_the_label() -> None:
    rows: list[dict[str, object]] = [
        {"hash": "a", "name": "new\nline", "limit_usd": 1.5, "remaining_usd": -0.25},
        {"hash": 'q"uote', "name": "\\", "limit_usd": None, "status": "warning"},
        {"hash": "c", "name": None, "remaining_usd": "12", "status": "critical"},
    ]
    reg = registry(lambda: _Stored(rows))  # type: ignore[arg-type, return-value]
    ours = exposition(reg)
    assert ours == generate_latest(reg)
    assert b'key_name="new\\nline"' in ours and b'key_hash="q\\"uote"' in ours
