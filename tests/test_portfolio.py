"""Portfolio: status rows, attention order, the digest DAG, and the plugin's pages with Airflow auth."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote

import pytest
from report_support import CLIENTS_DIR, RUN_ID, seed_client

NOW = dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC)


@pytest.fixture()
def seeded(mm_home, monkeypatch):
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    engine = get_engine()
    seed_client(engine, "acme")
    seed_client(engine, "globex", seed=2, alerts=False)
    _ran(engine, "drift", dt.datetime(2026, 3, 9, 7, 30, tzinfo=dt.UTC))  # the weekly check of NOW's week
    return engine


def _ran(engine, pipeline, at, clients=("acme", "globex"), status="success"):
    """A maintenance run in the warehouse, as the pipeline's summary step records it."""
    from marketmap.warehouse import schema as t
    from marketmap.warehouse import upsert

    with engine.begin() as conn:
        upsert(conn, t.runs, [{"client_id": c, "run_id": f"scheduled__{at.isoformat()}", "pipeline": pipeline,
                               "logical_date": at, "started_at": at, "finished_at": at + dt.timedelta(minutes=5),
                               "status": status} for c in clients])  # fmt: skip


def _configs():
    from marketmap.config import load_all

    return list(load_all(CLIENTS_DIR).values())


def test_next_checkin_follows_the_maintenance_calendar():
    from marketmap.portfolio.data import next_checkin

    launch = dt.date(2026, 1, 5)
    assert next_checkin(launch, dt.date(2026, 2, 1)) == (
        dt.date(2026, 4, 5),
        "refinement check-in (90 days after launch)",
    )
    assert next_checkin(launch, dt.date(2026, 5, 1))[0] == dt.date(2026, 7, 6)
    assert "every 6 months" in next_checkin(launch, dt.date(2026, 8, 1))[1]
    assert next_checkin(None, dt.date(2026, 8, 1)) is None


def test_status_rows_sorted_by_attention(seeded):
    from marketmap.portfolio.data import portfolio
    from marketmap.warehouse import get_engine, upsert
    from marketmap.warehouse import schema as t

    rows = portfolio(_configs(), lambda cfg: get_engine(), now=NOW)
    assert [r["client_id"] for r in rows] == ["acme", "globex"]  # acme has a critical alert open
    acme, globex = rows
    assert acme["attention"] == ["1 critical alert open"] and acme["open_alerts"] == {"critical": 1}
    assert acme["last_success"]["build"] == dt.datetime(2026, 3, 2, 10, 3, tzinfo=dt.UTC)
    assert acme["credits"] == {"month": "2026-03", "spent": 120.0, "budget": 1000.0, "share": 0.12}
    assert sum(acme["tiers"].values()) == 120 and list(acme["tiers"])[0] == "T1"
    assert globex["attention"] == []
    # A failed monthly run puts globex first.
    with seeded.begin() as conn:
        upsert(conn, t.runs, [{"client_id": "globex", "run_id": "scheduled__m", "pipeline": "monthly",
                               "started_at": NOW - dt.timedelta(days=1), "status": "failed"}])  # fmt: skip
    rows = portfolio(_configs(), lambda cfg: get_engine(), now=NOW)
    assert rows[0]["client_id"] == "globex" and rows[0]["attention"] == ["1 failed run (monthly)"]
    # Airflow's own run states count too: a failed latest build run, then a later success clears it.
    runs = {"acme": [{"dag_id": "acme__build", "run_id": "r2", "state": "failed", "end_date": NOW}]}
    acme = next(
        r
        for r in portfolio(_configs(), lambda cfg: get_engine(), now=NOW, dag_runs=runs)
        if r["client_id"] == "acme"
    )
    assert "1 failed run (build)" in acme["attention"]
    runs["acme"].insert(
        0,
        {
            "dag_id": "acme__build",
            "run_id": "r3",
            "state": "success",
            "end_date": NOW + dt.timedelta(hours=1),
        },
    )
    acme = next(
        r
        for r in portfolio(_configs(), lambda cfg: get_engine(), now=NOW, dag_runs=runs)
        if r["client_id"] == "acme"
    )
    assert not acme["failed_runs"]


