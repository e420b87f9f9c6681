"""Extract from the CRM into the warehouse: full (initial build) or incremental (maintenance).

Records are read through the adapter (SOQL / Bulk 2.0 queries, HubSpot pages or a
last-modified search window), written to ``<run folder>/crm_extract/<object>.csv`` (the
raw copy, for audits) and read back with the same reader as CRM export files — so API
and file extracts are typed, validated and rejected row by row identically. The staged
records then go through the usual normalise/dedupe/load steps, and the CRM snapshot
(``crm_records``) is refreshed for the push diff. Owners (reps) are upserted too.
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, text

from marketmap.config import ClientConfig
from marketmap.crm import snapshot
from marketmap.crm.base import CANONICAL, CrmAdapter
from marketmap.crm.mapping import crm_format, identity_fields
from marketmap.ingest import pipeline
from marketmap.ingest.reader import read_export
from marketmap.settings import run_dir
from marketmap.warehouse import schema as t
from marketmap.warehouse import staging, upsert

OBJECTS = ("account", "contact", "opportunity")


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    ts = snapshot.parse_ts(value)
    if ts is None:
        raise ValueError(f"not a date-time: {value!r}")
    return ts


def _write_csv(path, fields: list[str], records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow(
                {
                    k: "" if v is None else ("true" if v is True else "false" if v is False else v)
                    for k, v in r.items()
                }
            )


def extract(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    adapter: CrmAdapter,
    since: Any = None,
    until: Any = None,
    *,
    load: bool = True,
    objects: tuple[str, ...] = OBJECTS,
) -> dict:
    """Pull CRM records into the warehouse; return counts per object.

    ``since``/``until`` (the DAG run's data interval) make it incremental: only records
    modified in [since, until). Without them the extract is full, and CRM records that
    no longer exist leave the snapshot. ``load=False`` only stages the records for the
    build DAG's own normalise/dedupe and load tasks; ``load=True`` runs those steps too.
    A CSV client's "extract" is its export files.
    """
    cid = cfg.client_id
    since_ts, until_ts = _utc(since), _utc(until)
    incremental = since_ts is not None or until_ts is not None
    if not adapter.has_remote:
        # a monthly re-read of the whole export deduplicates and loads only what changed
        objects_read = pipeline.extract_exports(cfg, run_id, engine, reread_changed=incremental)
        summary: dict[str, Any] = {"mode": "files", "objects": objects_read}
        if load:
            summary["dedupe"] = pipeline.normalise_and_dedupe(cfg, run_id, engine)
            summary["load"] = pipeline.load_warehouse(cfg, run_id, engine)
        return summary

    started = snapshot.now()
    out_dir = run_dir(cid, run_id) / "crm_extract"
    fmt = crm_format(cfg)
    exp = cfg.crm.export
    overrides = {
        "account": exp.account_columns,
        "contact": exp.contact_columns,
        "opportunity": exp.opportunity_columns,
    }
    summary = {
        "mode": "incremental" if incremental else "full",
        "since": since_ts.isoformat() if since_ts else None,
        "until": until_ts.isoformat() if until_ts else None,
        "objects": {},
    }
    rejected_rows, warnings = [], []
    for obj in objects:
        id_field = adapter.id_field(obj)
        if obj == "opportunity":
            fields = list(dict.fromkeys([id_field, *identity_fields(cfg, obj).values()]))
        else:
            fields = snapshot.read_fields(cfg, obj, id_field)
        # custom fields (config custom_fields.<object>): their CRM field is read as well
        custom = cfg.custom_fields.specs(CANONICAL[obj], overrides[obj], crm=True)
        fields = list(dict.fromkeys([*fields, *(c.column for c in custom)]))
        records = list(adapter.extract(obj, fields, since_ts, until_ts))
        path = out_dir / f"{obj}.csv"
        header = list(dict.fromkeys(fields + [k for r in records[:1] for k in r]))
        _write_csv(path, header, records)
        staged = 0
        if records:
            res = read_export(
                path, CANONICAL[obj], fmt, overrides[obj], "utf-8", pipeline.read_options(cfg), custom
            )
            staging.stage(engine, cid, run_id, CANONICAL[obj], res.frame)
            staged = len(res.frame)
            rejected_rows += [{"client_id": cid, "run_id": run_id, **r.__dict__} for r in res.rejected]
            warnings += res.warnings
        else:
            staging.stage(engine, cid, run_id, CANONICAL[obj], pd.DataFrame())
        if obj in ("account", "contact"):
            rows = snapshot.snapshot_rows(
                cfg, obj, records, id_field=id_field, run_id=run_id, source="extract"
            )
            with engine.begin() as conn:
                for part in range(0, len(rows), 5000):
                    snapshot.save(conn, rows[part : part + 5000])
                if not incremental:
                    summary.setdefault("forgotten", {})[obj] = snapshot.forget_unseen(
                        conn, cid, obj, run_id, started
                    )
        summary["objects"][obj] = {"records": len(records), "staged": staged, "file": str(path)}
    with engine.begin() as conn:
        conn.execute(
            delete(t.rejected_rows).where(
                t.rejected_rows.c.client_id == cid, t.rejected_rows.c.run_id == run_id
            )
        )
        if rejected_rows:
            conn.execute(t.rejected_rows.insert(), rejected_rows)
        pipeline.save_warnings(conn, cid, run_id, "extract", warnings)
    owners = adapter.owners()
    if owners:
        with engine.begin() as conn:
            # only CRM facts: a rep's territory comes from the client config, never overwritten here
            upsert(conn, t.reps, [{"client_id": cid, **o} for o in owners])
    summary["owners"] = len(owners)
    summary["rejected"] = len(rejected_rows)
    if load:
        summary["dedupe"] = pipeline.normalise_and_dedupe(cfg, run_id, engine)
        summary["load"] = pipeline.load_warehouse(cfg, run_id, engine)
        if incremental:
            summary["relinked"] = relink(engine, cid)
    summary["calls"] = adapter.stats.as_dict()
    return summary


def relink(engine: Engine, client_id: str) -> int:
    """After an incremental load: contacts/opportunities of unchanged accounts get their account back.

    The load maps a contact's account CRM id through this run's accounts only, so a
    contact whose account didn't change in the window would lose its account_key.
    """
    n = 0
    with engine.begin() as conn:
        for table in ("contacts", "opportunities"):
            res = conn.execute(
                text(
                    f"UPDATE {table} SET account_key = (SELECT a.account_key FROM account_crm_ids a "
                    f"WHERE a.client_id = {table}.client_id AND a.crm_id = {table}.account_crm_id) "
                    f"WHERE client_id = :cid AND account_key IS NULL AND account_crm_id IS NOT NULL"
                ),
                {"cid": client_id},
            )
            n += res.rowcount or 0
    return n
