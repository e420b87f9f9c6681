"""Scoring steps over the warehouse: versioned scores, no rewrite when nothing changed, QA gate."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, update

from marketmap.analysis import qa
from marketmap.config import load_client
from marketmap.ingest import pipeline as ingest
from marketmap.scoring import pipeline as scoring
from marketmap.warehouse import get_engine
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import read_contact_scores

SAMPLE = Path(__file__).parent / "fixtures" / "salesforce_export"
RUN_DATE = dt.date(2026, 11, 1)


def _load(cfg, engine, run_id: str, inbox=None) -> dict:
    """The build's ingest steps, as its tasks run them: extract, dedupe, load."""
    ingest.start_run(engine, cfg.client_id, run_id, "build", None)
    ingest.extract_exports(cfg, run_id, engine, inbox=inbox)
    ingest.normalise_and_dedupe(cfg, run_id, engine)
    return ingest.load_warehouse(cfg, run_id, engine)


@pytest.fixture()
def loaded(fixture_clients, mm_home):
    inbox = mm_home / "inbox" / "sample"
    inbox.mkdir(parents=True)
    for f in SAMPLE.glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    cfg = load_client("sample")
    engine = get_engine()
    _load(cfg, engine, "r1")
    return cfg, engine


def test_scores_are_versioned_and_not_rewritten_when_unchanged(loaded):
    cfg, engine = loaded
    first = scoring.score_accounts(cfg, engine, "r1", RUN_DATE)
    assert first["accounts"] == 22 and first["written"] == 22
    assert first["rubric_version"].startswith("v1#")
    again = scoring.score_accounts(cfg, engine, "r2", RUN_DATE)
    assert again["written"] == 0
    with engine.connect() as conn:
        row = conn.execute(
            select(t.account_scores).where(t.account_scores.c.account_key == "walkerhensonandcompton.com")
        ).one()
    # Walker Henson and Compton: 577 employees (size band 200-1000: 50), Finance (50)
    assert (row.score, row.tier, row.run_id) == (100.0, "T1", "r1")
    assert row.points == {"size": 50.0, "industry": 50.0}

    # a changed rubric is a new version: old scores stay, new rows are added
    rubric = cfg.icp.rubrics[0].model_copy(
        update={"thresholds": cfg.icp.rubrics[0].thresholds.model_copy(update={"T1": 90})}
    )
    changed = cfg.model_copy(update={"icp": cfg.icp.model_copy(update={"rubrics": [rubric]})})
    third = scoring.score_accounts(changed, engine, "r3", RUN_DATE)
    assert third["rubric_version"] != first["rubric_version"] and third["written"] == 22
    with engine.connect() as conn:
        versions = conn.execute(
            select(func.count(func.distinct(t.account_scores.c.rubric_version)))
        ).scalar_one()
    assert versions == 2


def test_changed_data_rewrites_only_changed_accounts(loaded):
    cfg, engine = loaded
    scoring.score_accounts(cfg, engine, "r1", RUN_DATE)
    with engine.begin() as conn:
        conn.execute(
            update(t.accounts)
            .where(t.accounts.c.account_key == "walkerhensonandcompton.com")
            .values(industry="Retail")
        )
    result = scoring.score_accounts(cfg, engine, "r2", RUN_DATE)
    assert result["written"] == 1


def test_valuation_and_white_space(loaded):
    cfg, engine = loaded
    scoring.score_accounts(cfg, engine, "r1", RUN_DATE)
    result = scoring.value_accounts(cfg, engine, "r1")
    assert result["valued"] > 0
    with engine.connect() as conn:
        row = conn.execute(
            select(t.account_scores.c.valuation).where(
                t.account_scores.c.account_key == "walkerhensonandcompton.com"
            )
        ).scalar_one()
    assert row == round(577 * 100 * 0.1)  # headcount: employees × seat price × penetration
    assert scoring.value_accounts(cfg, engine, "r2")["written"] == 0