def test_run_ids_read_as_dates_in_the_clients_timezone_with_their_kind():
    from zoneinfo import ZoneInfo

    from marketmap.portfolio.data import readable_run, run_links
    from marketmap.reports.render import safe_name

    berlin = ZoneInfo("Europe/Berlin")
    manual = "manual__2026-12-05T21:49:05.123810+00:00"
    assert readable_run(manual, berlin)["label"] == "2026-12-05 22:49 CET · manual"
    # The report folders' file-system safe form reads the same.
    assert readable_run(safe_name(manual), berlin)["label"] == "2026-12-05 22:49 CET · manual"
    assert (
        readable_run("scheduled__2026-07-01T04:13:00+00:00", berlin)["label"]
        == "2026-07-01 06:13 CEST · scheduled"
    )
    assert (
        readable_run("asset_triggered__2026-03-02T10:00:00+00:00", ZoneInfo("UTC"))["kind"]
        == "asset-triggered"
    )
    # Airflow's run type wins over the id's prefix; an id without a date takes the run's date.
    at = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    assert (
        readable_run("r2", berlin, "asset_triggered", at)["label"] == "2026-03-02 11:00 CET · asset-triggered"
    )
    assert readable_run("my-own-id", berlin)["label"] == "my-own-id"
    links = run_links("acme__build", manual, "load_accounts", "http://af:8080")
    assert (
        links["run"]
        == "http://af:8080/dags/acme__build/runs/manual__2026-12-05T21%3A49%3A05.123810%2B00%3A00"
    )
    assert links["log"] == links["run"] + "/tasks/load_accounts"
    assert run_links("acme__build", "r1")["log"] is None and run_links("acme__build", "r1")["run"].startswith(
        "/dags/"
    )


def test_paused_or_never_run_maintenance_is_not_ok(seeded):
    from marketmap.portfolio.data import portfolio
    from marketmap.warehouse import get_engine

    def row(client_id, now=NOW, **kwargs):
        rows = portfolio(_configs(), lambda cfg: get_engine(), now=now, **kwargs)
        return next(r for r in rows if r["client_id"] == client_id)

    assert row("globex")["attention"] == [] and row("globex")["never_run"] == []
    # Paused in Airflow: the page says which and why it matters; a paused build is shown, not a reason.
    dags = {"globex": {"globex__monthly": {"paused": True}, "globex__build": {"paused": True},
                       "globex__drift": {"paused": False}}}  # fmt: skip
    globex = row("globex", dags=dags)
    assert globex["paused"] == ["build", "monthly"]
    assert globex["attention"] == [
        "1 maintenance pipeline paused in Airflow (monthly): it does not run on schedule"
    ]
    assert globex["attention_score"] > 0
    # Never run while the schedule said it should have: April's monthly run (1st, 06:xx UTC).
    later = dt.datetime(2026, 4, 1, 12, 0, tzinfo=dt.UTC)
    _ran(seeded, "drift", dt.datetime(2026, 3, 30, 7, 30, tzinfo=dt.UTC))
    globex = row("globex", now=later)
    assert [n["pipeline"] for n in globex["never_run"]] == ["monthly"]
    due = globex["never_run"][0]["due"]
    assert (due.year, due.month, due.day, due.hour) == (2026, 4, 1, 6)
    assert globex["attention"] == [
        "1 maintenance pipeline never ran although scheduled: monthly (due since 2026-04-01)"
    ]
    # The words stay the same while it stays missing (the digest is sent on change only).
    words = globex["attention"][0].removeprefix("1 maintenance pipeline never ran although scheduled: ")
    assert words in row("globex", now=later + dt.timedelta(days=9))["attention"][0]
    # Not yet due (the hour of grace after its time), or it ran: fine again.
    assert row("globex", now=due + dt.timedelta(minutes=30))["never_run"] == []
    _ran(seeded, "monthly", due, status="failed")
    assert row("globex", now=later)["never_run"] == []  # it ran (and failed: that is its own reason)
    assert row("globex", now=later)["attention"] == ["1 failed run (monthly)"]
    # A paused monthly is reported as paused, not twice.
    acme = row("acme", now=later, dags={"acme": {"acme__monthly": {"paused": True}}})
    assert acme["never_run"] == [] and any("paused in Airflow (monthly)" in a for a in acme["attention"])


