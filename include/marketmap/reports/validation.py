"""Validation report after each load (SPEC §9): what the run loaded, how it tiered and valued
the accounts, what it spent, and which rows it rejected and why."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, select

from marketmap import units
from marketmap.config import ClientConfig
from marketmap.reports import charts
from marketmap.reports.data import TIER_ORDER, scored_accounts, tier_counts, valuation_by_tier
from marketmap.reports.render import Finding, Report, Section, Table, empty_section
from marketmap.warehouse import schema as t


def _run(engine: Engine, client_id: str, run_id: str):
    r = t.runs.c
    with engine.connect() as conn:
        return conn.execute(select(t.runs).where(r.client_id == client_id, r.run_id == run_id)).first()


def ingest_rows(ingest) -> list[dict]:
    """One row per object read, for both summary shapes: a CSV export's ``{object: {file, rows,
    rejected}}`` and a CRM extract's ``{"objects": {object: {records, staged, file}}, "owners": n,
    "rejected": n, "calls": {…}, …}`` (whose top-level scalars are not objects)."""
    if not isinstance(ingest, dict):
        return []
    per_object = ingest.get("objects") if isinstance(ingest.get("objects"), dict) else ingest
    rows = []
    for k, v in per_object.items():
        if not isinstance(v, dict) or k in ("calls", "forgotten", "dedupe", "load"):
            continue
        rows.append({"object": k, "file": v.get("file"), "rows read": v.get("rows", v.get("records")),
                     "rejected": v.get("rejected"), "values left blank": v.get("warnings", 0)})  # fmt: skip
    return rows


def load_section(steps: dict) -> Section:
    load = steps.get("load") or {}
    if not load:
        return empty_section("What this run loaded", "the run has no load step in its summary")
    counts = {
        "accounts created": load.get("accounts_new", 0),
        "accounts updated": load.get("accounts_updated", 0),
        "contacts loaded": load.get("contacts_loaded", 0),
        "opportunities loaded": load.get("opportunities_loaded", 0),
    }
    chart = charts.bar(list(counts), list(counts.values()), title="Records loaded by this run",
                       xlabel="record kind", ylabel="records", color=charts.PALETTE[0])  # fmt: skip
    frame = pd.DataFrame({"what": list(counts), "records": list(counts.values())})
    read = pd.DataFrame(ingest_rows(steps.get("ingest")))
    tables = [Table("loaded", "Records loaded", frame, {"records": "count"})]
    if not read.empty:
        tables.append(
            Table(
                "files",
                "Files read",
                read,
                {"rows read": "count", "rejected": "count", "values left blank": "count"},
            )
        )
    return Section("What this run loaded", charts=[chart], tables=tables)


def tier_section(frame: pd.DataFrame) -> Section:
    if frame.empty:
        return empty_section("Tier distribution", "no scored accounts in the warehouse")
    counts = tier_counts(frame["tier"])
    total = int(counts.sum())
    chart = charts.bar(counts.index.tolist(), counts.tolist(), title="Accounts by tier",
                       xlabel="tier", ylabel="accounts")  # fmt: skip
    in_scope = int(counts.drop("OUT", errors="ignore").sum())
    table = pd.DataFrame(
        {
            "tier": counts.index,
            "accounts": counts.values,
            "share of all accounts": counts.values / max(total, 1),
            "share of in-scope accounts": [
                c / in_scope if tier != "OUT" and in_scope else None
                for tier, c in zip(counts.index, counts.values, strict=True)
            ],
        }
    )
    return Section(
        "Tier distribution",
        lead=f"{total:,} accounts scored with rubric {frame.attrs.get('rubric_version', '?')}; "
        f"{in_scope:,} in scope (T1-T3). Shares are given of all accounts and of in-scope accounts.",
        charts=[chart],
        tables=[
            Table(
                "tiers",
                "Accounts by tier",
                table,
                {"accounts": "count", "share of all accounts": "pct", "share of in-scope accounts": "pct"},
            )
        ],
    )


def valuation_section(frame: pd.DataFrame) -> Section:
    if frame.empty or frame["valuation"].notna().sum() == 0:
        return empty_section("Valuation totals by tier", "no valued accounts in the warehouse")
    totals = valuation_by_tier(frame)
    counts = frame[frame["valuation"].notna()].groupby("tier").size().reindex(totals.index, fill_value=0)
    chart = charts.bar(totals.index.tolist(), totals.tolist(), title="Potential ARR by tier",
                       xlabel="tier", ylabel=f"potential ARR ({units.currency_label()})", unit="money")  # fmt: skip
    table = pd.DataFrame(
        {
            "tier": totals.index,
            "accounts valued": counts.values,
            "potential ARR": totals.values,
            "average per account": totals.values / counts.clip(lower=1).values,
        }
    )
    return Section(
        "Valuation totals by tier",
        lead=f"Total potential ARR {charts.money(float(totals.sum()))} across {int(counts.sum()):,} in-scope accounts.",
        charts=[chart],
        tables=[Table("valuation", "Potential ARR by tier", table,
                      {"accounts valued": "count", "potential ARR": "money", "average per account": "money"})],
    )  # fmt: skip


def credit_section(cfg: ClientConfig, engine: Engine, month: str) -> Section:
    from marketmap.enrichment.reports import burn_report

    burn = burn_report(cfg, engine, month)
    budget, spent = burn["budget"], burn["spent"]
    if not budget and not spent:
        return empty_section(
            "Credit spend vs budget", f"no credits spent in {month} and no monthly budget set"
        )
    chart = charts.bar(["spent", "pace by now", "monthly budget"], [spent, burn["pace_credits"], budget],
                       title=f"Enrichment credits, {month}", xlabel="", ylabel="credits")  # fmt: skip
    status = "fail" if burn["over_budget"] else ("warn" if burn["over_pace"] else "pass")
    findings = [Finding(f"{spent:,.0f} of {budget:,.0f} credits spent in {month} ({spent / budget:.0%} of the budget)"
                        if budget else f"{spent:,.0f} credits spent in {month}; no budget set", status)]  # fmt: skip
    by_provider = pd.DataFrame(
        [
            {"provider": k, "calls": v["calls"], "credits": v["credits"]}
            for k, v in sorted(burn["by_provider"].items())
        ]
    )
    tables = (
        [Table("credits", "Credits by provider", by_provider, {"calls": "count", "credits": "count"})]
        if not by_provider.empty
        else []
    )
    return Section("Credit spend vs budget", charts=[chart], findings=findings, tables=tables)


def rejected_section(engine: Engine, client_id: str, run_id: str) -> Section:
    rr = t.rejected_rows.c
    with engine.connect() as conn:
        rows = pd.read_sql(
            select(rr.file, rr.row_number, rr.field, rr.value, rr.reason)
            .where(rr.client_id == client_id, rr.run_id == run_id)
            .order_by(rr.file, rr.row_number),
            conn,
        )
    if rows.empty:
        return Section("Rows rejected", findings=[Finding("no row was rejected in this run", "pass")])
    rows["where"] = rows["file"].astype(str) + ": " + rows["field"].fillna("(row)").astype(str)
    by = (
        rows.groupby("where")
        .agg(rows=("reason", "size"), example=("reason", "first"))
        .sort_values("rows", ascending=False)
    )
    chart = charts.bar(by.index.tolist(), by["rows"].tolist(), title="Rejected rows by file and field",
                       xlabel="rows rejected", ylabel="file: field", horizontal=True, color="#c0392b")  # fmt: skip
    return Section(
        "Rows rejected",
        lead=f"{len(rows):,} rows were rejected; each row's file, row number and reason is listed (row 1 = header).",
        charts=[chart],
        tables=[
            Table("rejected_by_field", "Why rows were rejected", by.reset_index(), {"rows": "count"}),
            Table("rejected_rows", "Rejected rows", rows.drop(columns=["where"])),
        ],
    )


def warnings_section(engine: Engine, client_id: str, run_id: str) -> Section:
    """Kept rows whose optional value was left blank (a bad value is never guessed)."""
    w = t.ingest_warnings.c
    with engine.connect() as conn:
        rows = pd.read_sql(
            select(w.file, w.row_number, w.field, w.value, w.reason)
            .where(w.client_id == client_id, w.run_id == run_id)
            .order_by(w.file, w.row_number),
            conn,
        )
    if rows.empty:
        return Section("Values left blank", findings=[Finding("no value was left blank in this run", "pass")])
    by = (
        rows.assign(where=rows["file"].astype(str) + ": " + rows["field"].fillna("(row)").astype(str))
        .groupby("where")
        .agg(values=("reason", "size"), example=("reason", "first"))
        .sort_values("values", ascending=False)
    )
    return Section(
        "Values left blank",
        lead=f"{len(rows):,} values were not usable and were left blank; their rows were kept (row 1 = header).",
        tables=[
            Table("warnings_by_field", "Which values were left blank", by.reset_index(), {"values": "count"}),
            Table("warnings", "Values left blank", rows),
        ],
    )


def build(cfg: ClientConfig, engine: Engine, run_id: str, steps: dict | None = None) -> Report:
    """The validation report of one build run (steps default to the run's stored summary)."""
    run = _run(engine, cfg.client_id, run_id)
    summary = (run.summary if run is not None else None) or {}
    steps = steps or summary.get("steps") or {}
    started = run.started_at if run is not None and run.started_at else dt.datetime.now(dt.UTC)
    month = started.strftime("%Y-%m")
    frame = scored_accounts(cfg, engine)
    load = steps.get("load") or {}
    rejected = summary.get("rows_rejected")
    kpis = [
        ("accounts created", charts.count(load.get("accounts_new", 0))),
        ("accounts updated", charts.count(load.get("accounts_updated", 0))),
        ("contacts loaded", charts.count(load.get("contacts_loaded", 0))),
        ("rows rejected", charts.count(rejected) if rejected is not None else "–"),
    ]
    if not frame.empty:
        kpis.append(("T1 accounts", charts.count(int((frame["tier"] == "T1").sum()))))
        kpis.append(("potential ARR", charts.money(float(frame["valuation"].sum()))))
    sections = [
        load_section(steps),
        tier_section(frame),
        valuation_section(frame),
        credit_section(cfg, engine, month),
        rejected_section(engine, cfg.client_id, run_id),
        warnings_section(engine, cfg.client_id, run_id),
    ]
    qa = steps.get("qa") or {}
    if qa.get("gates"):
        findings = [
            Finding(
                f"{g['name']}: {g['message']}",
                "pass" if g["passed"] else ("fail" if g["severity"] == "error" else "warn"),
            )
            for g in qa["gates"]
        ]
        sections.append(Section("QA gates", findings=findings))
    return Report("validation", "Validation report", cfg.client_id, cfg.name, run_id, kpis=kpis, sections=sections,
                  subtitle=f"pipeline {run.pipeline if run is not None else 'build'}")  # fmt: skip


__all__ = ["build", "TIER_ORDER"]
