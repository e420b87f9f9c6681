"""CSV "CRM" for clients without an API: import-ready files per object in the run folder,
diffed against the previous export, idempotent when a task is retried."""

from __future__ import annotations

import csv

import pytest
from servers.world import client_cfg, engine, seed_accounts

from marketmap import crm
from marketmap.config import load_client
from marketmap.crm.plan import plan_push
from marketmap.settings import run_dir

PUSH = [
    {
        "object": "account",
        "mode": "upsert",
        "prevent_override_field": "Prevent_Override__c",
        "fields": [
            {
                "source": "tier",
                "crm_field": "Account_Tier__c",
                "picklist": {"T1": "Tier 1", "T2": "Tier 2", "T3": "Tier 3"},
            },
            {"source": "fit_score", "crm_field": "ICP_Fit_Score__c"},
            {"source": "valuation", "crm_field": "Account_Valuation__c", "policy": "if_blank"},
            {"source": "state", "crm_field": "BillingState"},
        ],
        "value_normalisation": {"BillingState": {"Calif.": "CA"}},
    }
]


def read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_push_writes_import_files_and_diffs_against_the_last_export(mm_home):
    cfg = client_cfg("csv", push=PUSH)
    eng = engine()
    seed_accounts(eng, [
        {"key": "acme.com", "crm_id": "001A", "tier": "T1", "score": 91.25, "valuation": 50000, "state": "Calif."},
        {"key": "beta.com", "crm_id": "001B", "tier": "T2", "score": 60, "prevent_override": True},
        {"key": "gamma.com", "crm_id": "001C", "tier": "T3", "score": 30},
        {"key": "newco.io", "name": "NewCo", "domain": "newco.io", "tier": "T2", "score": 55},
    ])  # fmt: skip
    ad = crm.adapter_for(cfg)
    plan = plan_push(cfg, eng, "run-1", ad, cfg.push[0])
    assert plan.summary()["updates"] == 2 and plan.summary()["creates"] == 1
    result = crm.execute_push(cfg, eng, "run-1", ad, plan)
    assert result.status == "success"
    out = run_dir(cfg.client_id, "run-1") / "crm_import"
    updates = read(out / "Account_update.csv")
    assert [r["Id"] for r in updates] == sorted(r["Id"] for r in updates)
    assert {r["Id"]: (r["Account_Tier__c"], r["ICP_Fit_Score__c"], r["BillingState"]) for r in updates} == {
        "001A": ("Tier 1", "91.25", "CA"),
        "001C": ("Tier 3", "30", ""),  # blank cell: leave the CRM value as it is
    }
    [new] = read(out / "Account_insert.csv")
    assert (new["MarketMap_Key"], new["Name"], new["Website"], new["Account_Tier__c"]) == (
        "newco.io",
        "NewCo",
        "newco.io",
        "Tier 2",
    )

    # the task is retried: same files, no row twice
    crm.execute_push(cfg, eng, "run-1", ad, plan)
    assert len(read(out / "Account_update.csv")) == 2 and len(read(out / "Account_insert.csv")) == 1

    # next run, nothing changed: no file at all; then one score changes: one row
    again = crm.execute_push(cfg, eng, "run-2", ad, plan_push(cfg, eng, "run-2", ad, cfg.push[0]))
    assert again.status == "nothing_to_do"
    assert not (run_dir(cfg.client_id, "run-2") / "crm_import").exists()
    seed_accounts(eng, [{"key": "gamma.com", "crm_id": "001C", "tier": "T2", "score": 52}])
    crm.execute_push(cfg, eng, "run-3", ad, plan_push(cfg, eng, "run-3", ad, cfg.push[0]))
    rows = read(run_dir(cfg.client_id, "run-3") / "crm_import" / "Account_update.csv")
    assert rows == [{"Id": "001C", "Account_Tier__c": "Tier 2", "ICP_Fit_Score__c": "52"}]

    report = crm.validate_after_push(cfg, eng, ad, "run-3")
    assert report["ok"] and report["counts"]["crm"] == "no CRM (CSV import files)"


def test_demo_client_mapping_passes_preflight(mm_home):
    cfg = load_client("demo")
    report = crm.preflight(cfg, crm.adapter_for(cfg))
    assert report.ok, report.problems


