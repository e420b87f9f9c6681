"""Retention (issue 15): prune deletes exactly the history past its policy, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pendulum
import pytest
from sqlalchemy import create_engine, func, inspect, select

from marketmap.config import load_client
from marketmap.scoring.pipeline import persona_version, rubric_version
from marketmap.warehouse import migrate, staging, upsert
from marketmap.warehouse import schema as t
from marketmap.warehouse.retention import prune

CLIENTS = Path(__file__).parent / "fixtures" / "clients"
NOW = pendulum.datetime(2026, 12, 1, 6, 0, tz="Europe/Berlin")  # what Airflow passes
UTC_NOW = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)


def _days(n: float) -> dt.datetime:
    return UTC_NOW - dt.timedelta(days=n)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    else:
        eng = create_engine(request.getfixturevalue("pg_database"))
        with eng.begin() as conn:  # the session database is shared: start from empty tables
            for table in reversed(t.metadata.sorted_tables):
                if inspect(conn).has_table(table.name):
                    conn.execute(table.delete())
    migrate(eng)
    yield eng
    eng.dispose()


def _seed(eng, cfg, other: str = "other") -> None:
    cid, cur, pcur = cfg.client_id, rubric_version(cfg), persona_version(cfg)
    with eng.begin() as conn:
        # push log: old success (goes), recent skip (stays), old failure of a still-failing record (stays)
        log = [
            ("old-ok", "success", _days(91)),
            ("old-ok-2", "success", _days(200)),
            ("recent", "skipped", _days(89)),
            ("failing", "failed", _days(120)),
        ]
        rows = [{"client_id": c, "run_id": "r", "object": "account", "record_key": k, "crm_id": None,
                 "operation": "update", "fields_changed": None, "status": s, "error": None, "at": at,
                 "phase": None} for c in (cid, other) for k, s, at in log]  # fmt: skip
        conn.execute(t.push_log.insert(), rows)
        upsert(conn, t.crm_sync, [
            {"client_id": cid, "object": "account", "record_key": "failing", "crm_id": None, "pushed": None,
             "status": "failed", "failed": True, "error": "x", "run_id": "r", "updated_at": _days(120)},
            {"client_id": cid, "object": "account", "record_key": "old-ok", "crm_id": "1", "pushed": None,
             "status": "success", "failed": False, "error": None, "run_id": "r", "updated_at": _days(91)},
        ])  # fmt: skip
        # score versions: v1 (oldest) .. v4, plus the current one scored long ago (always kept)
        versions = [(cur, _days(400)), ("v1", _days(300)), ("v2", _days(200)), ("v3", _days(100)),
                    ("v4", _days(10)), ("v5", _days(1))]  # fmt: skip
        upsert(conn, t.account_scores, [
            {"client_id": c, "account_key": k, "product": "core", "rubric_version": v, "score": 50.0,
             "scored_at": at} for c in (cid, other) for v, at in versions for k in ("a.com", "b.com")
        ])  # fmt: skip
        upsert(conn, t.contact_scores, [
            {"client_id": c, "contact_key": "p1", "rubric_version": v, "scored_at": at}
            for c in (cid, other) for v, at in [(pcur, _days(50)), ("personas#old", _days(40)),
                                               ("personas#a", _days(30)), ("personas#b", _days(20)),
                                               ("personas#c", _days(5))]
        ])  # fmt: skip
        upsert(conn, t.enrichment_cache, [
            {"client_id": c, "provider": "apollo", "lookup_key": k, "fetched_at": at, "status": "hit",
             "response": {"n": 1}}
            for c in (cid, other) for k, at in [("stale", _days(181)), ("fresh", _days(179))]
        ])  # fmt: skip
        conn.execute(t.alert_events.insert(), [
            {"client_id": c, "fingerprint": "f", "run_id": "r", "event": "fired", "channel": None,
             "payload": None, "at": at} for c in (cid, other) for at in (_days(366), _days(364))
        ])  # fmt: skip
        # runs and their staged frames (written by the staging writer): a build that failed two days
        # ago (its frames go), one that failed an hour ago and one still running (theirs stay)
        upsert(conn, t.runs, [
            {"client_id": c, "run_id": r, "pipeline": "build", "started_at": at, "finished_at": end, "status": st}
            for c in (cid, other) for r, st, at, end in [("failed-old", "failed", _days(2.1), _days(2)),
                                                        ("failed-new", "failed", _days(0.1), _days(0.05)),
                                                        ("running", "running", _days(3), None)]
        ])  # fmt: skip
        parts = staging.encode(pd.DataFrame({"crm_id": ["001", "002"], "name": ["Acme", None]}))
        for c in (cid, other):
            for r in ("failed-old", "failed-new", "running"):
                staging.put(conn, c, r, "accounts", parts)


def _keys(eng, table, col, cid):
    with eng.connect() as conn:
        return sorted(set(conn.execute(select(table.c[col]).where(table.c.client_id == cid)).scalars()))


def test_prune_keeps_what_the_policy_keeps(engine):
    cfg = load_client("sample", CLIENTS)
    assert cfg.retention.push_log_days == 90 and cfg.retention.score_versions_kept == 3
    assert cfg.retention.alert_events_days == 365 and cfg.enrichment.refresh_days == 180
    _seed(engine, cfg)
    counts = prune(engine, cfg, NOW)
    cid = cfg.client_id
    assert counts == {"push_log": 2, "account_scores": 2 * 2, "contact_scores": 1, "enrichment_cache": 1,
                      "staged_frames": 1, "alert_events": 1}  # fmt: skip
    assert _keys(engine, t.staged_frames, "run_id", cid) == ["failed-new", "running"]
    assert _keys(engine, t.push_log, "record_key", cid) == ["failing", "recent"]
    assert _keys(engine, t.account_scores, "rubric_version", cid) == sorted(
        [rubric_version(cfg), "v3", "v4", "v5"]
    )
    assert _keys(engine, t.contact_scores, "rubric_version", cid) == sorted(
        [persona_version(cfg), "personas#a", "personas#b", "personas#c"]
    )
    assert _keys(engine, t.enrichment_cache, "lookup_key", cid) == ["fresh"]
    with engine.connect() as conn:
        ats = (
            conn.execute(select(t.alert_events.c.at).where(t.alert_events.c.client_id == cid)).scalars().all()
        )
        # another client's history is not touched
        for table in (t.push_log, t.account_scores, t.contact_scores, t.enrichment_cache, t.alert_events,
                      t.staged_frames):
            n = conn.execute(
                select(func.count()).select_from(table).where(table.c.client_id == "other")
            ).scalar()
            assert n == {"push_log": 4, "account_scores": 12, "contact_scores": 5, "enrichment_cache": 2,
                         "alert_events": 2, "staged_frames": 3}[table.name]  # fmt: skip
    assert len(ats) == 1
    assert prune(engine, cfg, NOW) == dict.fromkeys(counts, 0)  # a re-run deletes nothing more


def test_retention_is_configurable_per_client(engine):
    base = load_client("sample", CLIENTS)
    data = base.model_dump(mode="json", exclude_none=True)
    data["retention"] = {"push_log_days": 365, "score_versions_kept": 1, "cache_days": 400,
                         "alert_events_days": 30}  # fmt: skip
    cfg = type(base).model_validate(data)
    _seed(engine, cfg)
    counts = prune(engine, cfg, NOW)
    # only the current version and the newest one survive
    assert counts == {"push_log": 0, "account_scores": 2 * 4, "contact_scores": 3, "enrichment_cache": 0,
                      "staged_frames": 1, "alert_events": 2}  # fmt: skip
    assert _keys(engine, t.account_scores, "rubric_version", cfg.client_id) == sorted(
        [rubric_version(cfg), "v5"]
    )


def test_prune_needs_an_aware_clock(engine):
    with pytest.raises(ValueError):
        prune(engine, load_client("sample", CLIENTS), dt.datetime(2026, 12, 1))


@pytest.mark.postgres
def test_growing_ids_are_64_bit_on_postgres(pg_database):
    eng = create_engine(pg_database)
    migrate(eng)
    cols = {(tb, c["name"]): str(c["type"]) for tb in ("push_log", "alert_events", "credit_ledger",
            "territory_assignments", "clay_rows") for c in inspect(eng).get_columns(tb)}  # fmt: skip
    assert cols[("push_log", "entry_id")] == "BIGINT"
    assert cols[("alert_events", "event_id")] == "BIGINT"
    assert cols[("credit_ledger", "entry_id")] == "BIGINT"
    assert cols[("territory_assignments", "entry_id")] == "BIGINT"
    assert cols[("clay_rows", "entry_id")] == "BIGINT"
    with eng.begin() as conn:  # past 2**31: a 32-bit id would overflow here
        conn.execute(t.alert_events.insert(), [{"event_id": 2**31 + 5, "client_id": "c", "fingerprint": "f",
                                                "event": "fired", "at": UTC_NOW}])  # fmt: skip
    eng.dispose()


def test_sqlite_keeps_rowid_autoincrement(tmp_path):
    eng = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(eng)
    with eng.begin() as conn:
        ids = [conn.execute(t.alert_events.insert().values(client_id="c", fingerprint="f", event="fired",
                                                           at=UTC_NOW)).inserted_primary_key[0] for _ in range(2)]  # fmt: skip
    assert ids == [1, 2]


def test_monthly_dag_prunes_after_the_audit(fixture_clients):
    from marketmap.orchestration.maintenance import monthly_dag

    m = monthly_dag(load_client("sample"))
    prune_task = m.get_task("prune_history")
    assert prune_task.upstream_task_ids == {"data_quality_audit"}
    assert "crm_validate" in m.get_task("data_quality_audit").upstream_task_ids  # after the push
    assert prune_task.execution_timeout is not None
