"""Rep cockpit: per rep, their T1 accounts with Tier-1 personas first and what
to do next, from the account tier x persona tier priority matrix."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from marketmap.config import ClientConfig
from marketmap.ingest.custom import rubric_fields
from marketmap.reports import charts
from marketmap.reports.data import contact_scores, rep_names, scored_accounts
from marketmap.reports.render import Finding, Report, Section, Table, empty_section

PERSONA_RANK = {"P1": 0, "P2": 1, "P3": 2}
NO_PERSONA = "find a Tier-1 persona: enrich contacts for this account"


def best_contacts(contacts: pd.DataFrame) -> pd.DataFrame:
    """The best-ranked contact per account (P1 before P2 before P3, then by persona score)."""
    if contacts.empty:
        return pd.DataFrame(
            columns=["account_key", "contact", "title", "persona_tier", "next step", "p1_contacts"]
        )
    c = contacts[contacts["persona_tier"].isin(PERSONA_RANK)].copy()
    c["rank"] = c["persona_tier"].map(PERSONA_RANK)
    c = c.sort_values(["account_key", "rank", "persona_score"], ascending=[True, True, False])
    p1 = c[c["persona_tier"] == "P1"].groupby("account_key").size().rename("p1_contacts")
    best = c.drop_duplicates("account_key").copy()
    best["contact"] = (best["first_name"].fillna("") + " " + best["last_name"].fillna("")).str.strip()
    best = best.rename(columns={"priority": "next step"})
    best = best[["account_key", "contact", "title", "persona_tier", "next step"]].merge(
        p1, on="account_key", how="left"
    )
    best["p1_contacts"] = best["p1_contacts"].fillna(0).astype(int)
    return best


def rep_accounts(
    frame: pd.DataFrame, best: pd.DataFrame, rep_id: str, tier: str = "T1", extra: list[str] = ()
) -> pd.DataFrame:
    """A rep's accounts of ``tier``: Tier-1 personas first, then by valuation. ``extra``: columns shown
    after the score (the custom fields the rubric uses)."""
    mine = frame[(frame["rep_id"] == rep_id) & (frame["tier"] == tier)]
    shown = ["account_key", "name", "domain", "score", *[c for c in extra if c in mine], "valuation"]
    out = mine[shown].merge(best, on="account_key", how="left")
    out["p1_contacts"] = out["p1_contacts"].fillna(0).astype(int)
    out["next step"] = out["next step"].fillna(NO_PERSONA)
    out = out.sort_values(["p1_contacts", "valuation"], ascending=[False, False])
    return out.rename(columns={"name": "account", "score": "fit score", "p1_contacts": "Tier-1 personas",
                               "persona_tier": "persona tier"})  # fmt: skip


def build(cfg: ClientConfig, engine: Engine, run_id: str) -> Report:
    frame = scored_accounts(cfg, engine)
    report = Report("cockpit", "Rep cockpit", cfg.client_id, cfg.name, run_id)
    if frame.empty:
        report.sections = [empty_section("Reps' T1 accounts", "no scored accounts in the warehouse")]
        return report
    names = rep_names(cfg, engine)
    best = best_contacts(contact_scores(cfg, engine))
    t1 = frame[frame["tier"] == "T1"].merge(
        best[["account_key", "p1_contacts"]], on="account_key", how="left"
    )
    t1["p1_contacts"] = t1["p1_contacts"].fillna(0)
    rep_ids = (
        sorted(set(t1["rep_id"].dropna()) & set(names)) if names else sorted(t1["rep_id"].dropna().unique())
    )
    if not rep_ids:
        report.sections = [empty_section("Reps' T1 accounts", "no T1 account is assigned to a rep")]
        return report
    per_rep = t1[t1["rep_id"].isin(rep_ids)].groupby("rep_id")["p1_contacts"]
    with_p1 = per_rep.apply(lambda s: int((s > 0).sum())).reindex(rep_ids, fill_value=0)
    without = per_rep.apply(lambda s: int((s == 0).sum())).reindex(rep_ids, fill_value=0)
    order = (with_p1 + without).sort_values(ascending=False).index
    overview = charts.stacked_bar(
        [names.get(r, r) for r in order],
        {"with a Tier-1 persona": with_p1[order].tolist(), "no Tier-1 persona yet": without[order].tolist()},
        title="T1 accounts per rep", xlabel="T1 accounts", ylabel="rep", horizontal=True,
    )  # fmt: skip
    report.kpis = [
        ("T1 accounts", charts.count(int(with_p1.sum() + without.sum()))),
        ("with a Tier-1 persona", charts.count(int(with_p1.sum()))),
        ("reps", charts.count(len(rep_ids))),
    ]
    report.sections.append(
        Section(
            "Overview",
            lead="Start with T1 accounts that have a Tier-1 persona: AE immediate outreach. "
            "Each rep's section below is collapsed: open yours from the list.",
            charts=[overview],
        )  # fmt: skip
    )
    fmt = {"fit score": "count", "valuation": "money", "Tier-1 personas": "count"}
    extra = rubric_fields(cfg)  # custom fields that drive the score: a rep sees why
    for rep in order:
        accounts = rep_accounts(frame, best, rep, extra=extra)
        t2_p1 = rep_accounts(frame, best, rep, "T2", extra=extra)
        t2_p1 = t2_p1[t2_p1["Tier-1 personas"] > 0]
        findings = [
            Finding(f"{int(with_p1[rep])} T1 accounts with a Tier-1 persona: AE immediate outreach", "info"),
            Finding(
                f"{int(without[rep])} T1 accounts without one: multi-thread or enrich personas first",
                "warn" if without[rep] else "pass",
            ),
        ]
        if len(t2_p1):
            findings.append(Finding(f"{len(t2_p1)} T2 accounts with a Tier-1 persona: SDR sequence", "info"))
        slug = "".join(ch if ch.isalnum() else "_" for ch in str(rep))
        tables = [
            Table(
                f"{slug}_t1",
                "T1 accounts (Tier-1 personas first)",
                accounts.drop(columns=["account_key"]),
                fmt,
                max_rows=25,
            )
        ]
        if len(t2_p1):
            tables.append(
                Table(
                    f"{slug}_t2_p1",
                    "T2 accounts with a Tier-1 persona",
                    t2_p1.drop(columns=["account_key"]),
                    fmt,
                    max_rows=15,
                )
            )
        report.sections.append(
            Section(
                f"{names.get(rep, rep)}",
                lead=f"{int(with_p1[rep] + without[rep])} T1 accounts, {int(with_p1[rep])} with a Tier-1 persona",
                findings=findings,
                tables=tables,
                collapsed=True,
                anchor=f"rep-{slug}",
            )
        )
    return report
