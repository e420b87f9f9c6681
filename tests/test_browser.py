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

import datetime as dt
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


# --------------------------------------------------------------------------- per-client access (FAB)

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
ACME_USER = ("alice", "alice@acme.test", "acme-team-pass-1")  # fake test credentials
ADMIN_USER = ("architect", "architect@marketmap.test", "architect-pass-1")


def _run(cmd: list[str], env: dict, what: str, stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{what} exited with {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _alert_report_links(outbox: Path) -> list[str]:
    """The report links of the Slack messages in a client's outbox (as a person would click them)."""
    import json
    import re

    links = []
    for line in outbox.read_text().splitlines():
        for block in json.loads(line).get("blocks") or []:
            for el in block.get("elements") or []:
                links += re.findall(r"report: `(https?://[^`]+)`", el.get("text", ""))
    return links


@pytest.fixture(scope="module")
def fab_stack(tmp_path_factory):
    """The production auth setup on localhost: FAB auth manager, a role per client from
    ``marketmap access sync``, an acme user from ``marketmap access add-user``, the clients' DAGs
    serialized, a real api-server and scheduler (LocalExecutor) over a seeded warehouse with
    reports and alerts (sent through the product's alert path, so the outbox holds the links)."""
    from marketmap.alerts.rules import Alert
    from marketmap.config import load_client
    from marketmap.orchestration.alerting import send_alerts
    from marketmap.reports import generate
    from marketmap.reports.render import report_url
    from marketmap.warehouse import dispose_engines, get_engine

    home = tmp_path_factory.mktemp("fab")
    mm_home = home / "mm"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__AUTH_MANAGER": FAB,
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__SECRET_KEY": "browser-test-session-key",
            "AIRFLOW__API_AUTH__JWT_SECRET": "browser-test-jwt-secret-0123456789abcdef",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "marketmap.settings.AIRFLOW_SQLITE_CONNECT_ARGS",
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "False",
            "MARKETMAP_HOME": str(mm_home),
            "MARKETMAP_CLIENTS_DIR": str(CLIENTS_DIR),
        }
    )

    with pytest.MonkeyPatch.context() as mp:
        for key in ("MARKETMAP_HOME", "MARKETMAP_CLIENTS_DIR", "AIRFLOW__API__BASE_URL"):
            mp.setenv(key, env[key])
        engine = get_engine()
        for client, seed in (("acme", 1), ("globex", 2)):
            seed_client(engine, client, seed=seed, alerts=False)
            cfg = load_client(client)
            for kind in ("validation", "executive", "distribution", "cockpit"):
                generate(kind, cfg, engine, RUN_ID)
            alert = Alert(client_id=client, rule="icp_drift", key="T3>T1", severity="critical", role="leadership",
                          title=f"{cfg.name}: T3 wins more often than T1", numbers={"T1 win rate": 0.2, "T3 win rate": 0.3},
                          report=report_url(client, RUN_ID, "executive"))  # fmt: skip
            send_alerts(cfg, engine, f"{client}__drift", RUN_ID, dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC),
                        [alert], ["icp_drift"])  # fmt: skip
        dispose_engines()  # the server opens its own connections to the SQLite file

    airflow = str(Path(sys.executable).with_name("airflow"))
    marketmap = str(Path(sys.executable).with_name("marketmap"))
    _run([airflow, "db", "migrate"], env, "airflow db migrate")
    synced = _run([marketmap, "access", "sync"], env, "marketmap access sync")
    name, email, password = ACME_USER
    added = _run([marketmap, "access", "add-user", "--client", "acme", "--username", name, "--email", email,
                  "--password-stdin"], env, "marketmap access add-user", stdin=password + "\n")  # fmt: skip
    name, email, password = ADMIN_USER
    _run([airflow, "users", "create", "--role", "Admin", "--username", name, "--email", email, "--firstname", "Ann",
          "--lastname", "Architect", "--password", password], env, "airflow users create")  # fmt: skip
    _run([airflow, "dags", "reserialize"], env, "airflow dags reserialize")

    procs = []
    try:
        for what, cmd in (
            ("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]),
            ("scheduler", [airflow, "scheduler"]),
        ):
            out = open(home / f"{what}.log", "w")  # noqa: SIM115 - closed with the process below
            procs.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True), out))  # fmt: skip
        _wait(f"{base}/api/v2/monitor/health", procs[0][0], home / "api-server.log")
        yield {"base": base, "home": home, "mm_home": mm_home, "env": env, "sync": synced, "added": added}
    finally:
        for proc, out in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            out.close()


def _browser(pw):
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _playwright():
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _need(False, "the playwright package is not installed")
    return sync_playwright, expect


def _login(page, base: str, user: tuple[str, str, str]) -> None:
    """Through the real FAB login form, as a person would."""
    page.goto(f"{base}/marketmap/portfolio")  # not signed in: Airflow's login page, then back here
    page.wait_for_url("**/auth/login/**")
    page.locator("input[name=username]").fill(user[0])
    page.locator("input[name=password]").fill(user[2])
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_load_state("networkidle")


def test_a_client_user_sees_only_their_client(fab_stack):
    sync_playwright, expect = _playwright()
    base = fab_stack["base"]
    assert "client_acme: created" in fab_stack["sync"] and "client_globex: created" in fab_stack["sync"]
    assert "user alice created with role client_acme" in fab_stack["added"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            _login(page, base, ACME_USER)
            page.screenshot(path=str(ARTIFACTS / "fab-after-login.png"), full_page=True)
            page.goto(f"{base}/marketmap/portfolio")
            expect(page.locator("h1")).to_have_text("Market Map — client portfolio")
            rows = page.locator("#portfolio tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("Acme Robotics")
            assert "Globex" not in page.content()
            page.screenshot(path=str(ARTIFACTS / "portfolio-client-user.png"), full_page=True)

            page.goto(f"{base}/dags")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ARTIFACTS / "dags-client-user.png"), full_page=True)
        finally:
            browser.close()
