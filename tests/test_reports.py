"""Reports: charts, each report kind on a known warehouse, empty warehouses, storage and links."""

from __future__ import annotations

import csv
import re

import pytest
from report_support import CLIENTS_DIR, RUN_ID, seed_client


@pytest.fixture()
def seeded(mm_home, monkeypatch):
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    engine = get_engine()
    return engine, seed_client(engine, "acme")


def _svg_texts(svg: str) -> str:
    return " ".join(re.findall(r">([^<>]+)</text>", svg))


@pytest.mark.parametrize("n", [3, 50])
def test_bar_chart_has_title_axes_and_units_and_grows_with_bars(n):
    from marketmap.reports import charts

    labels = [f"Rep {i}" for i in range(n)]
    svg = charts.bar(labels, [1000.0 * (i + 1) for i in range(n)], title="Potential ARR by rep",
                     xlabel="potential ARR ($)", ylabel="rep", unit="money")  # fmt: skip
    text = _svg_texts(svg)
    assert svg.startswith("<svg")
    assert "Potential ARR by rep" in text and "potential ARR ($)" in text and "rep" in text
    assert "$" in text  # the value axis is written as money
    assert "Rep 0" in text and f"Rep {n - 1}" in text  # every label legible, none dropped
    height = float(re.search(r'height="([\d.]+)pt"', svg).group(1))
    assert (height > 400) == (n == 50)  # 50 bars get a taller (horizontal) chart


def test_charts_on_one_page_have_unique_ids():
    from marketmap.reports import charts

    a = charts.bar(["T1", "T2"], [1, 2], title="a", xlabel="x", ylabel="y")
    b = charts.bar(["T1", "T2"], [1, 2], title="a", xlabel="x", ylabel="y")
    ids = lambda s: set(re.findall(r'id="([^"]+)"', s))  # noqa: E731
    assert not ids(a) & ids(b)


def test_every_report_kind_renders_from_the_warehouse(seeded):
    from marketmap.reports import KINDS, generate

    engine, info = seeded
    cfg, steps = info["cfg"], info["steps"]
    tiers = steps["score"]["tiers"]
    for kind in KINDS:
        path = generate(kind, cfg, engine, RUN_ID)
        html = path.read_text(encoding="utf-8")
        assert path.parent.parts[-3:] == ("reports", "acme", "manual__2026-03-02T10_00_00_00_00")
        assert "<svg" in html, kind  # every report leads with pictures
        for external in (
            "<script",
            "<link",
            "src=",
            'href="http',
            "@import",
        ):  # self-contained, readable offline
            assert external not in html, (kind, external)
        assert "Acme Robotics" in html
        for csv_name in re.findall(r'href="([^"#]+\.csv)"', html):
            assert (path.parent / csv_name).is_file(), csv_name
    validation = (path.parent / "validation.html").read_text(encoding="utf-8")
    assert "Rows rejected" in validation and "NumberOfEmployees" in validation
    assert f"{tiers['core:T1']:,}" in validation
    with open(path.parent / "validation__tiers.csv", encoding="utf-8") as fh:
        rows = {r["tier"]: int(r["accounts"]) for r in csv.DictReader(fh)}
    assert rows["T1"] == tiers["core:T1"] and sum(rows.values()) == info["accounts"]
    assert "120 of 1,000 credits" in validation  # 60 lookups x 2 credits against the budget
    cockpit = (path.parent / "cockpit.html").read_text(encoding="utf-8")
    for rep in ("Ada Lovelace", "Grace Hopper", "Alan Turing"):
        assert rep in cockpit
    assert "highest: AE immediate outreach" in cockpit or "find a Tier-1 persona" in cockpit
    distribution = (path.parent / "distribution.html").read_text(encoding="utf-8")
    assert "Potential ARR by rep" in distribution and "Persona coverage by account tier" in distribution
    maintenance = (path.parent / "maintenance.html").read_text(encoding="utf-8")
    for anchor in ("backtest", "drift", "valuation", "territory"):
        assert f'id="{anchor}"' in maintenance


def test_empty_warehouse_gives_no_data_sections_not_a_crash(mm_home, monkeypatch):
    from marketmap.config import load_client
    from marketmap.reports import KINDS, generate
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    cfg = load_client("globex")
    for kind in KINDS:
        html = generate(kind, cfg, get_engine(), "manual__empty").read_text(encoding="utf-8")
        assert "No data yet" in html, kind


def test_report_rerun_overwrites_and_links_point_at_the_portfolio_app(seeded, monkeypatch):
    from marketmap.reports import generate
    from marketmap.reports.render import list_reports, report_url

    engine, info = seeded
    first = generate("executive", info["cfg"], engine, RUN_ID)
    again = generate("executive", info["cfg"], engine, RUN_ID)
    assert first == again and len(list_reports("acme")) == 1
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert report_url("acme", RUN_ID, "executive") == (
        "https://airflow.example.com/marketmap/clients/acme/reports/manual__2026-03-02T10_00_00_00_00/executive.html"
    )


def test_report_links_are_recorded_in_the_run_summary(seeded):
    from sqlalchemy import select

    from marketmap.orchestration.report_tasks import write_reports
    from marketmap.warehouse import schema as t

    engine, _ = seeded
    links = write_reports("acme", RUN_ID, ["validation", "cockpit"])
    assert links["validation"].endswith("/validation.html")
    with engine.connect() as conn:
        summary = conn.execute(select(t.runs.c.summary).where(t.runs.c.client_id == "acme")).scalar_one()
    assert summary["reports"] == links
    assert summary["steps"]["load"]["accounts_new"] == 120  # the rest of the summary is kept


def test_report_task_callables(seeded, monkeypatch):
    """The task callables the lead wires after the build's summary (context patched: dag.test()
    only runs DAGs from the dags folder)."""
    from marketmap.orchestration import report_tasks as rt
    from marketmap.reports.render import list_reports

    monkeypatch.setattr(rt, "get_current_context", lambda: {"run_id": RUN_ID})
    assert rt.validation_report.function("acme", None).endswith("/validation.html")
    assert set(rt.build_reports.function("acme")) == {"executive", "distribution", "cockpit"}
    link = rt.maintenance_report.function("acme", ["backtest", "territory"])
    assert link.endswith("/maintenance.html")
    assert {r["kind"] for r in list_reports("acme")} == {
        "validation",
        "executive",
        "distribution",
        "cockpit",
        "maintenance",
    }
