"""Executive report: closed won/lost by tier, conversion by tier, revenue by tier, win rate
by segment — or, when the client's outcome is ``opportunity_created`` (``maintenance.outcome``),
the opportunity-created rate by tier, its T1/T3 lift, the share in T1, pipeline created by
tier and the rate by segment. The tier and segment views count closed new-business deals only, as in the
back-test; every deal type (new business, renewal, expansion) is shown in its own section so
the report reconciles with the CRM's closed-deal totals."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from marketmap import units
from marketmap.config import ClientConfig
from marketmap.reports import charts
from marketmap.reports.data import TIER_ORDER, opportunities, scored_accounts
from marketmap.reports.render import Finding, Report, Section, Table, empty_section

MIN_SEGMENT_DEALS = 30  # seed 004: fewer closed deals than this is "not enough data"
KIND_LABELS = {"new": "new business", "renewal": "renewal", "expansion": "expansion"}
SCOPE = (
    "Tier, conversion, revenue and segment figures count closed new-business deals only "
    "(renewals and expansions reflect the existing relationship, not the account's fit); "
    "all deal types are listed under \u201cAll closed deals by type\u201d."
)


def closed_deals(
    cfg: ClientConfig, engine: Engine, frame: pd.DataFrame | None = None, kinds: tuple[str, ...] = ("new",)
) -> pd.DataFrame:
    """Closed deals of ``kinds`` (new business by default) with their account's tier,
    employees and industry."""
    from marketmap.analysis.correlation import prepare_deals

    frame = scored_accounts(cfg, engine) if frame is None else frame
    opps = opportunities(cfg, engine)
    if opps.empty or frame.empty:
        return pd.DataFrame()
    deals = prepare_deals(opps)
    deals["close_date"] = pd.to_datetime(opps["close_date"], errors="coerce")
    deals = deals[deals["closed"] & deals["kind"].isin(kinds)]
    acc = frame[["account_key", "tier", "employees", "industry", "valuation"]]
    return deals.merge(acc, on="account_key", how="inner")


def by_tier(deals: pd.DataFrame) -> pd.DataFrame:
    """Per tier: won, lost, win rate, revenue (won amount), average won deal."""
    g = deals.groupby("tier")
    out = (
        pd.DataFrame(
            {
                "won": g["won"].sum(),
                "lost": g["won"].apply(lambda s: int((~s).sum())),
                "revenue": deals[deals["won"]].groupby("tier")["amount"].sum(),
            }
        )
        .reindex(TIER_ORDER)
        .fillna(0)
    )
    out["closed"] = out["won"] + out["lost"]
    out["win rate"] = (out["won"] / out["closed"]).where(out["closed"] > 0)
    out["average won deal"] = (out["revenue"] / out["won"]).where(out["won"] > 0)
    return out.astype({"won": int, "lost": int, "closed": int}).rename_axis("tier").reset_index()


def segment_rates(deals: pd.DataFrame, column: str, top: int = 15) -> pd.DataFrame:
    """Win rate per segment of ``column``, largest segments first; small samples flagged."""
    d = deals[deals[column].notna()]
    g = d.groupby(column)["won"]
    out = pd.DataFrame({"closed": g.size(), "won": g.sum().astype(int)})
    out["win rate"] = out["won"] / out["closed"]
    out["sample"] = out["closed"].map(
        lambda n: "ok" if n >= MIN_SEGMENT_DEALS else f"under {MIN_SEGMENT_DEALS} deals"
    )
    return out.sort_values("closed", ascending=False).head(top).rename_axis("segment").reset_index()


def by_kind(deals: pd.DataFrame) -> pd.DataFrame:
    """Per deal type (new business, renewal, expansion; zeros included): closed, won, lost,
    win rate, revenue."""
    g = deals.groupby("kind")
    out = (
        pd.DataFrame(
            {
                "closed": g.size(),
                "won": g["won"].sum(),
                "revenue": deals[deals["won"]].groupby("kind")["amount"].sum(),
            }
        )
        .reindex(list(KIND_LABELS))
        .fillna(0)
    )
    out = out.astype({"closed": int, "won": int})
    out["lost"] = out["closed"] - out["won"]
    out["win rate"] = (out["won"] / out["closed"]).where(out["closed"] > 0)
    out.index = [KIND_LABELS[k] for k in out.index]
    return out[["closed", "won", "lost", "win rate", "revenue"]].rename_axis("deal type").reset_index()


def _kind_section(kinds: pd.DataFrame) -> Section:
    chart = charts.stacked_bar(kinds["deal type"], {"won": kinds["won"], "lost": kinds["lost"]},
                               title="Closed deals by deal type", xlabel="deal type", ylabel="closed deals",
                               horizontal=False)  # fmt: skip
    return Section(
        "All closed deals by type",
        lead="Every closed deal at a scored account, by deal type. Only new business feeds the tier "
        "and segment figures above.",
        charts=[chart],
        tables=[
            Table(
                "by_deal_type",
                "Closed deals by deal type",
                kinds,
                {"closed": "count", "won": "count", "lost": "count", "win rate": "pct", "revenue": "money"},
            )
        ],  # fmt: skip
    )


def created_by_account(cfg: ClientConfig, frame: pd.DataFrame, opps: pd.DataFrame) -> pd.DataFrame:
    """Every scored account with ``won`` = a new-business opportunity was created there (on or
    after ``outcome.since``) and ``amount`` = the pipeline created; tier, employees, industry."""
    from marketmap.analysis.outcomes import outcome_rows

    rows = outcome_rows(opps, frame["account_key"], cfg.maintenance.outcome)
    acc = frame[["account_key", "tier", "employees", "industry"]].drop_duplicates("account_key")
    return rows.merge(acc, on="account_key", how="inner")


def created_by_tier(rows: pd.DataFrame) -> pd.DataFrame:
    """Per tier: accounts, accounts with an opportunity created, rate, share of them, pipeline created."""
    g = rows.groupby("tier")
    out = pd.DataFrame({"accounts": g.size(), "with opportunity": g["won"].sum(),
                        "pipeline created": g["amount"].sum(min_count=1)}).reindex(TIER_ORDER).fillna(0)  # fmt: skip
    out = out.astype({"accounts": int, "with opportunity": int})
    out["opportunity-created rate"] = (out["with opportunity"] / out["accounts"]).where(out["accounts"] > 0)
    total = out["with opportunity"].sum()
    out["share of accounts with an opportunity"] = out["with opportunity"] / total if total else None
    return out.rename_axis("tier").reset_index()


def _build_created(cfg: ClientConfig, engine: Engine, report: Report) -> Report:
    """The executive report when the client's outcome is "an opportunity was created"."""
    from marketmap.analysis.correlation import EMPLOYEE_BUCKETS, employee_bucket

    since = cfg.maintenance.outcome.since
    when = f" since {since.isoformat()}" if since else ""
    report.subtitle = f"outcome: a new-business opportunity created{when} (maintenance.outcome)"
    frame = scored_accounts(cfg, engine)
    if frame.empty:
        report.sections = [empty_section("Opportunities created by tier", "no scored accounts")]
        return report
    rows = created_by_account(cfg, frame, opportunities(cfg, engine))
    t = created_by_tier(rows)
    overall = rows["won"].mean()
    by = t.set_index("tier")
    report.kpis = [
        ("scored accounts", charts.count(len(rows))),
        ("accounts with an opportunity created", charts.count(int(rows["won"].sum()))),
        ("opportunity-created rate", charts.pct(overall)),
        ("T1 opportunity-created rate", charts.pct(by.loc["T1", "opportunity-created rate"])),
    ]
    rate = charts.bar(t["tier"], t["opportunity-created rate"], title="Opportunity-created rate by tier",
                      xlabel="account tier", ylabel="accounts with an opportunity (%)", unit="pct",
                      reference=overall, reference_label="all tiers")  # fmt: skip
    share = charts.bar(t["tier"], t["share of accounts with an opportunity"], title="Where the opportunities are: share by tier",
                       xlabel="account tier", ylabel="share (%)", unit="pct", reference=0.7, reference_label="T1 target 70%")  # fmt: skip
    pipeline = charts.bar(t["tier"], t["pipeline created"], title="Pipeline created by tier", xlabel="account tier",
                          ylabel="pipeline ($)", unit="money")  # fmt: skip
    findings = []
    t1, t3 = by.loc["T1"], by.loc["T3"]
    if t1["accounts"] and t3["accounts"] and t3["opportunity-created rate"]:
        lift = t1["opportunity-created rate"] / t3["opportunity-created rate"]
        findings.append(Finding(f"T1 accounts get opportunities {lift:.1f}x as often as T3 accounts (2-3x expected)",
                                "pass" if lift >= cfg.maintenance.lift_min else "fail"))  # fmt: skip
    if t["with opportunity"].sum():
        sh = t1["with opportunity"] / t["with opportunity"].sum()
        findings.append(Finding(f"{sh:.0%} of accounts with an opportunity created are T1 ({int(t1['with opportunity'])} of "
                                f"{int(t['with opportunity'].sum())}; target 70%+)", "pass" if sh >= 0.7 else "warn"))  # fmt: skip
    report.sections.append(Section(
        "Opportunities created by tier",
        lead=f"Share of each tier's scored accounts at which a new-business opportunity was created{when}.",
        charts=[rate, share, pipeline], findings=findings,
        tables=[Table("by_tier", "Opportunities created by tier", t,
                      {"accounts": "count", "with opportunity": "count", "pipeline created": "money",
                       "opportunity-created rate": "pct", "share of accounts with an opportunity": "pct"})],
    ))  # fmt: skip
    rows = rows.assign(employee_bucket=employee_bucket(rows["employees"]))
    seg_charts, seg_tables = [], []
    for column, label in (("employee_bucket", "employees"), ("industry", "industry")):
        seg = segment_rates(rows, column).rename(columns={"closed": "accounts", "won": "with opportunity",
                                                          "win rate": "opportunity-created rate"})  # fmt: skip
        if column == "employee_bucket":
            seg = seg.sort_values("segment", key=lambda x: x.map(EMPLOYEE_BUCKETS.index))
        if seg.empty:
            continue
        seg_charts.append(charts.bar(seg["segment"], seg["opportunity-created rate"], title=f"Opportunity-created rate by {label}",
                                     xlabel="accounts with an opportunity (%)", ylabel=label, unit="pct", horizontal=True,
                                     reference=overall, reference_label="all accounts"))  # fmt: skip
        seg_tables.append(Table(f"segment_{label}", f"Opportunity-created rate by {label}", seg,
                                {"accounts": "count", "with opportunity": "count", "opportunity-created rate": "pct"}))  # fmt: skip
    report.sections.append(
        Section("Opportunity-created rate by segment", charts=seg_charts, tables=seg_tables,
                lead=f"Segments with fewer than {MIN_SEGMENT_DEALS} accounts are flagged.")  # fmt: skip
        if seg_tables else empty_section("Opportunity-created rate by segment", "no segment data on the accounts")
    )
    every = closed_deals(cfg, engine, frame, kinds=tuple(KIND_LABELS))
    if not every.empty:
        report.sections.append(_kind_section(by_kind(every)))
    return report


