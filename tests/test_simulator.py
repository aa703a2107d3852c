"""Tests of the OpenRouter simulator, over a real socket with httpx."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from credit_tasks.simulator import Simulator

from .conftest import wait_for
from .schema import problems

ORDINARY = "sk-or-v1-test-ordinary-0123456789"
MANAGEMENT = "sk-or-v1-test-management-9876543210"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "credit_tasks"

FULL_KEY_FIELDS = {
    "byok_usage",
    "byok_usage_daily",
    "byok_usage_monthly",
    "byok_usage_weekly",
    "creator_user_id",
    "expires_at",
    "include_byok_in_limit",
    "is_free_tier",
    "is_management_key",
    "is_provisioning_key",
    "label",
    "limit",
    "limit_remaining",
    "limit_reset",
    "rate_limit",
    "usage",
    "usage_daily",
    "usage_monthly",
    "usage_weekly",
}
KEYS_ITEM_FIELDS = {
    "created_at",
    "updated_at",
    "creator_user_id",
    "workspace_id",
    "hash",
    "label",
    "name",
    "disabled",
    "limit",
    "limit_remaining",
    "limit_reset",
    "include_byok_in_limit",
    "usage",
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
    "byok_usage",
    "byok_usage_daily",
    "byok_usage_weekly",
    "byok_usage_monthly",
}
CLIENT = httpx.Client()  # one client, so requests reuse keep-alive connections like a real one


@pytest.fixture(scope="module", autouse=True)
def close_client() -> Iterator[None]:
    yield
    CLIENT.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        simulator.set_account(total_credits=100.5, total_usage=25.75)
        simulator.add_key(ORDINARY, name="App", limit=100.0, usage=25.5, limit_reset="monthly")
        simulator.add_key(MANAGEMENT, name="Admin", management=True)
        yield simulator


def get(
    sim: Simulator,
    path: str,
    key: str | None = ORDINARY,
    timeout: float = 5.0,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return CLIENT.get(sim.base_url + path, headers=headers, timeout=timeout)


def test_key_answers_the_full_current_shape_for_an_ordinary_key(sim: Simulator) -> None:
    response = get(sim, "/key")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    data = response.json()["data"]
    assert set(data) == FULL_KEY_FIELDS
    assert data["label"] == "sk-or-v1-tes...789"
    assert (data["limit"], data["usage"], data["limit_remaining"]) == (100.0, 25.5, 74.5)
    assert data["limit_reset"] == "monthly"
    assert data["is_management_key"] is False and data["is_provisioning_key"] is False
    assert data["expires_at"] is None and data["include_byok_in_limit"] is False
    assert set(data["rate_limit"]) == {"interval", "note", "requests"}


def test_auth_key_answers_the_same_as_key(sim: Simulator) -> None:
    assert get(sim, "/auth/key").json() == get(sim, "/key").json()


def test_management_key_reads_itself_on_key(sim: Simulator) -> None:
    data = get(sim, "/key", MANAGEMENT).json()["data"]
    assert data["is_management_key"] is True and data["limit"] is None


def test_limit_remaining_is_null_without_a_limit_and_negative_when_overspent(
    sim: Simulator,
) -> None:
    sim.update_key(ORDINARY, limit=None)
    assert get(sim, "/key").json()["data"]["limit_remaining"] is None
    sim.update_key(ORDINARY, limit=10.0, usage=10.5)
    assert get(sim, "/key").json()["data"]["limit_remaining"] == -0.5
    [item] = get(sim, "/keys", MANAGEMENT).json()["data"]
    assert (item["limit"], item["limit_remaining"], item["usage"]) == (10.0, -0.5, 10.5)


def test_an_overspent_key_spends_no_further(sim: Simulator) -> None:
    sim.update_key(ORDINARY, limit=10.0, usage=10.5)
    sim.set_spend(key=ORDINARY, usd_per_hour=3600.0)
    time.sleep(0.05)
    assert get(sim, "/key").json()["data"]["usage"] == 10.5


def test_credits_is_forbidden_for_an_ordinary_key(sim: Simulator) -> None:
    response = get(sim, "/credits")
    assert response.status_code == 403
    assert response.json() == {
        "error": {"code": 403, "message": "Only management keys can perform this operation"}
    }


def test_credits_answers_the_account_for_a_management_key(sim: Simulator) -> None:
    response = get(sim, "/credits", MANAGEMENT)
    assert response.json() == {"data": {"total_credits": 100.5, "total_usage": 25.75}}


def test_credits_zeros_switch_answers_zeros_to_ordinary_keys(sim: Simulator) -> None:
    sim.configure(credits_zeros_for_ordinary=True)
    response = get(sim, "/credits")
    assert response.status_code == 200
    assert response.json() == {"data": {"total_credits": 0, "total_usage": 0}}


def test_keys_pages_hold_100_items_most_recent_first_and_skip_disabled(sim: Simulator) -> None:
    for i in range(250):
        sim.add_key(
            f"sk-or-v1-fleet-key-{i:04d}",
            name=f"k{i}",
            disabled=i % 10 == 0,
            created_at=f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
        )
    pages = [
        get(sim, f"/keys?offset={offset}", MANAGEMENT).json()["data"] for offset in (0, 100, 200)
    ]
    assert [len(page) for page in pages] == [100, 100, 26]  # 225 enabled + the ordinary key
    items = [item for page in pages for item in page]
    assert set(items[0]) == KEYS_ITEM_FIELDS
    assert items[0]["name"] == "App"  # added now, so the most recent
    assert items[1]["name"] == "k249"
    assert not any(item["disabled"] for item in items)
    stamps = [item["created_at"] for item in items[1:]]
    assert stamps == sorted(stamps, reverse=True)
    everything = get(sim, "/keys?offset=200&include_disabled=true", MANAGEMENT).json()["data"]
    assert len(everything) == 51


def test_keys_is_forbidden_for_an_ordinary_key(sim: Simulator) -> None:
    response = get(sim, "/keys")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == 403


def test_keys_by_hash_answers_the_item_or_404(sim: Simulator) -> None:
    key_hash = hashlib.sha256(ORDINARY.encode()).hexdigest()
    data = get(sim, f"/keys/{key_hash}", MANAGEMENT).json()["data"]
    assert data["hash"] == key_hash and data["limit_remaining"] == 74.5
    missing = get(sim, "/keys/" + "0" * 64, MANAGEMENT)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 404


def test_paging_stays_working_with_ten_thousand_keys() -> None:
    with Simulator() as simulator:
        simulator.add_key(MANAGEMENT, management=True)
        simulator.add_fleet(10_000)
        last = get(simulator, "/keys?offset=9700&include_disabled=true", MANAGEMENT)
        assert len(last.json()["data"]) == 100
        assert get(simulator, "/keys?offset=10000&include_disabled=true", MANAGEMENT).json() == {
            "data": []
        }


def test_legacy_switch_makes_key_404_while_auth_key_works(sim: Simulator) -> None:
    sim.configure(legacy=True)
    assert get(sim, "/key").status_code == 404
    assert get(sim, "/auth/key").status_code == 200


def test_minimal_shape_switch_answers_the_older_shape(sim: Simulator) -> None:
    sim.configure(minimal_shape=True)
    data = get(sim, "/key").json()["data"]
    assert set(data) == {"label", "limit", "usage", "limit_remaining", "is_free_tier", "rate_limit"}
    assert data["rate_limit"] == {"requests": 40, "interval": "10s"}


def test_missing_unknown_and_disabled_keys_get_401(sim: Simulator) -> None:
    assert get(sim, "/key", None).json() == {
        "error": {"code": 401, "message": "No auth credentials found"}
    }
    unknown = get(sim, "/key", "sk-or-v1-nobody")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["message"] == "User not found."
    sim.update_key(ORDINARY, disabled=True)
    assert get(sim, "/key").status_code == 401


def test_unknown_path_answers_404_with_the_error_shape(sim: Simulator) -> None:
    response = get(sim, "/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404


def test_spend_accrues_to_the_key_and_the_account(sim: Simulator) -> None:
    sim.set_spend(key=ORDINARY, usd_per_hour=3600.0)
    time.sleep(0.05)  # the clock is what spends: let 5 cents' worth of it pass
    assert get(sim, "/key").json()["data"]["usage"] > 25.5
    assert get(sim, "/credits", MANAGEMENT).json()["data"]["total_usage"] > 25.75


def test_auto_topup_adds_credits_when_the_balance_falls_below(sim: Simulator) -> None:
    sim.set_account(total_credits=10.0, total_usage=9.5)
    sim.set_topup(below_usd=1.0, topup_usd=20.0)
    assert get(sim, "/credits", MANAGEMENT).json()["data"]["total_credits"] == 30.0


def test_key_usage_reset_sets_usage_to_zero(sim: Simulator) -> None:
    sim.reset_key_usage(ORDINARY)
    assert get(sim, "/key").json()["data"]["limit_remaining"] == 100.0


def test_status_fault_answers_the_status_with_retry_after_once(sim: Simulator) -> None:
    sim.inject("status", path="/key", status=429, retry_after=2)
    assert get(sim, "/credits", MANAGEMENT).status_code == 200  # other paths untouched
    limited = get(sim, "/key")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json() == {"error": {"code": 429, "message": "Rate limit exceeded"}}
    assert get(sim, "/key").status_code == 200


def test_a_429_fault_can_say_when_the_rate_window_reopens_in_epoch_ms(sim: Simulator) -> None:
    sim.inject("status", path="/key", status=429, reset_in_s=3)
    before_ms = time.time() * 1000
    limited = get(sim, "/key")
    reset_ms = int(limited.headers["x-ratelimit-reset"])
    assert before_ms + 2_500 <= reset_ms <= time.time() * 1000 + 3_000
    assert limited.headers["x-ratelimit-remaining"] == "0"


def test_the_latency_knob_delays_every_api_answer_and_requests_overlap(sim: Simulator) -> None:
    # a latency of 1 s sets each bound apart by whole seconds: no close timing on a busy machine
    sim.configure(latency_ms=1000)
    started = time.monotonic()
    assert get(sim, "/key").status_code == 200
    assert time.monotonic() - started >= 1.0
    # eight at once take about as long as one (one after another: 8 s at least)
    with httpx.Client(base_url=sim.base_url, limits=httpx.Limits(max_connections=8)) as http:
        auth = {"Authorization": f"Bearer {MANAGEMENT}"}
        threads = [
            threading.Thread(
                target=http.get, args=(f"/keys?offset={i * 100}",), kwargs={"headers": auth}
            )
            for i in range(8)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 1.0 <= time.monotonic() - started < 4.0
    sim.configure(latency_ms=0)
    started = time.monotonic()
    get(sim, "/key")
    assert time.monotonic() - started < 1.0  # with the latency still on, 1 s at least
    with pytest.raises(ValueError, match="latency_ms"):
        sim.configure(latency_ms=-1)


def test_the_latency_is_set_over_http_and_from_the_command_line() -> None:
    with (
        Simulator() as simulator,
        httpx.Client(base_url=f"http://127.0.0.1:{simulator.port}") as control,
    ):
        assert control.post("/_sim/config", json={"latency_ms": 1000}).json() == {"ok": True}
        assert simulator.switches.latency_ms == 1000
        started = time.monotonic()
        control.get("/_sim/state")  # the admin routes are never slowed
        assert time.monotonic() - started < 1.0
    from credit_tasks.simulator.command import _parser

    assert _parser().parse_args(["--latency-ms", "100"]).latency_ms == 100


def test_faults_are_taken_in_order_and_times_counts_down(sim: Simulator) -> None:
    sim.inject("status", status=503, times=2)
    sim.inject("status", status=402)
    codes = [get(sim, "/key").status_code for _ in range(4)]
    assert codes == [503, 503, 402, 200]


def test_error_in_200_fault_answers_an_error_object_with_status_200(sim: Simulator) -> None:
    sim.inject("error_in_200", status=402)
    response = get(sim, "/key")
    assert response.status_code == 200
    assert response.json() == {"error": {"code": 402, "message": "Insufficient credits"}}


@pytest.mark.parametrize(
    "body",
    [
        "<html><body>502 Bad Gateway</body></html>",
        "",
        '{"data":{"usage":1.',
        '{"data":{"usage":NaN}}',
    ],
)
def test_body_fault_answers_the_raw_body(sim: Simulator, body: str) -> None:
    sim.inject("body", body=body, content_type="text/html")
    response = get(sim, "/key")
    assert response.status_code == 200 and response.text == body
    assert response.headers["content-type"] == "text/html"


def test_data_fault_wraps_the_given_object(sim: Simulator) -> None:
    sim.inject("data", data={"usage": "lots"})
    assert get(sim, "/key").json() == {"data": {"usage": "lots"}}


def test_delay_fault_answers_normally_after_the_delay(sim: Simulator) -> None:
    sim.inject("delay", delay_s=0.2)
    started = time.monotonic()
    assert get(sim, "/key").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_reset_fault_breaks_the_connection_mid_body(sim: Simulator) -> None:
    sim.inject("reset")
    with pytest.raises(httpx.TransportError):
        get(sim, "/key")
    assert get(sim, "/key").status_code == 200


def test_hang_fault_never_answers(sim: Simulator) -> None:
    sim.inject("hang")
    with pytest.raises(httpx.ReadTimeout):
        get(sim, "/key", timeout=0.3)


def test_close_fault_closes_without_a_response(sim: Simulator) -> None:
    sim.inject("close")
    with pytest.raises(httpx.RemoteProtocolError):
        get(sim, "/key")


def test_stop_releases_a_hung_request() -> None:
    simulator = Simulator().start()
    simulator.add_key(ORDINARY)
    simulator.inject("hang")
    errors: list[Exception] = []

    def call() -> None:
        try:
            get(simulator, "/key", timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: simulator.requests().get("/key"), what="the request to hang")
    simulator.stop()
    caller.join(10)
    assert not caller.is_alive() and len(errors) == 1


def test_request_log_counts_paths_and_key_kinds_but_never_keys(sim: Simulator) -> None:
    get(sim, "/key")
    get(sim, "/key", MANAGEMENT)
    get(sim, "/credits", None)
    get(sim, "/keys/abc", "sk-or-v1-stranger")
    assert sim.requests() == {"/key": 2, "/credits": 1, "/keys/{hash}": 1}
    kinds = [entry["key_kind"] for entry in sim.request_log()]
    assert kinds == ["ordinary", "management", "none", "unknown"]
    dump = json.dumps([sim.request_log(), sim.state()])
    assert ORDINARY not in dump and MANAGEMENT not in dump


def test_control_api_programs_the_simulator_over_http() -> None:
    with (
        Simulator() as simulator,
        httpx.Client(base_url=f"http://127.0.0.1:{simulator.port}") as control,
    ):
        assert control.post("/_sim/account", json={"total_credits": 50}).json() == {"ok": True}
        added = control.post("/_sim/keys", json={"key": MANAGEMENT, "management": True}).json()
        assert added["hash"] == hashlib.sha256(MANAGEMENT.encode()).hexdigest()
        control.post("/_sim/keys", json={"key": ORDINARY, "limit": 5})
        control.patch("/_sim/keys", json={"key_or_hash": ORDINARY, "usage": 4})
        control.post("/_sim/config", json={"minimal_shape": True})
        assert get(simulator, "/key").json()["data"]["limit_remaining"] == 1.0
        control.post("/_sim/faults", json={"kind": "status", "status": 500, "path": "/key"})
        assert get(simulator, "/key").status_code == 500
        control.post("/_sim/faults", json={"kind": "status", "status": 500})
        control.delete("/_sim/faults")
        assert get(simulator, "/credits", MANAGEMENT).status_code == 200
        assert control.get("/_sim/requests").json()["requests"] == {"/key": 2, "/credits": 1}
        state = control.get("/_sim/state").json()
        assert state["balance"] == 50.0 and len(state["keys"]) == 2
        assert ORDINARY not in json.dumps(state)
        bad = control.post("/_sim/faults", json={"kind": "nonsense"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
        assert control.post("/_sim/reset").json() == {"ok": True}
        assert control.get("/_sim/state").json()["keys"] == []


def test_main_prints_the_url_and_its_keys_and_exits_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "credit_tasks.simulator",
            "--port",
            "0",
            "--keys",
            "300",
            "--spend-per-hour",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("OpenRouter simulator on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1]
        keys = [process.stdout.readline().split() for _ in range(3)]
        assert keys[0] == ["ordinary", "key", "sk-or-v1-sim-ordinary"]
        assert keys[1][:3] == ["management", "key", "sk-or-v1-sim-management"]
        assert keys[2][-3:] == [
            f"OPENROUTER_BASE_URL={base_url}",
            "OPENROUTER_API_KEY=sk-or-v1-sim-ordinary",
            "OPENROUTER_MANAGEMENT_KEY=sk-or-v1-sim-management",
        ]
        response = httpx.get(
            base_url + "/keys",
            timeout=5,
            headers={"Authorization": "Bearer sk-or-v1-sim-management"},
        )
        assert len(response.json()["data"]) == 100
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0 and stderr == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_simulate_help_names_the_keys_it_accepts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "credit_tasks", "simulate", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0
    assert "sk-or-v1-sim-ordinary" in done.stdout
    assert "sk-or-v1-sim-management" in done.stdout
    assert "answers 401 to any other" in done.stdout


def test_raw_key_items_are_listed_first_and_paged_with_the_keys(sim: Simulator) -> None:
    sim.add_fleet(150)
    sim.add_raw_key_item({"hash": "raw-1", "usage": "lots"})
    sim.add_raw_key_item(None)
    pages = [get(sim, f"/keys?offset={o}", MANAGEMENT).json()["data"] for o in (0, 100)]
    assert pages[0][:2] == [{"hash": "raw-1", "usage": "lots"}, None]
    assert [len(page) for page in pages] == [100, 50]  # 2 raw + 147 enabled fleet + App
    hashes = [item["hash"] for item in [*pages[0], *pages[1]][2:]]
    assert len(hashes) == len(set(hashes)) == 148
    sim.reset()
    sim.add_key(MANAGEMENT, management=True)
    assert get(sim, "/keys", MANAGEMENT).json() == {"data": []}


def test_raw_key_items_can_be_added_over_http(sim: Simulator) -> None:
    control = f"http://127.0.0.1:{sim.port}/_sim/keys/raw"
    assert CLIENT.post(control, json={"item": {"hash": "x"}}).json() == {"ok": True}
    assert get(sim, "/keys", MANAGEMENT).json()["data"][0] == {"hash": "x"}


def _every_answer(sim: Simulator) -> list[tuple[str, str, str | None]]:
    """(answer definition, path, key) for every answer the simulator serves."""
    key_hash = hashlib.sha256(ORDINARY.encode()).hexdigest()
    return [
        ("key_answer", "/key", ORDINARY),
        ("key_answer", "/auth/key", ORDINARY),
        ("key_answer", "/key", MANAGEMENT),
        ("credits_answer", "/credits", MANAGEMENT),
        ("keys_page", "/keys", MANAGEMENT),
        ("keys_page", "/keys?offset=0&include_disabled=true", MANAGEMENT),
        ("keys_page", "/keys?offset=100&include_disabled=true", MANAGEMENT),
        ("keys_item_answer", f"/keys/{key_hash}", MANAGEMENT),
        ("workspaces_page", "/workspaces", MANAGEMENT),
        ("workspaces_page", "/workspaces?offset=1&limit=1", MANAGEMENT),
        ("keys_page", f"/keys?workspace_id={sim.add_workspace('Research')}", MANAGEMENT),
        ("activity_page", "/activity", MANAGEMENT),
        ("activity_page", f"/activity?date={sim.today() - timedelta(days=1)}", MANAGEMENT),
        ("activity_page", "/activity?group_by=workspace", MANAGEMENT),
        ("error_answer", "/activity", ORDINARY),
        ("error_answer", "/workspaces", ORDINARY),
        ("error_answer", "/activity?date=yesterday", MANAGEMENT),
        ("error_answer", "/workspaces?limit=500", MANAGEMENT),
        ("error_answer", "/credits", ORDINARY),
        ("error_answer", "/keys", ORDINARY),
        ("error_answer", "/key", None),
        ("error_answer", "/key", "sk-or-v1-nobody"),
        ("error_answer", "/keys/" + "0" * 64, MANAGEMENT),
        ("error_answer", "/nothing", ORDINARY),
        ("error_answer", "/keys?offset=x", MANAGEMENT),
    ]


def test_every_answer_matches_the_field_table(sim: Simulator) -> None:
    sim.add_fleet(120)  # every limit_reset, some disabled
    sim.add_key("sk-or-v1-uncapped-key-0000", name="")  # an empty name, no cap
    sim.add_key("sk-or-v1-overspent-key-000", name="Over", limit=10.0, usage=10.5)
    sim.seed_activity(30, 12.0)
    sim.add_activity(str(sim.today() - timedelta(days=1)), 3.0, model="openai/gpt-4.1")
    for definition, path, key in _every_answer(sim):
        response = get(sim, path, key)
        assert problems(definition, response.json()) == [], (path, key)
        assert response.is_success == (definition != "error_answer"), (path, key)


@pytest.mark.parametrize(
    ("switches", "definition"),
    [
        ({"minimal_shape": True}, "legacy_key_answer"),
        ({"legacy": True}, "key_answer"),  # on /auth/key
    ],
)
def test_the_older_answers_match_their_own_shapes(
    sim: Simulator, switches: dict[str, bool], definition: str
) -> None:
    sim.configure(**switches)
    assert problems(definition, get(sim, "/auth/key").json()) == []
    if switches.get("minimal_shape"):
        # fewer fields than the current table: why the client accepts both
        assert problems("key_answer", get(sim, "/key").json()) != []


def test_the_zeros_answer_and_injected_errors_match_the_field_table(sim: Simulator) -> None:
    sim.configure(credits_zeros_for_ordinary=True)
    assert problems("credits_answer", get(sim, "/credits").json()) == []
    for status in (400, 402, 408, 429, 500, 502, 503):
        sim.inject("status", status=status)
        assert problems("error_answer", get(sim, "/key").json()) == []
        sim.inject("error_in_200", status=status)
        assert problems("error_answer", get(sim, "/key").json()) == []


IMPORTS_OF = """
import sys, types
package = types.ModuleType("credit_tasks")  # the package without its __init__ (the Celery app)
package.__path__ = [sys.argv[1]]
sys.modules["credit_tasks"] = package
import credit_tasks.simulator
print(" ".join(sorted(sys.modules)))
"""


def test_the_simulator_imports_nothing_of_the_monitor_nor_its_libraries() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF, str(PACKAGE_DIR)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    modules = done.stdout.split()
    assert "credit_tasks.simulator.server" in modules
    ours = [m for m in modules if m.startswith("credit_tasks.")]
    assert all(m.startswith("credit_tasks.simulator") for m in ours), ours
    foreign = {"celery", "kombu", "apprise", "redis", "httpx", "pydantic", "tenacity", "jsonschema"}
    assert foreign.isdisjoint(m.split(".")[0] for m in modules)


def test_no_module_of_the_simulator_is_long() -> None:
    lengths = {
        path.name: len(path.read_text().splitlines())
        for path in (PACKAGE_DIR / "simulator").glob("*.py")
    }
    assert max(lengths.values()) <= 400, lengths
