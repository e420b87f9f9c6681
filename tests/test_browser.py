"""A person's view, in a real browser: Debian's headless Chromium (driven by playwright, never a
downloaded browser) against a real ``airflow api-server`` on localhost with the plugin loaded.

Checks the portfolio page (clients listed, attention first, numbers, tier bars), a client page
(reports and alert history, links work) and a report (title, charts rendered with a size,
CSV link works). Screenshots go to ``test-artifacts/``; with ``MARKETMAP_UPDATE_DOCS=1`` the
portfolio and report screenshots are also copied to ``docs/`` for the README.

Without chromium or playwright the test skips on a developer machine and fails when ``CI``
is set (run ``scripts/install-browser.sh``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from report_support import CLIENTS_DIR, RUN_ID, seed_client

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = pytest.mark.slow


def _need(ok: bool, what: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {what}: run scripts/install-browser.sh and install requirements-dev.txt")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"airflow api-server did not answer {url} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture()
def api_server(airflow_db, mm_home, monkeypatch, tmp_path):
    """A real api-server in a subprocess on a free port, over a seeded warehouse with reports."""
    from marketmap.config import load_client
    from marketmap.reports import generate
    from marketmap.warehouse import dispose_engines, get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    engine = get_engine()
    seed_client(engine, "acme")
    seed_client(engine, "globex", seed=2, alerts=False)
    for client in ("acme", "globex"):
        for kind in ("validation", "executive", "distribution", "cockpit"):
            generate(kind, load_client(client), engine, RUN_ID)
    dispose_engines()  # the server opens its own connections to the SQLite file

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "MARKETMAP_HOME": str(mm_home),
            "MARKETMAP_CLIENTS_DIR": str(CLIENTS_DIR),
        }
    )
    log = tmp_path / "api-server.log"
    airflow = Path(sys.executable).with_name("airflow")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait(f"{base}/api/v2/monitor/health", proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_person_sees_the_portfolio_and_a_report(api_server):
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _need(False, "the playwright package is not installed")

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            # Behind Airflow's authentication (all-admins mode signs every request in as admin;
            # the redirect to the login page is tested in test_portfolio.py).
            page.goto(f"{api_server}/marketmap/portfolio")
            expect(page.locator("h1")).to_have_text("Market Map — client portfolio")
            expect(page.locator("header.top")).to_contain_text("signed in as")

            rows = page.locator("#portfolio tbody tr")
            expect(rows).to_have_count(2)
            first, second = rows.nth(0), rows.nth(1)
            expect(first).to_contain_text("Acme Robotics")  # a critical alert puts it first
            expect(first).to_contain_text("1 critical alert open")
            expect(first).to_contain_text("1 critical")
            expect(second).to_contain_text("Globex Logistics")
            expect(first).to_contain_text("120 / 1,000")  # credits spent of budget
            expect(first).to_contain_text("T1 30")  # tier counts next to the tier bar
            assert first.locator("svg.tierbar rect").count() == 4
            page.screenshot(path=str(ARTIFACTS / "portfolio.png"), full_page=True)

            page.get_by_role("link", name="Acme Robotics").click()
            expect(page.locator("h1")).to_have_text("Acme Robotics")
            expect(page.locator("#alerts")).to_contain_text("T3 wins more often than T1")
            expect(page.locator("#reports tbody tr")).to_have_count(4)
            page.screenshot(path=str(ARTIFACTS / "client.png"), full_page=True)

            page.locator("#reports").get_by_role("link", name="executive").click()
            expect(page.locator("h1")).to_contain_text("Executive report — Acme Robotics")
            charts = page.locator("figure.chart svg")
            assert charts.count() >= 4
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box and box["width"] > 200 and box["height"] > 100, f"chart {i} not rendered: {box}"
            expect(page.locator("figure.chart").first).to_contain_text("Closed won and lost deals by tier")
            expect(page.locator(".kpi").first).to_contain_text("90")  # closed deals
            csv_link = page.get_by_role("link", name="executive__by_tier.csv")
            response = page.request.get(page.url.rsplit("/", 1)[0] + "/" + csv_link.get_attribute("href"))
            assert response.ok and response.text().startswith("tier,won,lost")
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

            page.goto(
                f"{api_server}/marketmap/clients/acme/reports/{RUN_ID.replace(':', '_').replace('+', '_')}/cockpit.html"
            )
            expect(page.locator("h2", has_text="Grace Hopper")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "cockpit.png"), full_page=True)
        finally:
            browser.close()

    if os.environ.get("MARKETMAP_UPDATE_DOCS"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(ARTIFACTS / "portfolio.png", ROOT / "docs" / "portfolio.png")
        shutil.copy(ARTIFACTS / "report.png", ROOT / "docs" / "report.png")
