"""The page in a real browser: Debian's chromium, driven by Selenium through chromium-driver.

Nothing is downloaded: the browser and its driver come from the distribution's packages
(`scripts/ensure-system.sh`), and Selenium is handed both paths. The page is served by
uvicorn in this process, on a store holding a day of checks, alerts and a fleet of keys.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from credit_tasks.alerts import Alert
from credit_tasks.rules import AlertType, Status
from credit_tasks.settings import Settings
from credit_tasks.silences import new_silence
from credit_tasks.store import Commit, Store
from credit_tasks.web import create_app

from .conftest import ROOT, free_port, wait_for

SCREENSHOT = ROOT / "docs" / "page.png"
# the README's picture is taken again only when asked: CREDIT_UPDATE_SCREENSHOT=1 make test
UPDATE_SCREENSHOT = os.environ.get("CREDIT_UPDATE_SCREENSHOT") == "1"


def system(*names: str) -> str:
    for name in names:
        if found := shutil.which(name):
            return found
    pytest.fail(f"{names[0]} is not installed: run `make test` (it installs it)")


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never fetches a driver
    options = webdriver.ChromeOptions()
    options.binary_location = system("chromium", "chromium-browser")
    profile = tempfile.mkdtemp(prefix="credit-browser-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,1500",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(system("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def a_day(store: Store, now: datetime) -> None:
    """A day of five-minute checks falling from $14 to under the warning line, a top-up,
    two alerts, a silence, the spend of the day, week and month, and 120 keys."""
    usd = 14.0
    for m in range(24 * 60, 0, -5):
        usd -= 0.02
        if m == 300:
            usd += 20.0
        at = now - timedelta(minutes=m)
        figures = {"remaining_usd": round(usd, 4), "usage_usd": 50.0, "source": "account"}
        figures["checked_at"] = at.isoformat()
        figures |= {"burn_rate_usd_per_hour": 0.24, "runway_hours": round(usd / 0.24, 2)}
        figures |= {"burn_span_hours": 24.0}
        figures |= {"spend_today_usd": 4.8, "spend_week_usd": 33.6, "spend_month_usd": 101.2}
        store.record_success(figures, "ok" if usd >= 10 else "warning", at)
    for i, (kind, hours) in enumerate((("warning", 9), ("resolved", 5))):
        at = now - timedelta(hours=hours)
        alert = Alert(
            id=f"b{i}",
            type=AlertType(kind),
            subject="account",
            status=Status.WARNING if kind == "warning" else Status.OK,
            remaining_usd=9.9,
            threshold_usd=10.0,
            message=f"a {kind} alert",
            timestamp=at,
            resolves=AlertType.WARNING if kind == "resolved" else None,
        )
        store.deliver(alert, at)
    rows = {}
    for i in range(120):
        left = float((i * 7) % 120) / 6
        rows[f"k{i:04d}"] = {
            "hash": f"k{i:04d}",
            "name": f"Customer {i:03d}",
            "label": f"sk-or-v1-c{i:03d}...abc",
            "limit_usd": 20.0,
            "remaining_usd": left,
            "usage_usd": 20.0 - left,
            "limit_reset": None,
            "status": "critical" if left < 1 else "warning" if left < 4 else "ok",
        }
    store.commit(Commit(now, keys=rows))
    store.add_silence(
        new_silence(
            "5e1a2c9d7b30",
            "key:k0000",
            "any",
            timedelta(hours=6),
            "Customer 000 is moving to a new plan today",
            now,
        )
    )


@pytest.fixture
def served(settings: Settings, store: Store) -> Iterator[str]:
    a_day(store, datetime.now(UTC))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}/"
    wait_for(lambda: _answers(base), 20, "the page to answer")
    yield base
    server.should_exit = True
    thread.join(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def text(driver: Any, selector: str) -> str:
    """The text of the first element matching `selector`, read at once (the page swaps its
    parts while it refreshes, so a held element may be gone)."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector
    )
    return str(found).strip()


def _errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_page_shows_the_balance_chart_thresholds_and_pages_the_keys(
    browser: webdriver.Chrome, served: str, store: Store, tmp_path: Path
) -> None:
    browser.get(served)
    balance = browser.find_element(By.CSS_SELECTOR, "#balance .balance")
    stored = float(store.current()["remaining_usd"])
    assert balance.text == f"${stored:,.2f}"

    api = httpx.get(served + "api/history", params={"hours": 24}, timeout=5).json()
    line = browser.find_element(By.CSS_SELECTOR, "svg.chart polyline.balance")
    drawn = browser.execute_script("return arguments[0].points.numberOfItems", line)
    assert drawn == len(api["buckets"]) > 0
    for name in ("warning", "critical"):
        rule = browser.find_element(By.CSS_SELECTOR, f"svg.chart .threshold.{name} line")
        box = browser.execute_script("return arguments[0].getBBox().width", rule)
        assert box > 100  # drawn across the chart
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart .marker.alert-warning")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart .topup")
    shot = SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    first = browser.find_element(By.CSS_SELECTOR, "#keys tbody tr td").text
    browser.find_element(By.CSS_SELECTOR, "#keys a[rel=next]").click()
    wait_for(
        lambda: text(browser, "#keys .where[data-page='2']"),
        10,
        "the keys table to show page 2",
    )
    second = text(browser, "#keys tbody tr td")
    assert second != first
    assert "page=2" in browser.current_url
    assert text(browser, "#balance .balance") == f"${stored:,.2f}"
    assert _errors(browser) == []


def test_the_range_tabs_redraw_the_chart_in_place(browser: webdriver.Chrome, served: str) -> None:
    browser.get(served)
    browser.execute_script("document.body.dataset.marker = 'same page'")
    browser.find_element(By.CSS_SELECTOR, ".tabs a[href*='range=7d']").click()
    wait_for(lambda: "7d" in text(browser, "#chart h2"), 10, "the 7 d chart")
    # swapped in place: the document (and what a script set on it) is the same one
    assert browser.execute_script("return document.body.dataset.marker") == "same page"
    api = httpx.get(served + "api/history", params={"hours": 168}, timeout=5).json()
    drawn = browser.execute_script(
        "return document.querySelector('svg.chart polyline.balance').points.numberOfItems"
    )
    assert drawn == len(api["buckets"])
    assert _errors(browser) == []


def test_the_page_reads_at_a_phone_width(browser: webdriver.Chrome, served: str) -> None:
    browser.set_window_size(390, 900)
    browser.get(served)
    width = browser.execute_script("return document.documentElement.clientWidth")
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= width  # nothing pushes the page sideways; the table scrolls in its box
    size = browser.execute_script(
        "return parseFloat(getComputedStyle(document.querySelector('#balance .balance')).fontSize)"
    )
    assert size >= 24
    said = text(browser, "#silences li.silence")
    assert "key:k0000" in said and "left" in said and "5e1a2c9d7b30" in said
    assert text(browser, "#runway [data-period='month'] .figure") == "$101.20"
    assert _errors(browser) == []


def test_the_screenshot_is_kept_in_the_docs() -> None:
    assert SCREENSHOT.exists() and SCREENSHOT.stat().st_size > 10_000
    assert Path(ROOT / "README.md").read_text().count("docs/page.png") >= 1