def test_a_pipeline_that_stopped_running_is_late_even_where_paused_dags_are_invisible(seeded):
    """The daily digest has no Airflow metadata (no paused flags): a maintenance pipeline that ran
    before but not since its schedule fired (paused after running, switched off) is still named."""
    from marketmap.portfolio.data import portfolio
    from marketmap.warehouse import get_engine

    def row(now):
        rows = portfolio(_configs(), lambda cfg: get_engine(), now=now)  # no dags: the digest's view
        return next(r for r in rows if r["client_id"] == "globex")

    _ran(seeded, "monthly", dt.datetime(2026, 4, 1, 6, 30, tzinfo=dt.UTC))
    _ran(seeded, "drift", dt.datetime(2026, 3, 30, 7, 30, tzinfo=dt.UTC))  # a Monday; weekly
    assert row(dt.datetime(2026, 4, 6, 12, tzinfo=dt.UTC))["overdue"] == []  # within the grace
    late = row(dt.datetime(2026, 4, 8, 9, tzinfo=dt.UTC))
    assert [o["pipeline"] for o in late["overdue"]] == ["drift"]
    assert any(
        a.startswith("1 maintenance pipeline late: drift (due 2026-04-06, last ran 2026-03-30)")
        and a.endswith("paused, switched off or stuck in Airflow?")
        for a in late["attention"]
    ), late["attention"]
    _ran(seeded, "drift", dt.datetime(2026, 4, 8, 9, 30, tzinfo=dt.UTC))  # resumed: fine again
    assert row(dt.datetime(2026, 4, 8, 10, tzinfo=dt.UTC))["overdue"] == []


def test_running_pipelines_are_shown_with_a_readable_run(seeded):
    from marketmap.portfolio.data import portfolio
    from marketmap.warehouse import get_engine

    started = NOW - dt.timedelta(minutes=20)
    _ran(seeded, "monthly", started, clients=("globex",), status="running")
    _ran(seeded, "valuation", NOW - dt.timedelta(days=2), clients=("globex",), status="running")  # died
    runs = {"globex": [{"dag_id": "globex__build", "run_id": "asset_triggered__2026-03-10T07:55:00+00:00",
                        "state": "queued", "end_date": None, "run_type": "asset_triggered", "at": NOW}]}  # fmt: skip
    rows = portfolio(_configs(), lambda cfg: get_engine(), now=NOW, dag_runs=runs, base_url="http://af")
    globex = next(r for r in rows if r["client_id"] == "globex")
    assert [(r["pipeline"], r["readable"]["label"]) for r in globex["running"]] == [
        ("build", "2026-03-10 07:55 UTC · asset-triggered"),
        ("monthly", "2026-03-10 07:40 UTC · scheduled"),
    ]
    assert globex["running"][0]["links"]["run"].startswith(
        "http://af/dags/globex__build/runs/asset_triggered__"
    )
    assert globex["attention"] == ["1 failed run (valuation)"]  # running for two days: dead, not running
    # A client in Berlin reads its runs in Berlin time.
    berlin = [
        c.model_copy(update={"timezone": "Europe/Berlin"}) for c in _configs() if c.client_id == "globex"
    ]
    (globex,) = portfolio(berlin, lambda cfg: get_engine(), now=NOW, dag_runs=runs)
    assert [r["readable"]["label"] for r in globex["running"]][0] == "2026-03-10 08:55 CET · asset-triggered"
    assert globex["last_success"]["build"].strftime("%H:%M %Z") == "11:03 CET"
    assert globex["failed_runs"][0]["at"].tzname() == "CET"


def test_review_queue_count_is_the_open_items(seeded):
    from marketmap.portfolio.data import portfolio
    from marketmap.warehouse import get_engine
    from marketmap.warehouse import schema as t

    with seeded.begin() as conn:
        conn.execute(t.review_queue.insert(), [
            {"client_id": "acme", "run_id": "r", "kind": "duplicate_account", "left_key": f"a{i}", "right_key": f"b{i}",
             "status": status} for i, status in enumerate(["open", "open", "open", "merged"])
        ] + [{"client_id": "globex", "run_id": "r", "kind": "duplicate_account", "left_key": "x", "right_key": "y",
              "status": "dismissed"}])  # fmt: skip
    rows = {r["client_id"]: r for r in portfolio(_configs(), lambda cfg: get_engine(), now=NOW)}
    assert rows["acme"]["review_queue"] == 3 and rows["globex"]["review_queue"] == 0


