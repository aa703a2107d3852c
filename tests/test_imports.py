"""The package's face is light: the pure modules load none of Celery, Apprise, redis or httpx."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("celery", "apprise", "redis", "httpx", "kombu")
PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
print(",".join(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "module",
    [
        "credit_tasks",
        "credit_tasks.rules",
        "credit_tasks.history",
        "credit_tasks.spike",
        "credit_tasks.alerts",
        "credit_tasks.keyspace",
        "credit_tasks.silences",
        "credit_tasks.simulator",
        "credit_tasks.timeline",
        "credit_tasks.text",
        "credit_tasks.procs",
        "credit_tasks.rollup",
        "credit_tasks.web",
        "credit_tasks.web.chart",
        "credit_tasks.web.command",
    ],
)
def test_a_pure_module_imports_none_of_the_heavy_libraries(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), module],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "", f"{module} loads {done.stdout.strip()}"


def test_the_package_face_gives_the_tasks_and_the_app_without_making_it_current() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from celery import current_app; "
            "from credit_tasks import app, check_credits; "
            "print(check_credits.name, current_app.main, check_credits.app is app); "
            "app.set_current(); "
            "print(current_app.main, check_credits.app is app)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [
        "credit_tasks.check_credits",
        "default",  # Celery's own fallback: the package's app stays out of the way
        "False",
        "credit_tasks",  # a plain script opts in
        "True",
    ]
