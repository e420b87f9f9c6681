"""Distribution report (SPEC §9): territory valuation by rep (is it fair?), T1/T2/T3 counts per
territory, persona coverage by tier, balance across reps. The territory section is also the
territory view the maintenance alerts link to."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from marketmap import units
from marketmap.config import ClientConfig
from marketmap.reports import charts
from marketmap.reports.data import contact_scores, rep_names, reps, scored_accounts
from marketmap.reports.render import Finding, Report, Section, Table, empty_section

IN_SCOPE = ["T1", "T2", "T3"]


def rep_table(cfg: ClientConfig, engine: Engine, frame: pd.DataFrame) -> pd.DataFrame:
    """Per rep: name, territory, T1/T2/T3 accounts, potential ARR and its ratio to the average."""
    in_scope = frame[frame["tier"].isin(IN_SCOPE) & frame["rep_id"].notna()]
    if in_scope.empty:
        return pd.DataFrame()
    counts = pd.crosstab(in_scope["rep_id"], in_scope["tier"]).reindex(columns=IN_SCOPE, fill_value=0)
    value = in_scope.groupby("rep_id")["valuation"].sum()
    out = counts.join(value.rename("potential ARR")).fillna(0)
    known = reps(cfg, engine)
    names = rep_names(cfg, engine)
    territory = dict(zip(known.get("rep_id", []), known.get("territory", []), strict=False))
    if names:  # only real reps: integration users and queues own accounts too
        out = out[out.index.isin(names)]
    out.insert(0, "rep", [names.get(r, r) for r in out.index])
    out.insert(1, "territory", [territory.get(r) or "–" for r in out.index])
    mean = out["potential ARR"].mean()
    out["vs average"] = out["potential ARR"] / mean if mean else None
    return out.sort_values("potential ARR", ascending=False).rename_axis("rep_id").reset_index()


def territory_section(cfg: ClientConfig, engine: Engine, frame: pd.DataFrame) -> Section:
    """Territory valuation by rep and balance across reps (within the configured band?)."""
    title = "Territory valuation by rep"
    if frame.empty:
        return empty_section(title, "no scored accounts in the warehouse")
    table = rep_table(cfg, engine, frame)
    if table.empty:
        return empty_section(title, "no in-scope account is assigned to a rep")
    m = cfg.maintenance
    mean = float(table["potential ARR"].mean())
    value_chart = charts.bar(table["rep"], table["potential ARR"], title="Potential ARR by rep", xlabel=f"potential ARR ({units.currency_label()})",
                             ylabel="rep", unit="money", horizontal=True, reference=mean, reference_label="average")  # fmt: skip
    tiers_chart = charts.stacked_bar(table["rep"], {t: table[t] for t in IN_SCOPE}, title="In-scope accounts per rep by tier",
                                     xlabel="accounts", ylabel="rep", horizontal=True)  # fmt: skip
    hi, lo = table["potential ARR"].max(), table["potential ARR"].min()
    ratio = hi / lo if lo else float("inf")
    within = table["vs average"].between(1 - m.territory_band, 1 + m.territory_band).mean()
    findings = [
        Finding(
            f"largest territory is {ratio:.1f}x the smallest (alert above {m.territory_max_ratio:g}x)"
            if lo
            else "at least one rep has no potential ARR",
            "pass" if ratio <= m.territory_max_ratio else "fail",
        ),
        Finding(
            f"{within:.0%} of reps are within ±{m.territory_band:.0%} of the average territory value",
            "pass" if within == 1 else "warn",
        ),  # fmt: skip
    ]
    return Section(
        title,
        lead=f"{len(table)} reps; average territory {charts.money(mean)} potential ARR.",
        charts=[value_chart, tiers_chart],
        findings=findings,
        tables=[Table("reps", "Territory by rep", table,
                      {"T1": "count", "T2": "count", "T3": "count", "potential ARR": "money", "vs average": "pct"})],
    )  # fmt: skip


def territory_counts_section(cfg: ClientConfig, engine: Engine, frame: pd.DataFrame) -> Section:
    title = "T1/T2/T3 accounts per territory"
    known = reps(cfg, engine)
    if frame.empty or known.empty or known["territory"].isna().all():
        return empty_section(title, "no reps with territories, or no scored accounts")
    territory = dict(zip(known["rep_id"], known["territory"], strict=False))
    in_scope = frame[frame["tier"].isin(IN_SCOPE)].assign(
        territory=lambda d: d["rep_id"].map(territory).fillna("unassigned")
    )
    counts = pd.crosstab(in_scope["territory"], in_scope["tier"]).reindex(columns=IN_SCOPE, fill_value=0)
    chart = charts.stacked_bar(counts.index, {t: counts[t] for t in IN_SCOPE}, title="In-scope accounts per territory by tier",
                               xlabel="territory", ylabel="accounts")  # fmt: skip
    return Section(title, charts=[chart],
                   tables=[Table("territories", "Accounts per territory", counts.reset_index(), dict.fromkeys(IN_SCOPE, "count"))])  # fmt: skip


def coverage_section(cfg: ClientConfig, engine: Engine, frame: pd.DataFrame) -> Section:
    from marketmap.scoring.personas import coverage

    title = "Persona coverage by tier"
    contacts = contact_scores(cfg, engine)
    if frame.empty or contacts.empty:
        return empty_section(title, "no scored contacts in the warehouse")
    cov = coverage(contacts, frame[["account_key", "tier"]], cfg.personas.coverage_targets)
    cov = cov[cov["tier"].isin(IN_SCOPE)]
    g = cov.groupby("tier")
    table = pd.DataFrame(
        {
            "accounts": g.size(),
            "with a Tier-1 persona": g["p1"].apply(lambda s: (s > 0).mean()),
            "meeting the coverage target": g["meets_target"].mean(),
            "contacts per account": g["contacts"].mean(),
        }
    ).reindex(IN_SCOPE)
    chart = charts.grouped_bar(
        IN_SCOPE,
        {"with a Tier-1 persona": table["with a Tier-1 persona"], "meeting the target": table["meeting the coverage target"]},
        title="Persona coverage by account tier", xlabel="account tier", ylabel="share of the tier's accounts (%)", unit="pct",
    )  # fmt: skip
    p1 = table.loc["T1", "with a Tier-1 persona"]
    floor = cfg.maintenance.persona_p1_coverage_min
    findings = (
        [
            Finding(
                f"{p1:.0%} of T1 accounts have a Tier-1 persona (minimum {floor:.0%})",
                "pass" if p1 >= floor else "fail",
            )
        ]
        if pd.notna(p1)
        else []
    )
    return Section(title, charts=[chart], findings=findings,
                   tables=[Table("coverage", "Persona coverage by tier", table.reset_index(),
                                 {"accounts": "count", "with a Tier-1 persona": "pct", "meeting the coverage target": "pct"})])  # fmt: skip


def build(cfg: ClientConfig, engine: Engine, run_id: str) -> Report:
    frame = scored_accounts(cfg, engine)
    report = Report("distribution", "Distribution report", cfg.client_id, cfg.name, run_id)
    report.sections = [
        territory_section(cfg, engine, frame),
        territory_counts_section(cfg, engine, frame),
        coverage_section(cfg, engine, frame),
    ]
    if not frame.empty:
        report.kpis = [
            ("in-scope accounts", charts.count(int(frame["tier"].isin(IN_SCOPE).sum()))),
            ("reps", charts.count(frame.loc[frame["tier"].isin(IN_SCOPE), "rep_id"].nunique())),
            ("potential ARR", charts.money(float(frame["valuation"].sum()))),
        ]
    return report