def test_digest_is_sent_only_when_something_changed(seeded, mm_home):
    from marketmap.alerts.delivery import outbox_path
    from marketmap.orchestration.portfolio import send_digest
    from marketmap.warehouse import schema as t

    first = send_digest("scheduled__d1", now=NOW, configs=_configs())
    assert first["#mm-architects"]["sent"] and first["#mm-architects"]["clients_needing_attention"] == 1
    messages = [json.loads(line) for line in outbox_path("_portfolio").read_text().splitlines()]
    assert len(messages) == 1 and messages[0]["channel"] == "#mm-architects"
    assert "Acme Robotics" in messages[0]["text"] and "1 critical alert open" in messages[0]["text"]
    assert "Globex" not in messages[0]["text"]
    assert "/marketmap/clients/acme" in messages[0]["text"]
    # Same state the next day, and a retry of the same run: nothing sent.
    assert not send_digest("scheduled__d2", now=NOW + dt.timedelta(days=1), configs=_configs())[
        "#mm-architects"
    ]["sent"]
    assert not send_digest("scheduled__d2", now=NOW + dt.timedelta(days=1), configs=_configs())[
        "#mm-architects"
    ]["sent"]
    # The alert clears: the architects hear once that all is fine.
    with seeded.begin() as conn:
        conn.execute(t.alerts.update().values(status="resolved", resolved_at=NOW))
    assert send_digest("scheduled__d3", now=NOW + dt.timedelta(days=2), configs=_configs())["#mm-architects"][
        "sent"
    ]
    assert not send_digest("scheduled__d4", now=NOW + dt.timedelta(days=3), configs=_configs())[
        "#mm-architects"
    ]["sent"]
    last = json.loads(outbox_path("_portfolio").read_text().splitlines()[-1])
    assert "all 2 clients are fine" in last["text"]


def test_portfolio_dag_shape():
    from marketmap.orchestration.portfolio import build_portfolio_dag

    dag = build_portfolio_dag()
    assert dag.dag_id == "marketmap__portfolio" and [t.task_id for t in dag.tasks] == ["portfolio_digest"]
    assert dag.catchup is False and dag.default_args["owner"] and "pipeline:portfolio" in dag.tags


# --------------------------------------------------------------------------- the plugin's pages