def test_contacts_scored_with_account_tier_and_priority(loaded):
    cfg, engine = loaded
    scoring.score_accounts(cfg, engine, "r1", RUN_DATE)
    result = scoring.score_contacts(cfg, engine, "r1", RUN_DATE)
    assert result["contacts"] == 102 and result["written"] == 102
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(t.contact_scores)
            .where(t.contact_scores.c.account_tier.isnot(None))
        ).scalar_one()
    assert n == 18  # only 18 contacts of the export belong to an account
    assert scoring.score_contacts(cfg, engine, "r2", RUN_DATE)["written"] == 0


def test_qa_gate_fails_with_numbers_unless_overridden(loaded):
    cfg, engine = loaded
    scoring.score_accounts(cfg, engine, "r1", RUN_DATE)
    # no valuation step: every in-scope account has a blank valuation
    with pytest.raises(
        qa.QAGateFailed, match=r"FAIL \[error\] no_blank_valuation: \d+ of \d+ in-scope accounts"
    ):
        qa.qa_gate(cfg, engine)
    result = qa.qa_gate(cfg, engine, override=True)
    assert result["overridden"] is True
    scoring.value_accounts(cfg, engine, "r1")
    # 22 accounts all owned by one user: below the 50-per-rep minimum, so that gate still fails
    with pytest.raises(qa.QAGateFailed, match="accounts_per_rep"):
        qa.qa_gate(cfg, engine)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_scoring_in_chunks_writes_what_one_pass_writes(tmp_path, fixture_clients, mm_home, request, backend):
    """score_accounts walks the accounts in key-ordered chunks (a server-side cursor on PostgreSQL):
    chunks of 5 give the same scores, tiers and counts as one pass, and a re-run writes nothing."""
    url = f"sqlite:///{tmp_path / 'w.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database")
    engine = get_engine(url)
    cfg = load_client("sample")
    shutil.copytree(SAMPLE, tmp_path / "inbox")
    _load(cfg, engine, "r1", tmp_path / "inbox")
    whole = scoring.score_accounts(cfg, engine, "r1", RUN_DATE)
    one_pass = scoring.read_scores(engine, cfg.client_id, whole["rubric_version"])
    with engine.begin() as conn:
        conn.execute(t.account_scores.delete().where(t.account_scores.c.client_id == cfg.client_id))
    chunked = scoring.score_accounts(cfg, engine, "r2", RUN_DATE, chunk=5)
    assert {k: v for k, v in chunked.items() if k != "written"} == {
        k: v for k, v in whole.items() if k != "written"
    }
    assert chunked["written"] == whole["accounts"] * len(cfg.icp.rubrics)
    again = scoring.read_scores(engine, cfg.client_id, whole["rubric_version"])
    cols = ["account_key", "product", "score", "tier", "explanation", "max_attainable"]
    pd.testing.assert_frame_equal(
        again[cols].sort_values(cols[:2]).reset_index(drop=True),
        one_pass[cols].sort_values(cols[:2]).reset_index(drop=True),
    )
    assert scoring.score_accounts(cfg, engine, "r3", RUN_DATE, chunk=5)["written"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_contacts_scored_in_chunks_as_in_one_pass(tmp_path, fixture_clients, mm_home, request, backend):
    """score_contacts walks the contacts in key-ordered chunks: chunks of 7 give the same rows,
    distribution and coverage (counts added up over chunks) as one pass; a re-run writes nothing."""
    url = f"sqlite:///{tmp_path / 'w.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database")
    engine = get_engine(url)
    cfg = load_client("sample")
    shutil.copytree(SAMPLE, tmp_path / "inbox")
    _load(cfg, engine, "r1", tmp_path / "inbox")
    scoring.score_accounts(cfg, engine, "r1", RUN_DATE)
    whole = scoring.score_contacts(cfg, engine, "r1", RUN_DATE)
    cols = ["contact_key", "account_key", "persona_score", "persona_tier", "seniority", "department",
            "title_match", "account_tier", "priority"]  # fmt: skip
    version = whole["persona_version"]
    one_pass = read_contact_scores(engine, cfg.client_id, version, cols)
    with engine.begin() as conn:
        conn.execute(t.contact_scores.delete().where(t.contact_scores.c.client_id == cfg.client_id))
    chunked = scoring.score_contacts(cfg, engine, "r2", RUN_DATE, chunk=7)
    assert chunked == whole
    assert whole["coverage"]["t1_accounts"] and whole["distribution"]["contacts"]  # something to compare
    again = read_contact_scores(engine, cfg.client_id, version, cols)
    pd.testing.assert_frame_equal(
        again.sort_values("contact_key").reset_index(drop=True),
        one_pass.sort_values("contact_key").reset_index(drop=True),
    )
    assert scoring.score_contacts(cfg, engine, "r3", RUN_DATE, chunk=7)["written"] == 0




