"""The ICP data-review preview: candidate rubrics, tier moves, read-only, CLI."""

from __future__ import annotations

import datetime as dt

import pytest
from report_support import CANDIDATE, CLIENTS_DIR, RUN_DATE, seed_client


@pytest.fixture()
def seeded(mm_home, monkeypatch):
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    engine = get_engine()
    return engine, seed_client(engine, "acme")


def _counts(engine) -> dict:
    from sqlalchemy import func, select

    from marketmap.warehouse import schema as t

    with engine.connect() as conn:
        return {
            tbl.name: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
            for tbl in t.metadata.sorted_tables
        }


def test_candidate_is_merged_over_the_client_config(seeded):
    from marketmap.reports.preview import load_candidate

    _, info = seeded
    cfg = info["cfg"]
    cand = load_candidate(cfg, CANDIDATE)
    assert cand.icp.version == "v2-candidate" and cand.icp.rubrics[0].thresholds.T1 == 70
    assert cand.valuation == cfg.valuation and cand.territories == cfg.territories  # the rest is the client's


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("icp: {version: x, rubrics: []}\ncolour: red\n", "colour", "may only set icp and valuation"),
        (
            "valuation: {methods: [headcount], seat_price: 1, penetration: 0.1}\n",
            "icp",
            "required key is missing",
        ),
        (
            CANDIDATE.read_text().replace("T1: 70, T2: 45", "T1: 40, T2: 45"),
            "icp.rubrics[0].thresholds",
            "T1 > T2 > T3",
        ),
    ],
)
def test_candidate_errors_name_the_file_and_key(seeded, tmp_path, text, key, message):
    from marketmap.config import ConfigError
    from marketmap.reports.preview import load_candidate

    path = tmp_path / "candidate.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_candidate(seeded[1]["cfg"], path)
    assert any(f == str(path) and k == key and message in m for f, k, m in e.value.problems), e.value.problems


def test_preview_compares_rubrics_without_writing_anything(seeded):
    from marketmap.reports.preview import load_candidate, preview

    engine, info = seeded
    cfg = info["cfg"]
    before = _counts(engine)
    p = preview(cfg, engine, load_candidate(cfg, CANDIDATE), RUN_DATE)
    assert _counts(engine) == before  # nothing written to the warehouse
    # The current rubric scores exactly what the build stored.
    stored = {k.split(":")[1]: v for k, v in info["steps"]["score"]["tiers"].items()}
    assert {t: n for t, n in p["current"]["counts"].items() if n} == stored
    mv = p["moves"]
    matrix_total = sum(sum(row.values()) for row in mv["matrix"].values())
    diagonal = sum(mv["matrix"][t][t] for t in mv["matrix"])
    assert (
        matrix_total == info["accounts"] and mv["moved"] == matrix_total - diagonal == mv["up"] + mv["down"]
    )
    assert sum(mv["matrix"][t]["T1"] for t in mv["matrix"]) == p["candidate"]["counts"]["T1"]
    biggest = mv["biggest"][0]
    assert biggest["tier_current"] != biggest["tier_candidate"] and biggest["name"]
    assert p["current"]["backtest"]["status"] == "ok" and p["candidate"]["qa"]["gates"]
    assert set(p["thresholds"]["thresholds"]) == {"T1", "T2", "T3"}
    assert p["approach"]["approach"] == "T1 only"  # 3 reps: a hard constraint in the decision table


def test_preview_of_an_empty_warehouse(mm_home, monkeypatch):
    from marketmap.config import load_client
    from marketmap.reports.preview import build_report, format_preview, preview
    from marketmap.reports.render import render
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    p = preview(load_client("globex"), get_engine(), None, dt.date(2026, 3, 2))
    assert "no accounts in the warehouse" in format_preview(p)
    assert "No data yet" in render(build_report(p, "preview-x"))


def test_cli_preview_prints_and_writes_the_html_report(seeded, tmp_path, capsys):
    from marketmap.cli import main

    out = tmp_path / "review"
    assert main(["preview", "--client", "acme", "--rubric", str(CANDIDATE), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "Tier moves:" in text and "Suggested thresholds" in text and "Recommended approach: T1 only" in text
    )
    html = (out / "preview.html").read_text(encoding="utf-8")
    assert "Tier moves: current → candidate" in html and "Threshold suggestion" in html
    assert (out / "preview__biggest_moves.csv").is_file()


def test_cli_preview_reports_candidate_errors(seeded, tmp_path, capsys):
    from marketmap.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("icp: {version: x, rubrics: [{vectors: []}]}\n")
    assert main(["preview", "--client", "acme", "--rubric", str(bad)]) == 1
    assert f"{bad}: icp.rubrics[0].vectors:" in capsys.readouterr().err
