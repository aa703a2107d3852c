"""The package's app: it never takes over a host's, it routes its tasks to `credits`, and the
README's fleet and plain-script snippets run as written.

Celery reads CELERY_BROKER_URL from the environment for every app, a host's included, so the
host-app tests leave it unset: the package's app then sends to REDIS_URL's database, and the
host's to a database of its own.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from celery import Celery

from credit_tasks.celery import DEFAULT_QUEUE, QUEUE
from credit_tasks.simulator import Simulator

from .conftest import BIN, ROOT, SessionWorker, service_env, wait_for

README = (ROOT / "README.md").read_text()
HOST_DB = 6  # the host app's broker and results
FLEET_DB = 7  # the README fleet's broker and results


def readme_block(after: str, lang: str) -> str:
    """The first fenced `lang` block of the README after the text `after`."""
    start = README.index(f"```{lang}\n", README.index(after)) + len(lang) + 4
    return README[start : README.index("```", start)]


def readme_inline(after: str) -> str:
    """The first `inline code` of the README after the text `after`."""
    start = README.index("`", README.index(after)) + 1
    return README[start : README.index("`", start)]


def readme_command(prefix: str) -> list[str]:
    """The one README line that starts with `prefix`, split as a shell would."""
    [line] = [line for line in README.splitlines() if line.startswith(prefix)]
    return shlex.split(line, comments=True)


def balance(sim: Simulator, usd: float) -> None:
    sim.set_account(total_credits=usd + 1.0, total_usage=1.0)


def flushed(url: str) -> str:
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def without_broker_variables(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}


@contextmanager
def running(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[Path]:
    """A process for the length of the block; yields its log."""
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield log
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


HOST_APP = """
from celery import Celery
import credit_tasks.tasks  # noqa: F401

app = Celery("proj", broker={broker!r}, backend={broker!r})
"""

IMPORT_ORDERS = {
    "the host app first": """
from celery import Celery
app = Celery("proj", broker={broker!r}, backend={broker!r})
from credit_tasks import check_credits
from credit_tasks.celery import beat_schedule  # the README's helper, the package's app with it
""",
    "the tasks first": """
from credit_tasks import check_credits
from credit_tasks.celery import beat_schedule
from celery import Celery
app = Celery("proj", broker={broker!r}, backend={broker!r})
""",
}
SEND = """
print(check_credits.app.main)
print(check_credits.delay().get(timeout=30)["status"])
"""


@pytest.fixture(scope="module")
def host_worker(
    sim_server: Simulator, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A host app's worker (`celery -A proj worker`) on its own broker database; yields the
    broker URL and the environment a host script runs with."""
    home = tmp_path_factory.mktemp("host")
    broker = flushed(f"{redis_server}/{HOST_DB}")
    (home / "proj.py").write_text(HOST_APP.format(broker=broker))
    env = without_broker_variables(service_env(sim_server, redis_server))
    argv = [str(BIN / "celery"), "-A", "proj", "worker", "--concurrency=1", "--loglevel=INFO"]
    argv += ["--hostname=host@%h", "--without-gossip", "--without-mingle"]
    with running(argv, env, home, home / "worker.log") as log:
        probe = Celery("host-probe", broker=broker, set_as_current=False)
        try:
            wait_for(lambda: probe.control.ping(timeout=0.5), 30, f"the host worker ({log})")
        finally:
            probe.close()
        yield broker, env


@pytest.mark.parametrize("order", list(IMPORT_ORDERS))
def test_a_host_app_sends_the_credit_tasks_through_its_own_broker_in_either_import_order(
    sim: Simulator,
    redis_url: str,
    rdb: redis.Redis,
    host_worker: tuple[str, dict[str, str]],
    tmp_path: Path,
    order: str,
) -> None:
    broker, env = host_worker
    balance(sim, 42.0)
    script = IMPORT_ORDERS[order].format(broker=broker) + SEND
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # bound to the host's app, run by the host's worker, recorded in the data db
    assert done.stdout.split() == ["proj", "ok"]
    assert rdb.xlen("openrouter:credits:timeline") == 1
    # nothing went to the package's broker, REDIS_URL's database
    assert [rdb.llen(q) for q in (QUEUE, DEFAULT_QUEUE)] == [0, 0]


