"""Flower against the test broker and the session worker: the tasks by name, behind auth."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from credit_tasks import check_credits, credit_history
from credit_tasks.simulator import Simulator

from .conftest import API_KEY, BIN, MANAGEMENT_KEY, free_port, service_env, wait_for

AUTH = ("ops", "flower-test-password")

pytestmark = pytest.mark.usefixtures("worker")


def _listening(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def flower(
    session_worker: Any,
    sim_server: Simulator,
    redis_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A real Flower on a free port, with basic auth, watching the session worker's broker."""
    port = free_port()
    env = service_env(sim_server, redis_server, FLOWER_BASIC_AUTH=":".join(AUTH))
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    logdir = tmp_path_factory.mktemp("flower")
    log = (logdir / "flower.log").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "credit_tasks",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
        ],
        env=env,
        cwd=logdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: proc.poll() is not None or _listening(url), 30, "Flower to listen")
    assert proc.poll() is None, (logdir / "flower.log").read_text()
    yield url
    proc.terminate()
    proc.wait(timeout=15)
    log.close()


def _info(url: str, task_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{url}/api/task/info/{task_id}", auth=AUTH, timeout=5)
    return answer.json() if answer.status_code == 200 else None


def _warm(url: str) -> bool:
    """Run a check; True once Flower shows it as SUCCESS within 2 s."""
    task_id = check_credits.delay().id
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if (_info(url, task_id) or {}).get("state") == "SUCCESS":
            return True
        time.sleep(0.1)
    return False


def test_flowers_api_and_dashboard_refuse_requests_without_the_right_credentials(
    flower: str,
) -> None:
    assert httpx.get(f"{flower}/api/tasks", timeout=5).status_code == 401
    assert httpx.get(f"{flower}/api/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401
    assert httpx.get(f"{flower}/api/workers", timeout=5).status_code == 401
    assert httpx.get(f"{flower}/tasks", timeout=5).status_code == 401
    assert httpx.get(f"{flower}/tasks", auth=AUTH, timeout=5).status_code == 200


def test_flower_shows_each_task_by_name_as_success_and_never_a_key(
    flower: str, sim: Simulator, redis_url: str
) -> None:
    """`redis_url` flushes the data db, so no earlier alert state hides the warning."""
    # Flower only knows the tasks it saw run: first wait until its event stream is live
    wait_for(lambda: _warm(flower), 60, "Flower to show a check_credits run")
    sim.set_account(total_credits=8.5, total_usage=1.0)  # $7.50 left: a warning alert
    check = check_credits.delay()
    alerts = check.get(timeout=30)["alerts"]
    assert "warning" in [a["type"] for a in alerts]
    history = credit_history.delay(hours=1)
    history.get(timeout=30)

    def by_name() -> dict[str, dict[str, Any]] | None:
        tasks = httpx.get(f"{flower}/api/tasks", auth=AUTH, timeout=5).json()
        done = {t["name"]: t for t in tasks.values() if t["state"] == "SUCCESS"}
        wanted = (
            "credit_tasks.check_credits",
            "credit_tasks.send_alert",
            "credit_tasks.credit_history",
        )
        return done if all(name in done for name in wanted) else None

    by_name_seen = wait_for(by_name, 30, "Flower to show all three tasks as SUCCESS")
    assert check.id in httpx.get(f"{flower}/api/tasks", auth=AUTH, timeout=5).json()
    shown = [
        httpx.get(f"{flower}/api/tasks", auth=AUTH, timeout=5).text,
        httpx.get(f"{flower}/api/task/info/{check.id}", auth=AUTH, timeout=5).text,
        httpx.get(f"{flower}/api/task/info/{history.id}", auth=AUTH, timeout=5).text,
        httpx.get(f"{flower}/api/task/result/{check.id}", auth=AUTH, timeout=5).text,
        httpx.get(f"{flower}/task/{check.id}", auth=AUTH, timeout=5).text,
    ]
    alert_task = by_name_seen["credit_tasks.send_alert"]
    # the args are the alert itself, as the worker got it
    assert any(alert["id"] in alert_task["args"] for alert in alerts)
    assert "remaining_usd" in by_name_seen["credit_tasks.check_credits"]["result"]
    for text in shown:
        assert API_KEY not in text and MANAGEMENT_KEY not in text
        assert "sk-or-v1" not in text