@pytest.fixture()
def api(airflow_db, seeded):
    """Airflow's own api-server app (with our plugin mounted) and an admin token."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from marketmap.config import load_client
    from marketmap.reports import generate

    generate("executive", load_client("acme"), seeded, RUN_ID)
    generate("executive", load_client("globex"), seeded, RUN_ID)
    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    return client, token


def test_pages_need_an_airflow_login(api):
    client, _ = api
    r = client.get("/marketmap/portfolio", follow_redirects=False)
    assert r.status_code == 307 and "/auth/" in r.headers["location"] and "next=" in r.headers["location"]
    assert client.get("/marketmap/api/portfolio").status_code == 401
    assert (
        client.get("/marketmap/clients/acme/reports/x/executive.html", follow_redirects=False).status_code
        == 307
    )


def test_admin_sees_every_client_and_their_reports(api):
    client, token = api
    client.cookies.set("_token", token)
    page = client.get("/marketmap/portfolio")
    assert page.status_code == 200
    assert page.text.index("Acme Robotics") < page.text.index("Globex Logistics")  # attention first
    assert "1 critical alert open" in page.text
    rows = client.get("/marketmap/api/portfolio", headers={"Authorization": f"Bearer {token}"}).json()
    assert [r["client_id"] for r in rows] == ["acme", "globex"]
    detail = client.get("/marketmap/clients/acme")
    assert (
        "Alert history" in detail.text
        and "T3 wins more often than T1" in detail.text
        and "6% blank tier" in detail.text
    )
    link = "/marketmap/clients/acme/reports/manual__2026-03-02T10_00_00_00_00/executive.html"
    assert link in detail.text
    report = client.get(link)
    assert report.status_code == 200 and "Executive report" in report.text and "<svg" in report.text
    assert client.get(link.replace("executive.html", "executive__by_tier.csv")).text.startswith("tier,")
    assert client.get("/marketmap/clients/acme/reports/..%2F..%2F/warehouse.db").status_code == 404


@pytest.fixture()
def airflow_runs(api):
    """Real runs in Airflow's DB: a failed ``acme__drift`` (a step raised) and a successful
    ``acme__monthly`` that is then paused through Airflow's REST API, as the UI's toggle does."""
    from airflow.api.common.delete_dag import delete_dag
    from airflow.sdk import DAG, task

    client, token = api
    with DAG("acme__drift", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) as drift:

        @task
        def check_drift():
            raise RuntimeError("the CRM did not answer")

        @task
        def report_drift():
            return "never reached"

        check_drift() >> report_drift()

    with DAG("acme__monthly", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) as monthly:

        @task
        def refresh():
            return "ok"

        refresh()

    runs = {"drift": drift.test(), "monthly": monthly.test()}
    auth = {"Authorization": f"Bearer {token}"}
    # DAGs are paused at creation: every acme DAG Airflow knows is unpaused, then monthly paused.
    before = client.get(
        "/api/v2/dags", params={"dag_id_pattern": "acme__", "limit": 100}, headers=auth
    ).json()["dags"]
    for dag in before:
        want = dag["dag_id"] == "acme__monthly"
        answer = client.patch(f"/api/v2/dags/{dag['dag_id']}", json={"is_paused": want}, headers=auth)
        assert answer.status_code == 200 and answer.json()["is_paused"] is want, answer.text
    yield runs
    for dag in before:  # the session's other tests share Airflow's DB: leave it as it was
        if dag["dag_id"] in ("acme__drift", "acme__monthly"):
            delete_dag(dag["dag_id"], keep_records_in_log=False)
        else:
            client.patch(f"/api/v2/dags/{dag['dag_id']}", json={"is_paused": dag["is_paused"]}, headers=auth)


def test_the_page_shows_paused_failed_and_never_run_pipelines(api, airflow_runs, seeded):
    from marketmap.portfolio.data import readable_run
    from marketmap.warehouse import schema as t

    client, token = api
    failed = airflow_runs["drift"]
    assert str(failed.state).endswith("failed") and str(airflow_runs["monthly"].state).endswith("success")
    with seeded.begin() as conn:
        conn.execute(t.review_queue.insert(), [
            {"client_id": "acme", "run_id": "r", "kind": "duplicate_account", "left_key": f"a{i}", "right_key": f"b{i}",
             "status": "open"} for i in range(2)
        ])  # fmt: skip
    client.cookies.set("_token", token)
    acme = client.get("/marketmap/api/portfolio").json()[0]
    assert acme["client_id"] == "acme" and acme["paused"] == ["monthly"] and acme["review_queue"] == 2
    assert (
        "1 maintenance pipeline paused in Airflow (monthly): it does not run on schedule" in acme["attention"]
    )
    assert "1 failed run (drift)" in acme["attention"]
    # March's build has been followed by quarters of schedule: what never ran is named with its due date.
    never = [
        a for a in acme["attention"] if a.startswith("3 maintenance pipelines never ran although scheduled: ")
    ]
    assert len(never) == 1 and all(p in never[0] for p in ("quarterly_personas", "valuation", "territories"))
    assert "monthly (due" not in never[0] and "drift (due" not in never[0]
    assert "quarterly_personas (due since 2026-04-02)" in never[0]  # the first one after the build
    (run,) = acme["failed_runs"]
    from marketmap.orchestration.alerting import airflow_base_url

    # absolute when Airflow's [api] base_url is set (as `make test` and `make ui` do), else relative
    run_link = f"{airflow_base_url() or ''}/dags/acme__drift/runs/{quote(failed.run_id, safe='')}"
    assert run["links"] == {"run": run_link, "log": run_link + "/tasks/check_drift"}
    assert [tl["task_id"] for tl in run["task_links"]] == [
        "check_drift",
        "report_drift",
    ]  # failed, then held up
    label = readable_run(failed.run_id, dt.UTC)["label"]
    assert run["readable"]["label"] == label and label.endswith(" · manual") and "__" not in label

    page = client.get("/marketmap/portfolio").text
    acme_row = page[page.index('data-client="acme"') : page.index('data-client="globex"')]
    assert f'href="{run_link}"' in acme_row and f'href="{run_link}/tasks/check_drift"' in acme_row
    assert "paused</span> monthly" in acme_row and "2 open" in acme_row and "OK" not in acme_row
    assert failed.run_id not in page  # run ids are read as dates

    detail = client.get("/marketmap/clients/acme").text
    assert f'<a href="{run_link}/tasks/check_drift">check_drift — log</a>' in detail
    assert f">{label}</a>" in detail
    assert "<b>2</b> open items" in detail
    assert 'data-pipeline="monthly"' in detail and "does not run on schedule" in detail
    assert "never run</span> due since" in detail


def test_the_client_page_lists_every_report_of_every_run(api, seeded):
    from marketmap.config import load_client
    from marketmap.reports import generate

    client, token = api
    second = "scheduled__2026-04-01T06:13:00+00:00"
    generate("executive", load_client("acme"), seeded, second)
    client.cookies.set("_token", token)
    detail = client.get("/marketmap/clients/acme").text
    table = detail[
        detail.index('<table id="reports">') : detail.index("</table>", detail.index('<table id="reports">'))
    ]
    assert table.count('class="run"') == 2  # one group per run, newest first
    assert table.index("2026-04-01 06:13 UTC · scheduled") < table.index("2026-03-02 10:00 UTC · manual")
    for run in ("manual__2026-03-02T10_00_00_00_00", "scheduled__2026-04-01T06_13_00_00_00"):
        assert f"/marketmap/clients/acme/reports/{run}/executive.html" in table
        assert client.get(f"/marketmap/clients/acme/reports/{run}/executive.html").status_code == 200


def test_the_nav_entry_is_registered(api):
    client, token = api
    plugins = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "marketmap_portfolio")
    assert ours["fastapi_apps"][0]["url_prefix"] == "/marketmap"
    assert (
        ours["external_views"][0]["href"] == "/marketmap/portfolio"
        and ours["external_views"][0]["destination"] == "nav"
    )


def test_a_user_only_sees_clients_whose_dags_they_may_read(api, monkeypatch):
    from airflow.api_fastapi.app import get_auth_manager

    client, token = api
    manager = get_auth_manager()
    monkeypatch.setattr(
        manager, "filter_authorized_dag_ids",
        lambda *, dag_ids, user, method="GET", team_name=None: {d for d in dag_ids if d.startswith("acme__")},
    )  # fmt: skip
    client.cookies.set("_token", token)
    page = client.get("/marketmap/portfolio").text
    assert "Acme Robotics" in page and "Globex" not in page
    assert [r["client_id"] for r in client.get("/marketmap/api/portfolio").json()] == ["acme"]
    assert client.get("/marketmap/clients/globex").status_code == 404
    link = "/marketmap/clients/globex/reports/manual__2026-03-02T10_00_00_00_00/executive.html"
    assert client.get(link).status_code == 404


def test_clay_callback_is_served_by_the_plugin_app(fixture_clients, mm_home, monkeypatch):
    """The plugin app also takes Clay's callbacks: no Airflow login, a shared secret, JSON errors."""
    from fastapi.testclient import TestClient

    from marketmap.orchestration.portfolio_app import create_app

    client = TestClient(create_app())
    url = "/api/clay/sample/rows"
    monkeypatch.delenv("MARKETMAP_CLAY_CALLBACK_SECRET", raising=False)
    assert client.post(url, json={"rows": []}).status_code == 503  # fail closed without a secret
    monkeypatch.setenv("MARKETMAP_CLAY_CALLBACK_SECRET", "s3cret-for-tests")
    refused = client.post(
        url, json={"rows": []}, headers={"X-Marketmap-Secret": "wrong"}, follow_redirects=False
    )
    assert refused.status_code == 401 and refused.json()["detail"] == "bad or missing callback secret"
    ok = client.post(url, json={"rows": []}, headers={"X-Marketmap-Secret": "s3cret-for-tests"})
    assert ok.status_code == 200, ok.text