def test_the_readme_plain_script_sends_through_the_package_app_as_written(
    sim: Simulator, redis_server: str, worker: SessionWorker, tmp_path: Path
) -> None:
    balance(sim, 42.0)
    env = service_env(sim, redis_server)  # the session worker's broker, as CELERY_BROKER_URL
    snippet = readme_block("From a plain script", "python")
    by_name = readme_inline("Or leave the current app alone and send by name")
    assert "app.set_current()" in snippet
    for script in (snippet, f"from credit_tasks import app\nprint({by_name})"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stderr
        assert "'status': 'ok'" in done.stdout
        assert "'remaining_usd': 42.0" in done.stdout


def test_the_readme_fleet_runs_beats_checks_and_their_alerts_as_written(
    sim: Simulator, redis_server: str, redis_url: str, rdb: redis.Redis, tmp_path: Path
) -> None:
    """The worker reads only `credits`; beat's check and the alert it dispatches get there."""
    broker = flushed(f"{redis_server}/{FLEET_DB}")
    env = service_env(
        sim,
        redis_server,
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker,
        CREDIT_CHECK_INTERVAL_MINUTES="0.05",  # every 3 s
    )
    state = tmp_path / "var-lib-credit-tasks"
    state.mkdir()  # what the README's `install -d` does
    worker_argv = readme_command("celery -A credit_tasks worker -E --queues=credits")
    beat_argv = readme_command("celery -A credit_tasks beat --schedule=")
    beat_argv = [arg.replace("/var/lib/credit-tasks", str(state)) for arg in beat_argv]
    assert "--queues=credits" in worker_argv and beat_argv[-1].startswith("--schedule=")
    balance(sim, 7.5)

    def alert_delivered() -> bool:
        ids = rdb.lrange("openrouter:alerts:list", 0, -1)
        return bool(ids) and bool(rdb.hget(f"openrouter:alerts:{ids[0]}", "delivered_at"))

    with (
        running([str(BIN / worker_argv[0]), *worker_argv[1:]], env, tmp_path, tmp_path / "w.log"),
        running([str(BIN / beat_argv[0]), *beat_argv[1:]], env, tmp_path, tmp_path / "b.log"),
    ):
        wait_for(alert_delivered, 60, "beat's check and its warning, through the fleet worker")
    assert rdb.xlen("openrouter:credits:timeline") >= 1
    [alert_id] = rdb.lrange("openrouter:alerts:list", 0, -1)
    assert rdb.hget(f"openrouter:alerts:{alert_id}", "type") == "warning"
    assert list(state.glob("celerybeat-schedule*"))


def test_a_celeryconfig_beside_the_project_overrides_what_the_settings_configure(
    tmp_path: Path,
) -> None:
    """The root's `celeryconfig.py` says "override any Celery setting below": it must win."""
    (tmp_path / "celeryconfig.py").write_text(
        (ROOT / "celeryconfig.py").read_text()
        + '\nbroker_url = "redis://127.0.0.1:1/9"\n'
        + 'broker_transport_options = {"visibility_timeout": 42}\n'
        + "worker_prefetch_multiplier = 7\n"
    )
    probe = (
        "from credit_tasks import app; c = app.conf; "
        "print(c.broker_url, c.broker_transport_options['visibility_timeout'], "
        "c.worker_prefetch_multiplier, sorted(c.beat_schedule))"
    )
    redis_url = "redis://127.0.0.1:6399/3"  # only read, never reached
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url, "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    broker, visibility, prefetch, entries = done.stdout.split(" ", 3)
    assert (broker, visibility, prefetch) == ("redis://127.0.0.1:1/9", "42", "7")
    assert "check-openrouter-credits" in entries  # what it did not override stays the settings'
    # and without one, the settings' own values
    (tmp_path / "celeryconfig.py").unlink()
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1)[0] == redis_url
