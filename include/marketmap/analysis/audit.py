"""Monthly data-quality audit and the optional stale-account round robin (SPEC §10).

Each check is a rule with one alert per condition (to RevOps):

* ``duplicates`` — accounts sharing a domain, contacts sharing an e-mail or a LinkedIn
  URL (in the warehouse, and in the last CRM snapshot when there is one);
* ``unnormalised_domains`` — stored domains that are not registrable domains;
* ``blank_tier_valuation`` — more than ``blank_tier_max_share`` (5%) of accounts without
  a tier, or of in-scope accounts without a valuation;
* ``picklist_rejected`` — records whose last push failed on a picklist value;
* ``untiered_new_accounts`` — accounts created in the CRM more than ``untiered_days``
  (30) days ago that still have no tier.

These are facts, not estimates: any count above its threshold is the condition.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
from sqlalchemy import Engine, select

from marketmap.alerts.rules import Alert
from marketmap.config import ClientConfig
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import read_frame

RULES = (
    "duplicates",
    "unnormalised_domains",
    "blank_tier_valuation",
    "picklist_rejected",
    "untiered_new_accounts",
)
PICKLIST = re.compile(r"picklist|restricted|INVALID_OPTION|not one of the allowed options", re.I)


def _dupes(values: pd.Series) -> pd.Series:
    v = values.dropna().astype(str).str.strip().str.lower()
    v = v[v != ""]
    counts = v.value_counts()
    return counts[counts > 1]


def _groups(rows: list[dict]) -> pd.Series:
    """``value -> records`` of a ``list_duplicate_*`` query, most shared first."""
    return pd.Series({r["value"]: int(r["records"]) for r in rows}, dtype="int64")


def _read(engine: Engine, table, client_id: str, cols: list[str]) -> pd.DataFrame:
    return read_frame(engine, select(*[table.c[c] for c in cols]).where(table.c.client_id == client_id))


def audit(
    cfg: ClientConfig, engine: Engine, as_of: dt.date, report: str | None = None
) -> tuple[list[Alert], dict]:
    """Run the audit; return ``(alerts, summary)`` (the summary lists examples for the CSV)."""
    from marketmap.ingest.domains import normalise_domains
    from marketmap.versions import rubric_version
    from marketmap.warehouse.queries import read_scores, sql

    cid, m = cfg.client_id, cfg.maintenance
    accounts = _read(engine, t.accounts, cid, ["account_key", "domain", "crm_created"])
    contacts = _read(engine, t.contacts, cid, ["linkedin_url"])
    primary = cfg.icp.rubrics[0].product
    version = rubric_version(cfg)
    scores = read_scores(engine, cid, version, primary, ["account_key", "tier"])
    alerts: list[Alert] = []

    def add(rule: str, title: str, numbers: dict, material: dict, severity: str = "warning") -> None:
        alerts.append(Alert(client_id=cid, rule=rule, role="revops", severity=severity, title=title,  # type: ignore[arg-type]
                            numbers=numbers, material=material, report=report,
                            confidence="exact: counted over every record in the warehouse"))  # fmt: skip

    # Counted in SQL (sql/audit/): the groups, not every row, come back.
    dup_domain = _groups(sql(engine, "audit/list_duplicate_account_domains", client_id=cid))
    dup_email = _groups(sql(engine, "audit/list_duplicate_contact_emails", client_id=cid))
    dup_linkedin = _dupes(contacts["linkedin_url"].astype(object).map(
        lambda u: u.rstrip("/").split("?")[0] if isinstance(u, str) else u))  # fmt: skip
    crm_dupes = 0
    snap = read_frame(engine, select(t.crm_records.c.object, t.crm_records.c.domain, t.crm_records.c.email)
                      .where(t.crm_records.c.client_id == cid))  # fmt: skip
    if len(snap):
        crm_dupes = int(_dupes(snap.loc[snap["object"] == "account", "domain"]).sum()
                        + _dupes(snap.loc[snap["object"] == "contact", "email"]).sum())  # fmt: skip
    n_dupes = int(len(dup_domain) + len(dup_email) + len(dup_linkedin))
    if n_dupes or crm_dupes:
        add("duplicates",
            f"Duplicates: {len(dup_domain):,} domains shared by several accounts, {len(dup_email):,} e-mails and "
            f"{len(dup_linkedin):,} LinkedIn URLs shared by several contacts",
            {"account_domains": len(dup_domain), "contact_emails": len(dup_email), "contact_linkedin": len(dup_linkedin),
             "crm_duplicate_records": crm_dupes, "examples": list(dup_domain.index[:3]) + list(dup_email.index[:3])},
            {"groups": n_dupes + crm_dupes})  # fmt: skip

    doms = accounts["domain"].dropna().astype(str).reset_index(drop=True)
    bad = doms[normalise_domains(doms).fillna("").to_numpy() != doms.to_numpy()]  # one vectorised pass
    if len(bad):
        add("unnormalised_domains", f"{len(bad):,} account domains are not normalised (e.g. {', '.join(bad[:3])})",
            {"accounts": len(bad), "examples": list(bad[:5])}, {"accounts": len(bad)})  # fmt: skip

    n = len(accounts)
    if n:
        (blanks,) = sql(engine, "audit/count_blank_tier_valuation", client_id=cid, rubric_version=version,
                        product=primary)  # fmt: skip
        blank_tier, blank_val, in_scope = (
            int(blanks[k]) for k in ("blank_tier", "blank_valuation", "in_scope")
        )
        share_tier = blank_tier / n
        share_val = blank_val / in_scope if in_scope else 0.0
        if share_tier > m.blank_tier_max_share or share_val > m.blank_tier_max_share:
            add("blank_tier_valuation",
                f"{share_tier:.1%} of accounts have no tier and {share_val:.1%} of in-scope accounts no valuation "
                f"(maximum {m.blank_tier_max_share:.0%})",
                {"accounts": n, "blank_tier": blank_tier, "blank_tier_share": round(share_tier, 4),
                 "blank_valuation": blank_val, "blank_valuation_share": round(share_val, 4)},
                {"blank_tier_share": round(share_tier, 4), "blank_valuation_share": round(share_val, 4)})  # fmt: skip

        created = pd.to_datetime(accounts["crm_created"], utc=True, errors="coerce").dt.date
        cutoff = as_of - dt.timedelta(days=m.untiered_days)
        old = accounts[created.notna() & (created <= cutoff)]
        untiered = old[~old["account_key"].isin(set(scores.loc[scores["tier"].notna(), "account_key"]))]
        if len(untiered):
            add("untiered_new_accounts",
                f"{len(untiered):,} accounts created more than {m.untiered_days} days ago have no tier",
                {"accounts": len(untiered), "days": m.untiered_days, "examples": list(untiered["account_key"][:5])},
                {"accounts": len(untiered)})  # fmt: skip

    sync = _read(engine, t.crm_sync, cid, ["object", "record_key", "failed", "error"])
    rejected = sync[
        sync["failed"].fillna(False).astype(bool) & sync["error"].fillna("").str.contains(PICKLIST)
    ]
    if len(rejected):
        add("picklist_rejected", f"The CRM rejected picklist values on {len(rejected):,} records at the last push",
            {"records": len(rejected), "examples": [str(e)[:120] for e in rejected["error"][:3]]},
            {"records": len(rejected)})  # fmt: skip

    summary = {"accounts": n, "contacts": len(contacts), "alerts": [a.rule for a in alerts],
               "duplicate_domains": list(dup_domain.index[:50]), "unnormalised": list(bad[:50])}  # fmt: skip
    return alerts, summary


def stale_accounts(
    cfg: ClientConfig,
    accounts: pd.DataFrame,
    opportunities: pd.DataFrame,
    owner_since: pd.Series,
    active_reps: list[str],
    as_of: dt.date,
) -> pd.DataFrame:
    """Accounts with the same rep for ``stale_owner_months`` and no progress, with a round-robin proposal.

    No progress = no opportunity created or closed at the account within that time.

    Args:
        owner_since: account_key -> date the current owner got it.
    Returns:
        ``account_key``, ``owner_id``, ``owner_since``, ``proposed_owner`` (round robin over
        the other active reps, in account-key order).
    """
    cutoff = as_of - dt.timedelta(days=int(cfg.maintenance.stale_owner_months * 30.44))
    since = accounts["account_key"].map(owner_since)
    since = pd.to_datetime(since.fillna(accounts.get("crm_created")), utc=True, errors="coerce").dt.date
    cand = accounts.assign(owner_since=since)
    cand = cand[
        cand["owner_id"].isin(active_reps) & cand["owner_since"].notna() & (cand["owner_since"] <= cutoff)
    ]
    if len(opportunities):
        o = opportunities
        created = pd.to_datetime(o["created_date"], utc=True, errors="coerce").dt.date
        closed = pd.to_datetime(o["close_date"], errors="coerce").dt.date
        recent = o[(created > cutoff) | (closed > cutoff)]["account_key"]
        cand = cand[~cand["account_key"].isin(set(recent))]
    cand = cand.sort_values("account_key").reset_index(drop=True)
    proposed = []
    for i, owner in enumerate(cand["owner_id"]):
        others = [r for r in active_reps if r != owner]
        proposed.append(others[i % len(others)] if others else owner)
    return cand.assign(proposed_owner=proposed)[["account_key", "owner_id", "owner_since", "proposed_owner"]]
