"""A real Prometheus scrapes `credit-monitor serve`; the rules and the dashboard in `deploy/`.

Debian's `prometheus` package (installed by `scripts/ensure-system.sh`) runs on a free port
with a scrape config of our own, and the balance is read back through its HTTP query API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from credit_tasks.procs import stop_process
from credit_tasks.simulator import Simulator
from credit_tasks.web.metrics import NAMES

from .conftest import BIN, ROOT, free_port, run_cli, service_env, wait_for

DEPLOY = ROOT / "deploy"
AUTH = ("scraper", "scrape-pass-7c1e")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make test` (it installs prometheus)")
    return found


@pytest.fixture
def served(sim: Simulator, redis_server: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`credit-monitor serve` on a free port behind basic auth, after one real check."""
    sim.set_account(total_credits=43.25, total_usage=1.0)
    env = service_env(sim, redis_server, CREDIT_WEB_AUTH=f"{AUTH[0]}:{AUTH[1]}")
    assert run_cli(env, "check", cwd=tmp_path).returncode == 0
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "credit-monitor"), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, 30, "credit-monitor serve to answer /healthz")
        yield {"base": base, "port": port, "log": tmp_path / "serve.log"}
    finally:
        stop_process(proc)
        log.close()


def test_serve_answers_every_path(served: dict[str, Any]) -> None:
    base = served["base"]
    for path in ("/", "/metrics", "/api/status", "/api/history?hours=24"):
        assert httpx.get(base + path, timeout=5).status_code == 401
        assert httpx.get(base + path, auth=AUTH, timeout=5).status_code == 200, path
    assert "$42.25" in httpx.get(base + "/", auth=AUTH, timeout=5).text
    assert httpx.get(base + "/healthz", timeout=5).json()["status"] == "ok"
    assert "the page on http://127.0.0.1:" in served["log"].read_text()


def test_a_real_prometheus_scrapes_the_balance(served: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: credit-monitor\n"
        f"    basic_auth: {{username: {AUTH[0]}, password: {AUTH[1]}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{served['port']}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def balance() -> list[Any] | None:
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
        try:
            answer = httpx.get(api, params={"query": "openrouter_balance_dollars"}, timeout=2)
        except httpx.TransportError:
            return None
        result: list[Any] = answer.json()["data"]["result"] if answer.status_code == 200 else []
        return result or None

    try:
        [series] = wait_for(balance, 60, "Prometheus to scrape openrouter_balance_dollars")
        assert float(series["value"][1]) == pytest.approx(42.25)
        assert series["metric"]["job"] == "credit-monitor"
        up = httpx.get(api, params={"query": "up"}, timeout=5).json()["data"]["result"]
        assert [float(s["value"][1]) for s in up] == [1.0]
    finally:
        stop_process(proc)
        log.close()


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = tool("promtool")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [promtool, *args],
            cwd=DEPLOY / "prometheus",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_alert_rules_cover_what_the_issue_asks_for() -> None:
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    for name in (
        "OpenRouterBalanceLow",
        "OpenRouterBalanceCritical",
        "OpenRouterRunwayShort",
        "OpenRouterMonitorStale",
        "OpenRouterMonitorDown",
        "OpenRouterKeyCritical",
    ):
        assert f"alert: {name}" in text
        assert f"alertname: {name}" in (DEPLOY / "prometheus" / "alerts_test.yml").read_text()


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bopenrouter_[a-z_]+", expr))


def test_the_rules_and_the_dashboard_use_only_the_exposed_names() -> None:
    exposed = set(NAMES)
    rules = _metric_names((DEPLOY / "prometheus" / "alerts.yml").read_text())
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert rules <= exposed, rules - exposed
    assert used <= exposed, used - exposed
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for shown in ("balance", "runway", "burn rate", "keys", "alerts", "spend", "silences"):
        assert shown in titles
    assert {
        "openrouter_balance_dollars",
        "openrouter_runway_seconds",
        "openrouter_burn_rate_dollars_per_hour",
        "openrouter_key_limit_remaining_dollars",
        "openrouter_alerts_sent_total",
        "openrouter_spend_dollars",
        "openrouter_silences_active",
    } <= used