def test_a_push_bigger_than_one_in_list_books_every_record_once(mm_home, monkeypatch):
    """The push books its outcomes in slices of keys (a 1M-key IN list makes PostgreSQL plan for
    minutes): with slices of 3, 20 records are each logged and snapshotted exactly once."""
    from sqlalchemy import func, select

    from marketmap.crm import execute
    from marketmap.warehouse import schema as t

    monkeypatch.setattr(execute._parts, "__defaults__", (3,))  # slices of 3 keys
    cfg = client_cfg("csv", push=PUSH)
    eng = engine()
    seed_accounts(eng, [{"key": f"c{i:02d}.com", "crm_id": f"001{i:02d}", "tier": "T1", "score": 80 + i % 5}
                        for i in range(20)])  # fmt: skip
    ad = crm.adapter_for(cfg)
    result = crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))
    assert result.status == "success"
    crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))  # a retry
    with eng.connect() as conn:
        logged = conn.execute(select(t.push_log.c.record_key, func.count()).where(t.push_log.c.run_id == "run-1")
                              .group_by(t.push_log.c.record_key)).all()  # fmt: skip
        snapped = conn.execute(select(func.count()).select_from(t.crm_records)).scalar_one()
    assert len(logged) == 20 and {n for _, n in logged} == {1} and snapped == 20
    assert len(read(run_dir(cfg.client_id, "run-1") / "crm_import" / "Account_update.csv")) == 20
    again = crm.execute_push(cfg, eng, "run-2", ad, plan_push(cfg, eng, "run-2", ad, cfg.push[0]))
    assert again.status == "nothing_to_do"


def test_a_retried_push_rewrites_its_import_file_once_then_appends(mm_home, monkeypatch):
    """A push killed after writing a batch to the import file but before booking it is re-run by
    a new process: the records it wrote are written again in place (one rewrite of the file),
    the rest are appended, and the file ends with every record exactly once."""
    from marketmap.crm import csv_adapter, execute

    monkeypatch.setattr(csv_adapter.CsvAdapter, "batch_size", lambda self, op, total: 5)
    cfg = client_cfg("csv", push=PUSH)
    eng = engine()
    seed_accounts(eng, [{"key": f"c{i:02d}.com", "crm_id": f"001{i:02d}", "tier": "T1", "score": 80 + i % 5}
                        for i in range(20)])  # fmt: skip

    class Killed(BaseException):
        pass

    log = execute._Executor._log

    def killed_at_third_booking(self, phase, op, outcomes):
        self.booked_batches = getattr(self, "booked_batches", 0) + 1
        if self.booked_batches == 3:
            raise Killed
        return log(self, phase, op, outcomes)

    with monkeypatch.context() as m:
        m.setattr(execute._Executor, "_log", killed_at_third_booking)
        ad = crm.adapter_for(cfg)
        with pytest.raises(Killed):
            crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))
    path = run_dir(cfg.client_id, "run-1") / "crm_import" / "Account_update.csv"
    assert len(read(path)) == 15  # three batches in the file, two of them booked

    calls = []
    for name in ("_merge", "_append"):
        real = getattr(csv_adapter, name)
        monkeypatch.setattr(csv_adapter, name, lambda *a, _n=name, _f=real: calls.append(_n) or _f(*a))
    ad = crm.adapter_for(cfg)  # the retried task: a new adapter that never saw the file
    result = crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))
    assert result.status == "success" and result.succeeded == 10
    assert calls == ["_merge", "_append"]
    rows = read(path)
    assert sorted(r["Id"] for r in rows) == [f"001{i:02d}" for i in range(20)]


def test_a_field_only_later_records_write_is_in_the_import_file_from_its_first_batch(mm_home, monkeypatch):
    """The import file is headed with every field the push writes before its first batch: a field
    that only the last batch carries is appended with it, not merged into a rewrite of the whole
    file (at 1M records, every such batch rewrote everything written so far)."""
    from marketmap.crm import csv_adapter

    monkeypatch.setattr(csv_adapter.CsvAdapter, "batch_size", lambda self, op, total: 5)
    cfg = client_cfg("csv", push=PUSH)
    eng = engine()
    seed_accounts(eng, [{"key": f"c{i:02d}.com", "crm_id": f"001{i:02d}", "tier": "T1", "score": 80,
                         "state": "Calif." if i >= 17 else None, "valuation": 5000.0 if i == 12 else None}
                        for i in range(20)])  # fmt: skip
    calls = []
    for name in ("_merge", "_append"):
        real = getattr(csv_adapter, name)
        monkeypatch.setattr(csv_adapter, name, lambda *a, _n=name, _f=real: calls.append(_n) or _f(*a))
    ad = crm.adapter_for(cfg)
    result = crm.execute_push(cfg, eng, "run-1", ad, plan_push(cfg, eng, "run-1", ad, cfg.push[0]))
    assert result.status == "success" and result.succeeded == 20
    assert calls == ["_merge"] + ["_append"] * 3  # the first batch starts the file; none rewrites it
    rows = {r["Id"]: r for r in read(run_dir(cfg.client_id, "run-1") / "crm_import" / "Account_update.csv")}
    assert len(rows) == 20
    assert {"Account_Tier__c", "BillingState", "Account_Valuation__c"} <= set(rows["00100"])
    assert rows["00119"]["BillingState"] == "CA" and rows["00100"]["BillingState"] == ""
    assert rows["00112"]["Account_Valuation__c"] == "5000" and rows["00113"]["Account_Valuation__c"] == ""