@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_incremental_rescore_writes_what_a_full_rescore_would(mm_home, backend, request, monkeypatch):
    """The monthly re-score reads only accounts that changed, are new, or whose funding date crossed a
    recency window between the two run dates; a full re-score right after it has nothing left to write."""
    import csv

    from marketmap.demo.generate import generate_demo_export

    if backend == "postgresql":
        monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", request.getfixturevalue("pg_database"))
    # the demo client under an id of its own: the PostgreSQL database is shared by the session's tests
    cfg = load_client("demo").model_copy(update={"client_id": "incremental"})
    inbox = mm_home / "inbox" / cfg.client_id
    generate_demo_export(inbox, n_accounts=1500)
    engine = get_engine()
    _load(cfg, engine, "b1")
    first = scoring.score_accounts(cfg, engine, "b1", dt.date(2026, 6, 1), incremental=True)
    assert first["full_rescore"] == "no earlier complete scoring of this version"
    contacts = scoring.score_contacts(cfg, engine, "b1", dt.date(2026, 6, 1), incremental=True)
    assert contacts["full_rescore"] == "no earlier complete scoring of this version"

    # the next month's export: three accounts grew, the rest is byte for byte the same
    path = inbox / "Account.csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("NumberOfEmployees")
    edited = [r for r in rows[1:] if r[col].strip()][:3]
    for r in edited:
        r[col] = str(int(float(r[col])) * 3 + 1000)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows(rows)
    load = _load(cfg, engine, "m1")
    assert load["accounts_loaded"] - load["accounts_unchanged"] == 3

    later = dt.date(2026, 9, 1)  # three months on: some funding rounds left the 12- and 24-month windows
    monthly = scoring.score_accounts(cfg, engine, "m1", later, incremental=True)
    assert "full_rescore" not in monthly
    assert 3 < monthly["rescored"] < monthly["accounts"] / 5
    assert monthly["written"] > 3  # window crossings, not only the three edited accounts
    assert sum(monthly["tiers"].values()) == monthly["accounts"] * len(cfg.icp.rubrics)
    full = scoring.score_accounts(cfg, engine, "m1-full", later)
    assert full["written"] == 0 and full["tiers"] == monthly["tiers"]
    # contacts: those whose account's tier moved, or whose role start crossed 1 or 3 years, are read
    monthly_c = scoring.score_contacts(cfg, engine, "m1", later, incremental=True)
    assert "full_rescore" not in monthly_c
    assert 0 < monthly_c["written"] <= monthly_c["rescored"] < monthly_c["contacts"] / 2
    full_c = scoring.score_contacts(cfg, engine, "m1-full", later)
    assert full_c["written"] == 0
    for k in ("contacts", "distribution", "coverage"):
        assert full_c[k] == monthly_c[k], k

    # enrichment fills a blank industry (on the run's clock, which may lie in the past): re-scored
    from marketmap.enrichment.runner import Fill, apply_fills

    a = t.accounts.c
    with engine.begin() as conn:
        key = conn.execute(
            select(a.account_key).where(a.client_id == cfg.client_id, a.industry.is_(None)).limit(1)
        ).scalar_one()
        assert apply_fills(conn, cfg.client_id, "m2", [Fill(key, "industry", "Software", "sim")], dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == 1
    after_fill = scoring.score_accounts(cfg, engine, "m2", later, incremental=True)
    assert after_fill["rescored"] == 1 and after_fill["written"] == 1
    assert scoring.score_accounts(cfg, engine, "m2-full", later)["written"] == 0

    # a catch-up run for an earlier date than the last scoring re-scores everything
    earlier = scoring.score_accounts(cfg, engine, "c1", dt.date(2026, 7, 1), incremental=True)
    assert earlier["full_rescore"].startswith("the last scoring was for a later date")
