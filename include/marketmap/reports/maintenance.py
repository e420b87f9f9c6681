"""Views the maintenance alerts link to: back-test, drift, valuation and territory (SPEC §9-10)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from marketmap import units
from marketmap.config import ClientConfig
from marketmap.reports import charts
from marketmap.reports.data import TIER_ORDER, opportunities, scored_accounts
from marketmap.reports.render import Finding, Report, Section, Table, empty_section

_STATUS = {True: "pass", False: "fail", None: "info"}


def backtest_section(result: dict, title: str = "Back-test against closed deals") -> Section:
    """Charts and verdicts of :func:`marketmap.analysis.backtest.backtest` (either outcome)."""
    from marketmap.analysis.outcomes import CLOSED_WON, words

    created = result.get("outcome", CLOSED_WON) != CLOSED_WON
    if created and title == "Back-test against closed deals":
        title = "Back-test against opportunities created"
    if result.get("status") != "ok":
        return empty_section(title, result.get("message", "not enough closed deals"))
    w = words(result.get("outcome"))
    by = pd.DataFrame(result["by_tier"]).T.reindex(TIER_ORDER).rename_axis("tier").reset_index()
    win = charts.bar(by["tier"], by["win_rate"], title=f"{w.rate.capitalize()} by tier (back-test)", xlabel="account tier",
                     ylabel=f"{w.rate} (%)", unit="pct", reference=result["win_rate"], reference_label="all tiers")  # fmt: skip
    share = charts.bar(by["tier"], by["share_of_wins"], title=f"Share of {w.positive_at} by tier", xlabel="account tier",
                       ylabel="share (%)" if created else "share of wins (%)", unit="pct", reference=0.7,
                       reference_label="T1 target 70%")  # fmt: skip
    checks = ("won_in_t1", "lift_t1_t3", "cycle_t1_vs_t3", "t3_losses", "t2_vs_t1", "recall_precision")
    findings = [Finding(result[c]["verdict"], _STATUS[result[c]["passed"]]) for c in checks if c in result
                and not (created and c == "cycle_t1_vs_t3")]  # fmt: skip
    if created:
        table = by[["tier", "closed_deals", "wins", "win_rate", "avg_deal_size", "share_of_wins"]].rename(
            columns={"closed_deals": "accounts", "wins": "with an opportunity", "win_rate": "rate",
                     "avg_deal_size": "average pipeline", "share_of_wins": "share"})  # fmt: skip
        lead = (f"{result['closed_deals']:,} scored accounts, {result['won_deals']:,} with a new-business "
                "opportunity created.")  # fmt: skip
        fmt = {"rate": "pct", "average pipeline": "money", "share": "pct"}
    else:
        table = by.rename(columns={"closed_deals": "closed", "win_rate": "win rate", "avg_deal_size": "average won deal",
                                   "avg_cycle_days": "cycle (days)", "share_of_wins": "share of wins"})  # fmt: skip
        lead = f"{result['closed_deals']:,} closed new-business deals at scored accounts, {result['won_deals']:,} won."
        fmt = {"win rate": "pct", "average won deal": "money", "share of wins": "pct"}
    return Section(
        title,
        lead=lead,
        charts=[win, share],
        findings=findings,
        tables=[Table("backtest", "Accounts by tier" if created else "Deals by tier", table, fmt)],
    )


def drift_section(deals: pd.DataFrame) -> Section:
    """Win rate per tier by quarter of the close date: is T3 catching up with T1?"""
    title = "Win rate by tier over time"
    if deals.empty or deals["close_date"].isna().all():
        return empty_section(title, "no closed deals with a close date")
    d = deals.dropna(subset=["close_date"]).assign(
        quarter=lambda x: x["close_date"].dt.to_period("Q").astype(str)
    )
    rates = d.pivot_table(index="quarter", columns="tier", values="won", aggfunc="mean").reindex(
        columns=TIER_ORDER[:3]
    )
    closed = d.pivot_table(index="quarter", columns="tier", values="won", aggfunc="size").reindex(
        columns=TIER_ORDER[:3]
    )
    chart = charts.lines(rates.index.tolist(), {t: rates[t].tolist() for t in rates.columns}, title="Win rate by tier per quarter",
                         xlabel="quarter closed", ylabel="win rate (%)")  # fmt: skip
    table = rates.add_suffix(" win rate").join(closed.add_suffix(" closed")).reset_index()
    fmt = {f"{t} win rate": "pct" for t in TIER_ORDER[:3]} | {f"{t} closed": "count" for t in TIER_ORDER[:3]}
    return Section(title, charts=[chart], tables=[Table("drift", "Win rate by tier per quarter", table, fmt)])


def valuation_section(frame: pd.DataFrame, deals: pd.DataFrame) -> Section:
    """Estimated vs actual: customers' ARR (calibration) and won deal size by tier."""
    from marketmap.analysis.correlation import num
    from marketmap.scoring.valuation import calibration_report

    title = "Valuation: estimates against actuals"
    if frame.empty or frame["valuation"].notna().sum() == 0:
        return empty_section(title, "no valued accounts in the warehouse")
    section = Section(title)
    cal = calibration_report(frame[["account_key", "valuation", "current_arr"]])
    section.findings.append(
        Finding(cal["message"], "pass" if cal["ok"] else ("info" if cal["n"] < 10 else "fail"))
    )
    if cal["customers"]:
        c = pd.DataFrame(cal["customers"])
        section.charts.append(charts.scatter(c["actual"], c["estimate"], title="Estimated vs actual ARR of customers",
                                             xlabel=f"actual ARR ({units.currency_label()})", ylabel=f"estimated potential ARR ({units.currency_label()})"))  # fmt: skip
        section.tables.append(
            Table(
                "calibration",
                "Customers, largest error first",
                c,
                {"estimate": "money", "actual": "money", "pct_error": "pct"},
            )
        )
    if not deals.empty and deals["won"].any():
        won = (
            deals[deals["won"]]
            .groupby("tier")
            .agg(won_avg=("amount", "mean"), predicted_avg=("valuation", "mean"))
        )
        won = won.reindex(TIER_ORDER[:3])
        section.charts.append(
            charts.grouped_bar(
                won.index,
                {"average won deal": won["won_avg"], "average estimate": won["predicted_avg"]},
                title="Won deal size vs estimate by tier",
                xlabel="account tier",
                ylabel=f"amount ({units.currency_label()})",
                unit="money",
            )  # fmt: skip
        )
        for tier, row in won.dropna().iterrows():
            gap = row["won_avg"] / row["predicted_avg"] - 1 if row["predicted_avg"] else None
            if gap is not None:
                section.findings.append(Finding(f"{tier}: won deals average {charts.money(row['won_avg'])} against "
                                                f"{charts.money(row['predicted_avg'])} estimated ({num(gap, 2):+.0%})",
                                                "pass" if abs(gap) <= 0.3 else "warn"))  # fmt: skip
    return section


def build(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    views: tuple[str, ...] = ("backtest", "drift", "valuation", "territory"),
) -> Report:
    """The maintenance report with the requested views (each alert links to its view's anchor)."""
    from marketmap.analysis.backtest import backtest
    from marketmap.reports.distribution import territory_section
    from marketmap.reports.executive import closed_deals

    frame = scored_accounts(cfg, engine)
    deals = closed_deals(cfg, engine, frame)
    report = Report("maintenance", "Maintenance review", cfg.client_id, cfg.name, run_id)
    for view in views:
        if view == "backtest":
            result = (backtest(frame[["account_key", "tier"]], opportunities(cfg, engine), min_sample=cfg.maintenance.drift_min_deals,
                               lift_min=cfg.maintenance.lift_min, outcome=cfg.maintenance.outcome) if not frame.empty else {"message": "no scored accounts"})  # fmt: skip
            s = backtest_section(result)
        elif view == "drift":
            s = drift_section(deals)
        elif view == "valuation":
            s = valuation_section(frame, deals)
        elif view == "territory":
            s = territory_section(cfg, engine, frame)
        else:
            raise ValueError(f"unknown maintenance view {view!r}")
        s.anchor = view
        report.sections.append(s)
    return report
