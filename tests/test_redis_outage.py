"""Redis away and back, Redis with a password, and Redis over TLS.

"Sensibly" after a restart means: with persistence off, the restarted Redis has forgotten the
alert state and its cooldowns, so a balance that is still low alerts once more (one alert, not
a storm: the new cooldown holds after it); with persistence on, the state survives and the
cooldown goes on as if nothing happened.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.exceptions import OperationalError

from credit_tasks import tasks
from credit_tasks.check import run_check
from credit_tasks.client import OpenRouterClient
from credit_tasks.runtime import Runtime
from credit_tasks.settings import Settings
from credit_tasks.simulator import Simulator
from credit_tasks.store import Store

from .conftest import BIN, RedisProcess, make_settings, run_cli, service_env, wait_for

PASSWORD = "pw-7f3a9c1e5b"
INTERVAL_S = 3.0


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


def points(client: redis.Redis) -> int:
    return int(client.xlen("openrouter:credits:timeline"))


class Monitor:
    """`credit-monitor monitor` as a subprocess in its own process group."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.log_path = home / "monitor.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "credit-monitor"), "monitor"],
                env=env,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def size(self) -> int:
        return self.log_path.stat().st_size

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def monitored(
    sim: Simulator, own_redis: Any, tmp_path: Path
) -> Iterator[tuple[Monitor, RedisProcess, dict[str, str]]]:
    server: RedisProcess = own_redis()  # persistence off, as the default Debian package is not
    url = f"redis://127.0.0.1:{server.port}"
    env = service_env(
        sim,
        url,
        REDIS_URL=f"{url}/0",
        CELERY_BROKER_URL=f"{url}/1",
        CELERY_RESULT_BACKEND=f"{url}/1",
        CREDIT_CHECK_INTERVAL_MINUTES=str(INTERVAL_S / 60),
    )
    monitor = Monitor(env, tmp_path)
    yield monitor, server, env
    monitor.stop()


def test_the_monitor_rides_out_a_redis_restart_and_alerts_once_after_it(
    sim: Simulator, monitored: tuple[Monitor, RedisProcess, dict[str, str]], tmp_path: Path
) -> None:
    monitor, server, env = monitored
    balance(sim, 8.0)  # a warning all along
    data = redis.Redis(port=server.port, decode_responses=True, socket_timeout=2)
    wait_for(lambda: points(data) >= 2, 30, "two checks before the outage")
    assert data.llen("openrouter:alerts:list") == 1

    server.stop()
    outage_started, size_before = time.monotonic(), monitor.size()
    status = run_cli(env, "status", cwd=tmp_path)  # a person looking during the outage
    assert status.returncode == 3
    assert status.stderr.startswith("credit-monitor: Redis at redis://127.0.0.1:")
    assert "is unreachable (Connection refused)" in status.stderr
    # the scenario, not a wait for an event: an outage three intervals long, so beat misses
    # sends and the consumer backs off more than once
    time.sleep(3 * INTERVAL_S)
    outage_s = time.monotonic() - outage_started
    grown = monitor.size() - size_before
    assert monitor.proc.poll() is None  # no crash, no exit
    # bounded: beat reports each missed send once, the consumer backs off 2, 4, 6 s ...
    assert grown < 20_000 * outage_s / INTERVAL_S, grown
    waits = [float(s) for s in re.findall(r"Trying again in (\d+\.\d+) seconds", monitor.log())]
    assert waits == sorted(waits) and len(waits) <= 4, waits

    server.start()  # same port, empty: persistence was off
    restarted, size_at_restart = time.monotonic(), monitor.size()
    wait_for(lambda: points(data) >= 2, 40, "checks to resume by themselves")
    resumed_s = time.monotonic() - restarted
    resumed = points(data)
    wait_for(lambda: points(data) >= resumed + 2, 4 * INTERVAL_S, "two more checks, still low")
    assert points(data) >= 3
    ids = data.lrange("openrouter:alerts:list", 0, -1)
    alerts = [data.hget(f"openrouter:alerts:{alert_id!s}", "type") for alert_id in ids]
    assert alerts == ["warning"]  # the forgotten state alerts once again, then cools down
    assert monitor.proc.poll() is None
    assert resumed_s < 30
    assert "Traceback" not in monitor.log_path.read_bytes()[size_at_restart:].decode()


def check_once(settings: Settings) -> list[str]:
    store = Store.from_settings(settings)
    try:
        with OpenRouterClient(settings) as client:
            return [a.type.value for a in run_check(settings, client, store).alerts]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("persistence", "after_restart"),
    [
        (("--appendonly", "no"), ["warning"]),  # state forgotten: one new alert
        (("--appendonly", "yes", "--appendfsync", "always"), []),  # the cooldown still holds
    ],
    ids=["persistence off", "persistence on"],
)
def test_after_a_restart_the_cooldown_holds_only_if_redis_kept_its_data(
    sim: Simulator, own_redis: Any, persistence: tuple[str, ...], after_restart: list[str]
) -> None:
    balance(sim, 8.0)
    server: RedisProcess = own_redis(*persistence)
    settings = make_settings(sim, f"redis://127.0.0.1:{server.port}/0")
    assert check_once(settings) == ["warning"]
    assert check_once(settings) == []
    server.stop()
    server.start()
    assert check_once(settings) == after_restart
    assert check_once(settings) == []  # never a storm