@pytest.mark.slow
def test_portfolio_dag_runs_through_airflow(airflow_db, seeded, mm_home):
    """A dag.test() smoke run of marketmap__portfolio: the digest goes out once, a re-run sends nothing."""
    from marketmap.alerts.delivery import outbox_path
    from marketmap.orchestration.portfolio import build_portfolio_dag

    dag = build_portfolio_dag()
    for task in dag.tasks:
        task.retries = 0
    first = dag.test()
    assert str(first.state).endswith("success"), first.state
    sent = outbox_path("_portfolio").read_text().splitlines()
    assert len(sent) == 1 and "Acme Robotics" in json.loads(sent[0])["text"]
    assert str(dag.test().state).endswith("success")
    assert outbox_path("_portfolio").read_text().splitlines() == sent  # nothing changed, nothing sent


def test_tier_counts_come_from_the_status_row_of_the_current_scores(seeded):
    """The portfolio reads one small row per client (written after every run that published scores),
    not a count over the client's whole score table; a row of older scores is not trusted."""
    from sqlalchemy import select, update

    from marketmap.portfolio.data import count_tiers, portfolio, refresh_status
    from marketmap.reports.data import current_version
    from marketmap.warehouse import get_engine
    from marketmap.warehouse import schema as t

    configs = {c.client_id: c for c in _configs()}
    acme = configs["acme"]
    live = count_tiers(acme, seeded, current_version(acme, seeded))
    assert refresh_status(acme, seeded, "r1", NOW) == live and sum(live.values()) == 120
    with seeded.connect() as conn:
        stored = conn.execute(select(t.client_status).where(t.client_status.c.client_id == "acme")).one()
    assert stored.run_id == "r1" and stored.tiers == live

    def tiers():
        rows = portfolio(list(configs.values()), lambda cfg: get_engine(), now=NOW)
        return next(r for r in rows if r["client_id"] == "acme")["tiers"]

    assert tiers() == {k: live[k] for k in ("T1", "T2", "T3", "OUT") if k in live}
    # The page shows the stored row: proven by a row that says something else for the same version.
    with seeded.begin() as conn:
        conn.execute(update(t.client_status).values(tiers={"T1": 1, "T2": 2, "T3": 3}))
    assert tiers() == {"T1": 1, "T2": 2, "T3": 3}
    # Scores of another rubric version: the row is stale, the page counts live again.
    with seeded.begin() as conn:
        conn.execute(update(t.client_status).values(rubric_version="older#0000"))
    assert tiers() == {k: live[k] for k in ("T1", "T2", "T3", "OUT") if k in live}


