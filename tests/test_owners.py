"""Account owner history (the stale-account rule's clock) from the product's own loads: the first
load dates each owner from the account's CRM creation, a later load records exactly the owners
that changed, a re-run records nothing, and an owner changed back is a change again. On SQLite
and on PostgreSQL (where a first load's history goes in by COPY)."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from marketmap.analysis.owners import owner_since, record_owner_changes
from marketmap.config import load_client
from marketmap.demo.generate import generate_demo_export
from marketmap.ingest import pipeline as ingest
from marketmap.warehouse import get_engine

T0 = dt.datetime(2026, 6, 1, 6, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 7, 1, 6, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 8, 1, 6, tzinfo=dt.UTC)


def _load(cfg, eng, run_id: str) -> dict:
    ingest.start_run(eng, cfg.client_id, run_id, "build", None)
    ingest.extract_exports(cfg, run_id, eng)
    ingest.normalise_and_dedupe(cfg, run_id, eng)
    return ingest.load_warehouse(cfg, run_id, eng)


def _utc(value) -> dt.datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive UTC)."""
    value = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _set_owners(path, owners: dict[str, str]) -> None:
    """Edit the export in place as the CRM would: the listed accounts (by Id) get a new OwnerId."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    ident, owner = rows[0].index("Id"), rows[0].index("OwnerId")
    for row in rows[1:]:
        row[owner] = owners.get(row[ident], row[owner])
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        csv.writer(fh).writerows(rows)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_owner_history_records_first_owners_then_only_changes(mm_home, request, monkeypatch, backend):
    from sqlalchemy import select

    from marketmap.warehouse import schema as t

    if backend == "postgresql":
        monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", request.getfixturevalue("pg_database"))
    cfg = load_client("demo").model_copy(update={"client_id": f"owners_{backend}"})
    inbox = mm_home / "inbox" / cfg.client_id
    generate_demo_export(inbox, n_accounts=1200)
    eng = get_engine()
    _load(cfg, eng, "b1")
    a = t.accounts.c
    with eng.connect() as conn:
        accounts = conn.execute(
            select(a.account_key, a.crm_id, a.owner_id, a.crm_created).where(
                a.client_id == cfg.client_id, a.owner_id.is_not(None)
            )
        ).all()
    assert len(accounts) > 1000  # a first load's history is big enough for COPY on PostgreSQL

    first = record_owner_changes(eng, cfg.client_id, "b1", T0)
    assert first == {"first_seen": len(accounts), "changed": 0}
    since = owner_since(eng, cfg.client_id)
    for key, _, _, created in accounts:  # dated from the CRM creation, never after the run
        want = _utc(created) if created and _utc(created) <= T0 else T0
        assert _utc(since[key]) == want, key
    assert record_owner_changes(eng, cfg.client_id, "b1", T0) == {"first_seen": 0, "changed": 0}

    # a month later three accounts have a new owner in the CRM export
    moved = {crm_id: owner for _, crm_id, owner, _ in accounts[:3]}
    other = sorted({o for _, _, o, _ in accounts})
    _set_owners(inbox / "Account.csv", {i: next(o for o in other if o != old) for i, old in moved.items()})
    loaded = _load(cfg, eng, "m1")  # the re-load rewrites only the changed rows (source hashes)
    assert loaded["accounts_updated"] == 3 and loaded["accounts_new"] == 0
    assert loaded["accounts_unchanged"] == loaded["accounts_loaded"] - 3
    assert record_owner_changes(eng, cfg.client_id, "m1", T1) == {"first_seen": 0, "changed": 3}
    assert record_owner_changes(eng, cfg.client_id, "m1", T1) == {"first_seen": 0, "changed": 0}
    since = owner_since(eng, cfg.client_id)
    keys = {crm_id: key for key, crm_id, _, _ in accounts}
    assert {k for k, at in since.items() if _utc(at) == T1} == {keys[i] for i in moved}

    # one of them goes back to its first owner: that is a change too (the last row says otherwise)
    back = next(iter(moved))
    _set_owners(inbox / "Account.csv", {back: moved[back]})
    _load(cfg, eng, "m2")
    assert record_owner_changes(eng, cfg.client_id, "m2", T2) == {"first_seen": 0, "changed": 1}
    assert _utc(owner_since(eng, cfg.client_id)[keys[back]]) == T2
