"""A person's view, in a real browser: Debian's headless Chromium (driven by playwright, never a
downloaded browser) against a real ``airflow api-server`` on localhost with the plugin loaded.

Checks the portfolio page (clients listed, attention first, numbers, tier bars), a client page
(reports and alert history, links work) and a report (title, charts rendered with a size,
CSV link works) under the SimpleAuthManager; and under the FAB auth manager (the production
default) a client's user, created by ``marketmap access add-user``, logging in through the real
login form: they see only their client's DAGs, portfolio row, client page, reports and alert
links (another client's are 404), and trigger a DAG from the UI that a real scheduler runs to
success. Screenshots of every page go to ``test-artifacts/``; with ``MARKETMAP_UPDATE_DOCS=1``
they are also copied to ``docs/`` for the README.

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


def _shot(page, name: str) -> None:
    """A screenshot into test-artifacts/ (and docs/ with MARKETMAP_UPDATE_DOCS=1)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if os.environ.get("MARKETMAP_UPDATE_DOCS"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(ARTIFACTS / name, ROOT / "docs" / name)


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
            _shot(page, "portfolio.png")

            page.get_by_role("link", name="Acme Robotics").click()
            expect(page.locator("h1")).to_have_text("Acme Robotics")
            expect(page.locator("#alerts")).to_contain_text("T3 wins more often than T1")
            expect(page.locator("#reports tbody tr")).to_have_count(4)
            _shot(page, "client.png")

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
            _shot(page, "report.png")

            page.goto(
                f"{api_server}/marketmap/clients/acme/reports/{RUN_ID.replace(':', '_').replace('+', '_')}/cockpit.html"
            )
            expect(page.locator("h2", has_text="Grace Hopper")).to_be_visible()
            _shot(page, "cockpit.png")
        finally:
            browser.close()


# --------------------------------------------------------------------------- per-client access (FAB)

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
ACME_USER = ("alice", "alice@acme.test", "acme-team-pass-1")  # fake test credentials


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
                text = el.get("text", "")  # a Slack link <url|Open the report>, or report: `url`
                links += re.findall(r"<(https?://[^|>]+)\|Open the report>", text)
                links += re.findall(r"report: `(https?://[^`]+)`", text)
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
    _run([marketmap, "pools", "--apply"], env, "marketmap pools --apply")  # as `make ui` does first
    synced = _run([marketmap, "access", "sync"], env, "marketmap access sync")
    name, email, password = ACME_USER
    added = _run([marketmap, "access", "add-user", "--client", "acme", "--username", name, "--email", email,
                  "--password-stdin"], env, "marketmap access add-user", stdin=password + "\n")  # fmt: skip
    _run([airflow, "dags", "reserialize"], env, "airflow dags reserialize")

    procs = []
    try:
        for what, cmd in (
            (
                "api-server",
                [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            ),
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
    _shot(page, "login.png")
    page.locator("input[name=username]").fill(user[0])
    page.locator("input[name=password]").fill(user[2])
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_load_state("networkidle")


def test_a_client_user_sees_only_their_client(fab_stack):
    """alice has role client_acme (from `marketmap access add-user`): acme's DAGs, portfolio row,
    client page, reports and alert links; globex's pages are 404, as if globex did not exist."""
    sync_playwright, expect = _playwright()
    base = fab_stack["base"]
    assert "client_acme: created" in fab_stack["sync"] and "client_globex: created" in fab_stack["sync"]
    assert "user alice created with role client_acme" in fab_stack["added"]
    acme_links = _alert_report_links(fab_stack["mm_home"] / "outbox" / "acme.jsonl")
    globex_links = _alert_report_links(fab_stack["mm_home"] / "outbox" / "globex.jsonl")
    assert acme_links and globex_links, "the seeded alerts' messages carry report links"
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            _login(page, base, ACME_USER)
            expect(page.locator("h1")).to_have_text("Market Map — client portfolio")  # back where we started
            expect(page.locator("header.top")).to_contain_text("signed in as alice")
            rows = page.locator("#portfolio tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("Acme Robotics")
            assert "Globex" not in page.content()
            _shot(page, "portfolio-client-user.png")

            # The Airflow UI lists acme's DAGs only; the REST API (same session) agrees.
            page.goto(f"{base}/dags")
            expect(page.get_by_text("7 Dags")).to_be_visible()
            expect(page.get_by_text("Acme Robotics — ICP drift and check-ins")).to_be_visible()
            assert "globex" not in page.content().lower()
            _shot(page, "dags-client-user.png")
            # The portfolio from the UI's Browse menu (the plugin's view, embedded): acme only.
            page.get_by_text("Browse", exact=True).click()
            page.get_by_text("Market Map portfolio").click()
            embedded = page.frame_locator("iframe").first
            expect(embedded.locator("#portfolio tbody tr")).to_have_count(1)
            expect(embedded.locator("#portfolio tbody tr").first).to_contain_text("Acme Robotics")
            _shot(page, "portfolio-in-airflow-ui.png")
            api = page.request.get(f"{base}/api/v2/dags?limit=100")
            assert api.ok, api.text()
            dag_ids = sorted(d["dag_id"] for d in api.json()["dags"])
            assert dag_ids and all(d.startswith("acme__") for d in dag_ids), dag_ids
            assert page.request.get(f"{base}/api/v2/dags/globex__drift").status in (403, 404)

            # (c) The alert's report link, as the Slack message carries it, opens the report.
            page.goto(acme_links[0])
            expect(page.locator("h1")).to_contain_text("Executive report — Acme Robotics")
            _shot(page, "alert-report-link.png")

            page.goto(f"{base}/marketmap/clients/acme")
            expect(page.locator("h1")).to_have_text("Acme Robotics")
            expect(page.locator("#alerts")).to_contain_text("T3 wins more often than T1")
            _shot(page, "client-page-client-user.png")

            # Another client's page, report and alert link: 404, never 403 (existence not revealed).
            for url in (
                f"{base}/marketmap/clients/globex",
                globex_links[0],
                f"{base}/marketmap/clients/nosuch",
            ):
                assert page.goto(url).status == 404, url
            assert page.request.get(f"{base}/marketmap/api/portfolio").json()[0]["client_id"] == "acme"
            assert len(page.request.get(f"{base}/marketmap/api/portfolio").json()) == 1
        finally:
            browser.close()


def test_a_client_user_triggers_a_dag_from_the_ui(fab_stack):
    """(b) alice clicks Trigger on acme__drift (paused: the dialog unpauses it); the real scheduler
    runs it to success, and its maintenance report shows up on the client page."""
    sync_playwright, expect = _playwright()
    base = fab_stack["base"]
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            _login(page, base, ACME_USER)
            page.goto(f"{base}/dags/acme__drift")
            page.get_by_role("button", name="Trigger").first.click()
            dialog = page.get_by_role("dialog").filter(
                has_text="Trigger Dag - Acme Robotics — ICP drift and check-ins"
            )
            expect(dialog).to_be_visible()
            expect(dialog.get_by_text("on trigger")).to_be_visible()  # unpause on trigger (ticked)
            _shot(page, "trigger-dialog.png")
            dialog.get_by_role("button", name="Trigger").click()
            expect(dialog).to_be_hidden(timeout=90_000)  # the trigger POST queues behind a busy scheduler

            # Unpausing also lets the scheduler start the latest scheduled interval; alice's run is
            # the manual one. The scheduler (LocalExecutor) runs its three tasks.
            run = None
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                runs = page.request.get(f"{base}/api/v2/dags/acme__drift/dagRuns").json()["dag_runs"]
                run = next((r for r in runs if r["run_type"] == "manual"), None)
                if run and run["state"] in ("success", "failed"):
                    break
                time.sleep(2)
            log = (fab_stack["home"] / "scheduler.log").read_text()[-3000:]
            assert run and run["state"] == "success", f"alice's acme__drift run: {run}\n{log}"
            assert run.get("triggering_user_name") in (None, "alice"), run
            page.goto(f"{base}/dags/acme__drift/runs")
            expect(page.get_by_text("success").first).to_be_visible()
            _shot(page, "dag-run-success.png")

            page.goto(f"{base}/marketmap/clients/acme")
            expect(page.locator("#reports")).to_contain_text("maintenance")
            page.locator("#reports").get_by_role("link", name="maintenance").first.click()
            expect(page.locator("h1")).to_contain_text("Acme Robotics")
            _shot(page, "maintenance-report.png")
        finally:
            browser.close()