def build(cfg: ClientConfig, engine: Engine, run_id: str) -> Report:
    from marketmap.analysis.correlation import EMPLOYEE_BUCKETS, employee_bucket

    if cfg.maintenance.outcome.kind == "opportunity_created":
        return _build_created(cfg, engine, Report("executive", "Executive report", cfg.client_id, cfg.name, run_id))
    deals = closed_deals(cfg, engine)
    every = closed_deals(cfg, engine, kinds=tuple(KIND_LABELS))
    report = Report("executive", "Executive report", cfg.client_id, cfg.name, run_id)
    report.subtitle = "counts closed new-business deals; renewals and expansions shown separately"
    if deals.empty:
        if not every.empty:
            report.sections = [
                empty_section("Closed deals by tier", "no closed new-business deals at scored accounts"),
                _kind_section(by_kind(every)),
            ]
            return report
        report.sections = [
            empty_section("Closed deals by tier", "no closed opportunities at scored accounts")
        ]
        return report
    t = by_tier(deals)
    overall = deals["won"].mean()
    won_total = float(deals.loc[deals["won"], "amount"].sum())
    report.kpis = [
        ("closed new-business deals", charts.count(len(deals))),
        ("new-business win rate", charts.pct(overall)),
        ("new-business closed-won revenue", charts.money(won_total)),
        ("T1 new-business win rate", charts.pct(t.loc[t["tier"] == "T1", "win rate"].iloc[0])),
    ]
    won_lost = charts.stacked_bar(t["tier"], {"won": t["won"], "lost": t["lost"]}, title="Closed won and lost deals by tier",
                                  xlabel="account tier", ylabel="closed deals", horizontal=False)  # fmt: skip
    conversion = charts.bar(t["tier"], t["win rate"], title="Conversion (win rate) by tier", xlabel="account tier",
                            ylabel="win rate (%)", unit="pct", reference=overall, reference_label="all tiers")  # fmt: skip
    revenue = charts.bar(t["tier"], t["revenue"], title="Closed-won revenue by tier", xlabel="account tier",
                         ylabel=f"revenue ({units.currency_label()})", unit="money")  # fmt: skip
    t1, t3 = t.set_index("tier").loc["T1"], t.set_index("tier").loc["T3"]
    findings = []
    if t1["closed"] and t3["closed"] and t3["win rate"]:
        lift = t1["win rate"] / t3["win rate"]
        findings.append(
            Finding(
                f"T1 wins {lift:.1f}x as often as T3 (2-3x expected)",
                "pass" if lift >= cfg.maintenance.lift_min else "fail",
            )
        )
    if t["won"].sum():
        share = t1["won"] / t["won"].sum()
        findings.append(
            Finding(
                f"{share:.0%} of won new-business deals are at T1 accounts "
                f"({int(t1['won'])} of {int(t['won'].sum())} won deals at scored accounts; target 70%+)",
                "pass" if share >= 0.7 else "warn",
            )
        )
    report.sections.append(
        Section(
            "Closed won/lost, conversion and revenue by tier",
            lead=SCOPE,
            charts=[won_lost, conversion, revenue],
            findings=findings,
            tables=[
                Table(
                    "by_tier",
                    "New-business deals by tier",
                    t,
                    {
                        "won": "count",
                        "lost": "count",
                        "closed": "count",
                        "revenue": "money",
                        "win rate": "pct",
                        "average won deal": "money",
                    },  # fmt: skip
                )
            ],
        )
    )
    deals = deals.assign(employee_bucket=employee_bucket(deals["employees"]))
    seg_charts, seg_tables = [], []
    for column, label in (("employee_bucket", "employees"), ("industry", "industry")):
        seg = segment_rates(deals, column)
        if column == "employee_bucket":  # size buckets read best in size order
            seg = seg.sort_values("segment", key=lambda s: s.map(EMPLOYEE_BUCKETS.index))
        if seg.empty:
            continue
        seg_charts.append(
            charts.bar(
                seg["segment"],
                seg["win rate"],
                title=f"Win rate by {label}",
                xlabel="win rate (%)",
                ylabel=label,
                unit="pct",
                horizontal=True,
                reference=overall,
                reference_label="all deals",
            )  # fmt: skip
        )
        seg_tables.append(
            Table(
                f"segment_{label}",
                f"Win rate by {label}",
                seg,
                {"closed": "count", "won": "count", "win rate": "pct"},
            )
        )
    report.sections.append(
        Section(
            "Win rate by segment",
            lead=f"Closed new-business deals. Segments with fewer than {MIN_SEGMENT_DEALS} closed deals are flagged: read them with care.",
            charts=seg_charts,
            tables=seg_tables,
        )  # fmt: skip
        if seg_tables
        else empty_section(
            "Win rate by segment", "no segment data (employees, industry) on the deals' accounts"
        )
    )
    report.sections.append(_kind_section(by_kind(every)))
    return report