@pytest.fixture
def task_settings() -> Iterator[Any]:
    """Run the Celery task functions in-process with the settings a test gives them."""

    def use(settings: Settings) -> None:
        tasks.use_runtime(Runtime(settings))  # closes the one it replaces

    yield use
    tasks.use_runtime(None)


def test_a_check_task_with_its_redis_away_returns_one_line_not_a_crash(
    sim: Simulator, task_settings: Any
) -> None:
    task_settings(make_settings(sim, "redis://127.0.0.1:1/0"))
    started = time.monotonic()
    result = tasks.check_credits()
    assert time.monotonic() - started < 5
    assert result["status"] == "unknown"
    assert result["error"].startswith("Redis at redis://127.0.0.1:1/0 is unreachable")


def test_an_alert_whose_send_alert_cannot_be_queued_is_delivered_by_the_check_itself(
    sim: Simulator,
    redis_url: str,
    rdb: redis.Redis,
    task_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    balance(sim, 3.0)
    task_settings(make_settings(sim, redis_url))

    def broker_gone(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_alert, "delay", broker_gone)
    pubsub = rdb.pubsub()
    pubsub.subscribe("openrouter-alerts")
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    result = tasks.check_credits()
    [alert] = result["alerts"]
    message = wait_for(lambda: pubsub.get_message(timeout=0.2), what="the alert on the channel")
    pubsub.close()
    assert alert["type"] == "critical"
    assert alert["id"] in message["data"]
    assert rdb.hget(f"openrouter:alerts:{alert['id']}", "delivered_at")


@pytest.mark.parametrize(
    ("url_password", "expected"),
    [
        (PASSWORD, None),
        ("not-the-password", "refused the password: fix it in REDIS_URL"),
        (None, "requires a password: put it in REDIS_URL as redis://:PASSWORD@host:port/db"),
    ],
    ids=["right password", "wrong password", "no password"],
)
def test_a_redis_with_a_password_works_and_no_password_is_ever_shown(
    sim: Simulator,
    own_redis: Any,
    tmp_path: Path,
    url_password: str | None,
    expected: str | None,
) -> None:
    balance(sim, 50.0)
    server: RedisProcess = own_redis("--requirepass", PASSWORD)
    auth = f":{url_password}@" if url_password else ""
    url = f"redis://{auth}127.0.0.1:{server.port}/0"
    env = service_env(sim, "redis://unused", REDIS_URL=url)
    outputs = [run_cli(env, *args, cwd=tmp_path) for args in (["check"], ["status"])]
    text = "".join(o.stdout + o.stderr for o in outputs)
    assert PASSWORD not in text and "not-the-password" not in text
    if expected is None:
        assert [o.returncode for o in outputs] == [0, 0]
        assert outputs[0].stdout.startswith("CREDITS OK - $50.00 left")
    else:
        for done in outputs:
            assert done.returncode == 3
            [line] = done.stderr.splitlines()
            assert f"Redis at redis://{':***@' if url_password else ''}127.0.0.1:" in line
            assert line.endswith(expected)


def test_a_password_in_the_url_query_is_never_shown_either(
    sim: Simulator, own_redis: Any, tmp_path: Path
) -> None:
    server: RedisProcess = own_redis("--requirepass", PASSWORD)
    url = f"redis://127.0.0.1:{server.port}/0?password=not-the-password"
    done = run_cli(service_env(sim, "redis://unused", REDIS_URL=url), "check", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stderr == (
        f"credit-monitor: Redis at redis://127.0.0.1:{server.port}/0 refused the password: "
        "fix it in REDIS_URL\n"
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: it makes the test's self-signed certificate")
    home = tmp_path_factory.mktemp("tls")
    cert, key = home / "cert.pem", home / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_a_rediss_url_works_with_its_ca_and_says_what_to_add_without_it(
    sim: Simulator, own_redis: Any, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    tls = ("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file")
    try:
        server = own_redis(
            *tls, str(cert), "--tls-auth-clients", "no", "--requirepass", "pw", tls=True
        )
    except pytest.fail.Exception:
        pytest.skip("this redis-server build lacks TLS: it exits when given --tls-port")
    balance(sim, 50.0)
    base = f"rediss://:pw@127.0.0.1:{server.port}/0"
    good = run_cli(service_env(sim, "redis://unused", REDIS_URL=f"{base}?ssl_ca_certs={cert}"),
                   "check", cwd=tmp_path)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("CREDITS OK - $50.00 left")
    unverified = run_cli(service_env(sim, "redis://unused", REDIS_URL=base), "check", cwd=tmp_path)
    assert unverified.returncode == 3
    [line] = unverified.stderr.splitlines()
    assert line.startswith(f"credit-monitor: Redis at rediss://:***@127.0.0.1:{server.port}/0 ")
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert line.endswith("add ?ssl_ca_certs=/path/to/ca.pem to REDIS_URL")
    data = redis.Redis(
        host="127.0.0.1", port=server.port, password="pw", ssl=True, ssl_ca_certs=str(cert)
    )
    assert data.xlen("openrouter:credits:timeline") == 1
    data.close()