def test_page_work_runs_off_the_event_loop(api, monkeypatch):
    """Warehouse, config and Airflow-DB work of every page runs in a worker thread: a slow client
    never holds the api-server's event loop (and with it every other request)."""
    import threading

    from marketmap.orchestration import portfolio_app
    from marketmap.portfolio import data

    client, token = api
    seen: dict[str, str] = {}
    rows, status = portfolio_app._rows, data.client_status

    def rows_spy(user):
        seen["portfolio"] = threading.current_thread().name
        return rows(user)

    def status_spy(*args, **kwargs):
        seen["client"] = threading.current_thread().name
        return status(*args, **kwargs)

    monkeypatch.setattr(portfolio_app, "_rows", rows_spy)
    monkeypatch.setattr(data, "client_status", status_spy)
    headers = {"Authorization": f"Bearer {token}"}
    loop_thread = {}

    @client.app.middleware("http")
    async def where_the_loop_runs(request, call_next):  # the thread the event loop runs in
        loop_thread["name"] = threading.current_thread().name
        return await call_next(request)

    assert client.get("/marketmap/portfolio", headers=headers).status_code == 200
    assert client.get("/marketmap/api/portfolio", headers=headers).status_code == 200
    assert client.get("/marketmap/clients/acme", headers=headers).status_code == 200
    assert set(seen) == {"portfolio", "client"}
    assert loop_thread["name"] not in seen.values(), (loop_thread, seen)
