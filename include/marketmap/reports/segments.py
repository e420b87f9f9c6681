"""Segment report: what wins, by segment (the "correlation report" the drift alerts point to).

Charts first: win rate by segment per dimension (employee bucket, industry, funding stage,
tech stack) against the overall rate, then average won deal size; then the findings —
the primary-ICP candidate (the segment leading 3+ of the 5 metrics, seed 004) or, when
none can be named, why not (for example only won/lost outcomes in the data) — and the
negative data (high-loss, high-churn and lost-to-competitor segments); then one table
per dimension. Built from :func:`marketmap.analysis.correlation.segment_analysis`.

Produced by the drift and valuation DAGs (``segments.html`` next to their JSON
summaries) and shown in the preview.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from marketmap import units
from marketmap.config import ClientConfig
from marketmap.reports import charts
from marketmap.reports.render import Finding, Report, Section, Table, empty_section

TITLE = "What wins, by segment"
DIMENSION_WORDS = {
    "employees": "company size (employees)",
    "industry": "industry",
    "funding_stage": "funding stage",
    "tech_stack": "tech stack",
}


def _num(v):
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def sections(result: dict) -> list[Section]:
    """The report's sections from a :func:`segment_analysis` result (also used by the preview)."""
    if result.get("status") != "ok":
        return [empty_section(TITLE, result.get("message", "no closed deals"))]
    overall = result["overall"]
    summary = Section(
        TITLE,
        lead=(
            f"{overall['closed_deals']:,} closed new-business deals, {overall['wins']:,} won "
            f"(win rate {charts.pct(overall['win_rate'] or 0)}); a segment needs {result['min_sample']} "
            "closed deals to show numbers or lead a metric."
        ),
    )
    status = "pass" if result["primary_icp"] else "warn"
    summary.findings.append(Finding(result.get("primary_icp_note", ""), status))
    neg = result.get("negative") or {}
    for row in neg.get("high_loss", [])[:5]:
        summary.findings.append(
            Finding(
                f"High-loss segment: {row.get('dimension')} {row.get('segment')} wins "
                f"{charts.pct(row.get('win_rate') or 0)} of {row.get('closed_deals')} closed deals",
                "warn",
            )
        )
    for row in neg.get("high_churn", [])[:5]:
        summary.findings.append(
            Finding(f"High-churn segment: {row.get('dimension')} {row.get('segment')}", "warn")
        )
    for row in neg.get("lost_to_competitor", [])[:5]:
        summary.findings.append(
            Finding(f"Often lost to competitors: {row.get('dimension')} {row.get('segment')}", "warn")
        )
    out = [summary]
    for name, dim in result["dimensions"].items():
        segs = [s for s in dim["segments"] if s["enough_data"]]
        words = DIMENSION_WORDS.get(name, name)
        title = f"By {words}"
        if not segs:
            out.append(empty_section(title, f"no {words} segment has {result['min_sample']} closed deals"))
            continue
        labels = [s["segment"] for s in segs]
        chart_list = [
            charts.bar(
                labels,
                [_num(s["win_rate"]) or 0 for s in segs],
                title=f"Win rate by {words}",
                xlabel=words,
                ylabel="win rate (%)",
                unit="pct",
                reference=overall["win_rate"],
                reference_label="all deals",
            )  # fmt: skip
        ]
        if any(_num(s["avg_deal_size"]) for s in segs):
            chart_list.append(
                charts.bar(
                    labels,
                    [_num(s["avg_deal_size"]) or 0 for s in segs],
                    title=f"Average won deal by {words}",
                    xlabel=words,
                    ylabel=f"average won deal ({units.currency_label()})",
                    unit="money",
                )  # fmt: skip
            )
        leaders = dim.get("leaders") or {}
        findings = [
            Finding(f"Leads {m.replace('_', ' ')}: {v['segment']}", "info") for m, v in leaders.items()
        ]
        if dim.get("primary"):
            p = dim["primary"]
            findings.append(Finding(f"{p['segment']} leads {p['leads']} of {p['of']} metrics",
                                    "pass" if p["icp_candidate"] else "info"))  # fmt: skip
        if dim.get("unknown_deals"):
            findings.append(
                Finding(
                    f"{dim['unknown_deals']:,} closed deals at accounts with no {words} on record", "info"
                )
            )
        frame = pd.DataFrame(dim["segments"]).drop(columns=["enough_data"], errors="ignore")
        fmt = {"win_rate": "pct", "avg_deal_size": "money", "expansion_rate": "pct", "churn_rate": "pct",
               "closed_deals": "count", "wins": "count"}  # fmt: skip
        out.append(
            Section(
                title,
                charts=chart_list,
                findings=findings,
                tables=[Table(f"segments_{name}", title, frame, fmt)],
            )
        )
    return out


def build(cfg: ClientConfig, engine: Engine, run_id: str) -> Report:
    """The segment report of a client from the warehouse."""
    from marketmap.analysis.correlation import segment_analysis
    from marketmap.scoring.pipeline import read_accounts, read_opportunities

    report = Report("segments", "Segment analysis", cfg.client_id, cfg.name, run_id,
                    subtitle="win rate, deal size, cycle, expansion and churn by segment")  # fmt: skip
    accounts = read_accounts(engine, cfg.client_id)
    opps = read_opportunities(engine, cfg.client_id)
    if accounts.empty or opps.empty:
        report.sections = [empty_section(TITLE, "no accounts or no opportunities in the warehouse")]
        return report
    result = segment_analysis(accounts, opps, min_sample=cfg.maintenance.drift_min_deals)
    report.sections = sections(result)
    if result.get("status") == "ok":
        o = result["overall"]
        report.kpis = [
            ("closed deals", charts.count(o["closed_deals"])),
            ("win rate", charts.pct(o["win_rate"] or 0)),
        ]
    return report


def write(cfg: ClientConfig, engine: Engine, run_id: str, directory) -> str:
    """Write ``segments.html`` (+ CSVs) into ``directory``; return the HTML path."""
    from marketmap.reports.render import write_report

    with units.use_currency(units.client_currency(cfg)):
        return str(write_report(build(cfg, engine, run_id), directory))
