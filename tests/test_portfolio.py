"""Portfolio: status rows, attention order, the digest DAG, and the plugin's pages with Airflow auth."""

from __future__ import annotations

import datetime as dt
import json

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
    return engine


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

    from marketmap.portfolio.app import create_app

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
