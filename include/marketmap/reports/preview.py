"""The ICP data-review loop (issue #3 item 6): score the client's warehouse TAM with the current
or a candidate rubric and show what would change, before anything is written anywhere.

``marketmap preview --client X [--rubric candidate.yaml]`` reads accounts and opportunities
from the warehouse, scores and values them in memory with the current rubric (and the
candidate, if given), and reports tier distribution, valuation totals by tier, back-test,
QA gates, the tier-move matrix and the biggest moves, a threshold suggestion and the
approach recommendation — in the terminal and as an HTML report with charts. No credits
are spent and nothing is written to the CRM or the warehouse: only the HTML and CSV files.

A candidate file holds an ``icp:`` mapping (and optionally ``valuation:``); it is merged
over the client's effective config and validated by the same models, so its errors name
the candidate file and the key, like any client file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from marketmap import units
from marketmap.config import ClientConfig, ConfigError, _read_yaml, parse_client
from marketmap.reports import charts
from marketmap.reports.data import TIER_ORDER
from marketmap.reports.render import Finding, Report, Section, Table, empty_section

CANDIDATE_KEYS = ("icp", "valuation")
TIER_RANK = {t: i for i, t in enumerate(TIER_ORDER)}
BIGGEST_MOVES = 20


def load_candidate(cfg: ClientConfig, path: Path) -> ClientConfig:
    """The client's config with the candidate file's ``icp`` (and ``valuation``) merged over it.

    Raises:
        ConfigError: the file is unreadable, has keys other than icp/valuation, lacks icp,
            or the merged config does not validate (each problem names the file and key).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError([(str(path), "", "no such candidate rubric file")])
    data = _read_yaml(path)
    problems = [
        (str(path), k, f"a candidate rubric may only set {' and '.join(CANDIDATE_KEYS)}")
        for k in data
        if k not in CANDIDATE_KEYS
    ]
    if "icp" not in data:
        problems.append((str(path), "icp", "required key is missing (the candidate rubric)"))
    if problems:
        raise ConfigError(problems)
    base = cfg.model_dump(mode="json", exclude_none=True)
    # A candidate replaces the rubric wholesale: merging rubric lists item by item would mix two rubrics.
    base["icp"] = {}
    if "valuation" in data:
        base["valuation"] = {}
    return parse_client(data if "valuation" in data else {**data, "valuation": cfg.valuation.model_dump(mode="json", exclude_none=True)},
                        str(path), base)  # fmt: skip


def score_frame(
    cfg: ClientConfig, accounts: pd.DataFrame, won: pd.DataFrame, run_date: dt.date
) -> pd.DataFrame:
    """Primary-product score, tier, explanation and valuation of every account, in memory."""
    from marketmap.scoring.fit import score_icp
    from marketmap.scoring.valuation import value_accounts

    scored = score_icp(accounts, cfg.icp, run_date).iloc[
        : len(accounts)
    ]  # the primary rubric's block comes first
    valued = value_accounts(accounts, cfg.valuation, won)
    out = pd.DataFrame(
        {
            "account_key": accounts["account_key"].to_numpy(),
            "score": scored["score"].to_numpy(),
            "tier": scored["tier"].astype(object).to_numpy(),
            "explanation": scored["explanation"].astype(object).to_numpy(),
            "valuation": valued["valuation"].to_numpy(dtype=float),
        }
    )
    out.loc[out["tier"] == "OUT", "valuation"] = np.nan  # out of scope carries no valuation
    return out


def _tier_table(frame: pd.DataFrame) -> dict:
    counts = frame["tier"].value_counts().reindex(TIER_ORDER, fill_value=0)
    value = frame.groupby("tier")["valuation"].sum(min_count=1).reindex(TIER_ORDER).fillna(0.0)
    return {
        "counts": {t: int(counts[t]) for t in TIER_ORDER},
        "valuation": {t: float(value[t]) for t in TIER_ORDER},
    }


def tier_moves(
    current: pd.DataFrame, candidate: pd.DataFrame, accounts: pd.DataFrame, top: int = BIGGEST_MOVES
) -> dict:
    """The tier-move matrix (current tier x candidate tier) and the biggest moves.

    Biggest = most tiers jumped, then the largest score change.
    """
    both = current.merge(candidate, on="account_key", suffixes=("_current", "_candidate"))
    matrix = pd.crosstab(both["tier_current"], both["tier_candidate"]).reindex(
        index=TIER_ORDER, columns=TIER_ORDER, fill_value=0
    )
    moved = both[both["tier_current"] != both["tier_candidate"]].copy()
    moved["tiers_moved"] = moved["tier_candidate"].map(TIER_RANK) - moved["tier_current"].map(TIER_RANK)
    moved["score_change"] = moved["score_candidate"] - moved["score_current"]
    moved["order"] = moved["tiers_moved"].abs() * 1000 + moved["score_change"].abs()
    moved = moved.sort_values(["order", "account_key"], ascending=[False, True]).head(top)
    moved = moved.merge(accounts[["account_key", "name", "domain"]], on="account_key", how="left")
    cols = ["account_key", "name", "domain", "tier_current", "tier_candidate", "score_current", "score_candidate",
            "score_change", "explanation_candidate"]  # fmt: skip
    return {
        "matrix": {r: {c: int(matrix.loc[r, c]) for c in TIER_ORDER} for r in TIER_ORDER},
        "moved": int((both["tier_current"] != both["tier_candidate"]).sum()),
        "up": int((both["tier_candidate"].map(TIER_RANK) < both["tier_current"].map(TIER_RANK)).sum()),
        "down": int((both["tier_candidate"].map(TIER_RANK) > both["tier_current"].map(TIER_RANK)).sum()),
        "accounts": int(len(both)),
        "biggest": moved[cols].to_dict(orient="records"),
    }


def preview(
    cfg: ClientConfig, engine: Engine, candidate: ClientConfig | None = None, run_date: dt.date | None = None,
    suggest: bool = False,
) -> dict:
    """Everything the ICP review meeting looks at, as a JSON-serialisable dict (read-only).

    With ``suggest``: also a rubric learned from the client's outcomes, back-tested out of
    sample next to the current one (``result["suggestion"]``, see ``analysis.suggest``).
    """
    from marketmap.analysis.approach import recommend_approach
    from marketmap.analysis.backtest import backtest
    from marketmap.analysis.calibration import suggest_thresholds
    from marketmap.analysis.qa import gates_summary, qa_gates
    from marketmap.versions import rubric_version
    from marketmap.warehouse.queries import read_accounts, read_opportunities

    run_date = run_date or dt.datetime.now(cfg.tz).date()
    accounts = read_accounts(engine, cfg.client_id)
    result: dict = {
        "client_id": cfg.client_id,
        "client_name": cfg.name,
        "run_date": run_date.isoformat(),
        "accounts": int(len(accounts)),
        "current": {
            "rubric_version": rubric_version(cfg),
            "thresholds": cfg.icp.rubrics[0].thresholds.model_dump(),
        },
        "candidate": None,
        "approach": recommend_approach(cfg.scoping).to_dict(),
    }
    if candidate is not None:
        result["candidate"] = {
            "rubric_version": rubric_version(candidate),
            "thresholds": candidate.icp.rubrics[0].thresholds.model_dump(),
        }
    if accounts.empty:
        return result
    opps = read_opportunities(engine, cfg.client_id)
    won = opps[opps["is_won"].fillna(False).astype(bool) & (opps["amount"].fillna(0) > 0)][
        ["account_key", "amount"]
    ]
    won = won.dropna(subset=["account_key"])
    m = cfg.maintenance
    frames = {"current": score_frame(cfg, accounts, won, run_date)}
    if candidate is not None:
        frames["candidate"] = score_frame(candidate, accounts, won, run_date)
    reps = cfg.territories.reps or None
    for name, frame in frames.items():
        gate_input = accounts[["account_key", "owner_id", "is_partner"]].merge(
            frame[["account_key", "tier", "valuation"]], on="account_key"
        )
        result[name].update(_tier_table(frame))
        result[name]["backtest"] = backtest(
            frame[["account_key", "tier"]], opps, min_sample=m.drift_min_deals, lift_min=m.lift_min,
            outcome=m.outcome,
        )
        result[name]["qa"] = gates_summary(qa_gates(gate_input, reps=reps, **cfg.qa.bounds()))
    focus = frames.get("candidate", frames["current"])
    try:
        result["thresholds"] = suggest_thresholds(focus["score"])
    except ValueError as e:
        result["thresholds"] = {"error": str(e)}
    if candidate is not None:
        result["moves"] = tier_moves(frames["current"], frames["candidate"], accounts)
    from marketmap.analysis.correlation import segment_analysis

    result["segments"] = segment_analysis(accounts, opps, min_sample=m.drift_min_deals)
    if suggest:
        from marketmap.analysis.suggest import suggest_rubric

        result["suggestion"] = suggest_rubric(cfg, accounts, opps, run_date, frames["current"][["account_key", "tier"]])
    return result


# --------------------------------------------------------------------------- terminal


def _win(bt: dict, tier: str) -> str:
    if bt.get("status") != "ok":
        return "–"
    return charts.pct(bt["by_tier"][tier]["win_rate"])


def format_preview(p: dict) -> str:
    """The preview as text for the terminal."""
    names = ["current"] + (["candidate"] if p.get("candidate") else [])
    lines = [
        f"ICP preview for {p['client_name']} ({p['client_id']}): {p['accounts']:,} accounts, scored as of {p['run_date']}"
    ]
    for n in names:
        th = p[n]["thresholds"]
        lines.append(
            f"  {n:<10} rubric {p[n]['rubric_version']}  thresholds T1 {th['T1']:g} / T2 {th['T2']:g} / T3 {th['T3']:g}"
        )
    if not p["accounts"]:
        lines.append("  no accounts in the warehouse yet: run the client's build first")
        return "\n".join(lines)
    created = p["current"]["backtest"].get("outcome") == "opportunity_created"
    short = "opp" if created else "win"
    header = f"  {'tier':<5}" + "".join(f"{n + ' accts':>17}{n + ' ARR':>16}{n + ' ' + short:>15}" for n in names)
    rate = "opportunity-created rate" if created else "win rate"
    lines += ["", f"Tier distribution, valuation and back-test {rate}", header]
    for t in TIER_ORDER:
        row = f"  {t:<5}"
        for n in names:
            row += f"{p[n]['counts'][t]:>17,}{charts.money(p[n]['valuation'][t]):>16}{_win(p[n]['backtest'], t):>15}"
        lines.append(row)
    for n in names:
        bt = p[n]["backtest"]
        lines.append("")
        if bt.get("status") != "ok":
            lines.append(f"Back-test ({n}): {bt.get('message')}")
        else:
            lines.append(f"Back-test ({n}): {bt['closed_deals']:,} scored accounts, {bt['won_deals']:,} with an opportunity created"
                         if created else f"Back-test ({n}): {bt['closed_deals']:,} closed deals, {bt['won_deals']:,} won")  # fmt: skip
            for check in ("won_in_t1", "lift_t1_t3", "t3_losses", "t2_vs_t1", "recall_precision"):
                c = bt[check]
                mark = {True: "PASS", False: "FAIL", None: "  ? "}[c["passed"]]
                lines.append(f"  {mark} {c['verdict']}")
        lines.append(f"QA gates ({n}):")
        for g in p[n]["qa"]["gates"]:
            mark = "PASS" if g["passed"] else ("FAIL" if g["severity"] == "error" else "WARN")
            lines.append(f"  {mark} {g['name']}: {g['message']}")
    mv = p.get("moves")
    if mv:
        lines += ["", f"Tier moves: {mv['moved']:,} of {mv['accounts']:,} accounts change tier ({mv['up']:,} up, {mv['down']:,} down)",
                  "  current \\ candidate " + "".join(f"{t:>8}" for t in TIER_ORDER)]  # fmt: skip
        for r in TIER_ORDER:
            lines.append(f"  {r:<20}" + "".join(f"{mv['matrix'][r][c]:>8,}" for c in TIER_ORDER))
        if mv["biggest"]:
            lines.append("  biggest moves:")
            for b in mv["biggest"][:10]:
                lines.append(
                    f"    {b['tier_current']} -> {b['tier_candidate']}  {b['score_current']:>5.1f} -> {b['score_candidate']:>5.1f}  {b['name'] or b['account_key']} ({b['domain'] or '–'})"
                )
    th = p.get("thresholds", {})
    lines.append("")
    if "thresholds" in th:
        s, mix = th["thresholds"], th["mix"]
        lines.append(f"Suggested thresholds for a {th['target_mix']['T1']:.0%}/{th['target_mix']['T2']:.0%}/{th['target_mix']['T3']:.0%} mix: "
                     f"T1 {s['T1']} / T2 {s['T2']} / T3 {s['T3']} -> T1 {mix['T1']:.0%}, T2 {mix['T2']:.0%}, T3 {mix['T3']:.0%}, OUT {mix['OUT']:.0%}")  # fmt: skip
    a = p["approach"]
    lines.append(
        f"Recommended approach: {a['approach']}" + (f" (also: {', '.join(a['also'])})" if a["also"] else "")
    )
    lines += [f"  - {r}" for r in a["reasons"]]
    if p.get("suggestion") is not None:
        lines += ["", *format_suggestion(p["suggestion"])]
    return "\n".join(lines)


def _pct(v) -> str:
    return "–" if v is None else f"{v:.0%}"


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}x"


def format_suggestion(s: dict) -> list[str]:
    """The suggested rubric for the terminal: weights, the out-of-sample back-test next to the
    current rubric's, the caveat, and the YAML to copy."""
    if s["status"] != "ok":
        return [f"Suggested rubric: {s['message']}"]
    lines = [f"Suggested rubric, learned from {s['rows']:,} {('closed deals' if s['outcome'] == 'closed_won' else 'accounts')} "
             f"({s['positives']:,} {'won' if s['outcome'] == 'closed_won' else 'with an opportunity created'}; "
             f"overall {s['rate_label']} {_pct(s['overall_rate'])}) — nothing is written:"]  # fmt: skip
    if s["caveat"]:
        lines.append(f"  CAVEAT: {s['caveat']}")
    for f in s["fields"]:
        top = ", ".join(f"{t['segment']} {_pct(t['rate'])}" for t in f["top_segments"])
        lines.append(f"  {f['vector']:<16}{f['weight']:>4} points  ({f['field']}, known for {_pct(f['coverage'])}; best: {top})")
    th = s["rubric"]["thresholds"]
    lines.append(f"  thresholds T1 {th['T1']} / T2 {th['T2']} / T3 {th['T3']} (for a 10%/25%/35% tier mix)")
    lines.append(f"Back-test out of sample ({s['cross_validation']['method']}) vs the current rubric, same deals:")
    lines.append(f"  {'':<34}{'suggested':>12}{'current':>12}")
    rows = [(f"T1 {s['rate_label']}", "t1_rate", _pct), (f"T3 {s['rate_label']}", "t3_rate", _pct),
            ("T1/T3 lift", "lift_t1_t3", _x), ("share of outcomes in T1", "share_in_t1", _pct),
            ("captured by T1+T2", "recall_t1_t2", _pct), ("capture ratio (T1+T2)", "capture_ratio", _x)]  # fmt: skip
    for label, key, fmt in rows:
        lines.append(f"  {label:<34}{fmt(s['suggested'].get(key)):>12}{fmt(s['current'].get(key)):>12}")
    c = s["comparison"]
    lines.append(f"  the suggestion's lift is {c['lift_t1_t3'] or 'not comparable'} and its T1 share "
                 f"{c['share_in_t1'] or 'not comparable'} than the current rubric's (out of sample)")  # fmt: skip
    lines += ["", "Suggested rubric as YAML (copy what you accept into the client file):", s["yaml"].rstrip()]
    return lines


# --------------------------------------------------------------------------- HTML


def build_report(p: dict, run_id: str) -> Report:
    """The preview as a report with charts (the screen of the ICP data-review meeting)."""
    names = ["current"] + (["candidate"] if p.get("candidate") else [])
    report = Report("preview", "ICP preview", p["client_id"], p["client_name"], run_id,
                    subtitle=" vs ".join(f"{n} rubric {p[n]['rubric_version']}" for n in names))  # fmt: skip
    if not p["accounts"]:
        report.sections = [
            empty_section("Tier distribution", "no accounts in the warehouse: run the client's build first")
        ]
        return report
    focus = names[-1]
    report.kpis = (
        [("accounts", charts.count(p["accounts"]))]
        + [(f"T1 ({n})", charts.count(p[n]["counts"]["T1"])) for n in names]
        + [(f"potential ARR ({focus})", charts.money(sum(p[focus]["valuation"].values())))]
    )
    if p.get("moves"):
        report.kpis.append(("accounts changing tier", charts.count(p["moves"]["moved"])))
    dist = charts.grouped_bar(TIER_ORDER, {n: [p[n]["counts"][t] for t in TIER_ORDER] for n in names},
                              title="Accounts by tier", xlabel="tier", ylabel="accounts")  # fmt: skip
    value = charts.grouped_bar(TIER_ORDER[:3], {n: [p[n]["valuation"][t] for t in TIER_ORDER[:3]] for n in names},
                               title="Potential ARR by tier", xlabel="tier", ylabel=f"potential ARR ({units.currency_label()})", unit="money")  # fmt: skip
    tiers = pd.DataFrame({"tier": TIER_ORDER} | {f"{n} accounts": [p[n]["counts"][t] for t in TIER_ORDER] for n in names}
                         | {f"{n} potential ARR": [p[n]["valuation"][t] for t in TIER_ORDER] for n in names})  # fmt: skip
    fmt = {c: ("money" if "ARR" in c else "count") for c in tiers.columns if c != "tier"}
    report.sections.append(
        Section(
            "Tier distribution and valuation",
            charts=[dist, value],
            tables=[Table("tiers", "Tiers", tiers, fmt)],
        )
    )

    mv = p.get("moves")
    if mv:
        heat = charts.heatmap([[mv["matrix"][r][c] for c in TIER_ORDER] for r in TIER_ORDER], TIER_ORDER, TIER_ORDER,
                              title="Tier moves: current → candidate", xlabel="candidate tier", ylabel="current tier", unit="count")  # fmt: skip
        biggest = pd.DataFrame(mv["biggest"])
        report.sections.append(
            Section(
                "What moves between tiers",
                lead=f"{mv['moved']:,} of {mv['accounts']:,} accounts change tier: {mv['up']:,} up, {mv['down']:,} down.",
                charts=[heat],
                tables=[
                    Table(
                        "biggest_moves",
                        "Biggest moves",
                        biggest.drop(columns=["account_key"]) if not biggest.empty else biggest,
                        {"score_current": "count", "score_candidate": "count"},
                    )
                ],
            )  # fmt: skip
        )

    bt_charts, findings = [], []
    created = p["current"]["backtest"].get("outcome") == "opportunity_created"
    rate = "opportunity-created rate" if created else "win rate"
    ok = [n for n in names if p[n]["backtest"].get("status") == "ok"]
    if ok:
        bt_charts.append(charts.grouped_bar(TIER_ORDER, {n: [p[n]["backtest"]["by_tier"][t]["win_rate"] or 0 for t in TIER_ORDER] for n in ok},
                                            title=f"Back-test: {rate} by tier", xlabel="tier", ylabel=f"{rate} (%)", unit="pct"))  # fmt: skip
    for n in names:
        bt = p[n]["backtest"]
        if bt.get("status") != "ok":
            findings.append(Finding(f"{n}: {bt.get('message')}", "info"))
            continue
        for check in ("won_in_t1", "lift_t1_t3", "t3_losses", "t2_vs_t1", "recall_precision"):
            c = bt[check]
            findings.append(
                Finding(f"{n}: {c['verdict']}", {True: "pass", False: "fail", None: "info"}[c["passed"]])
            )
    report.sections.append(Section("Back-test against opportunities created" if created else "Back-test against closed deals",
                                   charts=bt_charts, findings=findings))  # fmt: skip

    qa = [Finding(f"{n}: {g['name']}: {g['message']}", "pass" if g["passed"] else ("fail" if g["severity"] == "error" else "warn"))
          for n in names for g in p[n]["qa"]["gates"]]  # fmt: skip
    report.sections.append(
        Section("QA gates", lead="Checked before anything may be written to the CRM.", findings=qa)
    )

    th = p.get("thresholds", {})
    if "thresholds" in th:
        s, mix, target = th["thresholds"], th["mix"], th["target_mix"]
        mix_chart = charts.grouped_bar(TIER_ORDER, {"target mix": [target[t] for t in TIER_ORDER], "suggested thresholds": [mix[t] for t in TIER_ORDER]},
                                       title="Tier mix: target vs suggested thresholds", xlabel="tier", ylabel="share of accounts (%)", unit="pct")  # fmt: skip
        report.sections.append(
            Section(
                "Threshold suggestion",
                lead=f"Whole-point thresholds on the {focus} rubric's scores for the target mix; paste into the client YAML.",
                charts=[mix_chart],
                findings=[
                    Finding(
                        f"suggested thresholds: T1 {s['T1']}, T2 {s['T2']}, T3 {s['T3']} (now T1 {p[focus]['thresholds']['T1']:g}, "
                        f"T2 {p[focus]['thresholds']['T2']:g}, T3 {p[focus]['thresholds']['T3']:g})",
                        "info",
                    )
                ],
            )  # fmt: skip
        )
    if p.get("segments"):  # what wins, by segment (charts first), or why no primary ICP can be named
        from marketmap.reports.segments import sections as segment_sections

        report.sections.extend(segment_sections(p["segments"]))
    if p.get("suggestion") is not None:
        report.sections.append(suggestion_section(p["suggestion"]))
    a = p["approach"]
    report.sections.append(
        Section(
            "Recommended approach",
            lead=f"{a['approach']}" + (f" (also: {', '.join(a['also'])})" if a["also"] else ""),
            findings=[Finding(r, "info") for r in a["reasons"]],
        )  # fmt: skip
    )
    return report


def run_preview(cfg: ClientConfig, engine: Engine, candidate_path: Path | None = None, output: Path | None = None,
                run_date: dt.date | None = None, suggest: bool = False) -> tuple[dict, Path]:  # fmt: skip
    """Compute the preview and write its HTML report; return the result and the HTML path."""
    from marketmap import storage
    from marketmap.reports.render import report_dir, write_report

    candidate = load_candidate(cfg, candidate_path) if candidate_path else None
    p = preview(cfg, engine, candidate, run_date, suggest=suggest)
    run_id = "preview-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    with units.use_currency(units.client_currency(cfg)):
        report = build_report(p, run_id)
        # storage.path, not Path: Path("s3://bucket/x") is the local folder "s3:/bucket/x"
        directory = storage.path(output) if output else report_dir(cfg.client_id, run_id)
        return p, write_report(report, directory)


def suggestion_section(s: dict) -> Section:
    """The suggested rubric: weights by field, its out-of-sample back-test next to the current
    rubric's, the caveat and the YAML (as a table of lines, so the CSV holds it too)."""
    title = "Suggested rubric from history"
    if s["status"] != "ok":
        return empty_section(title, s["message"])
    fields = pd.DataFrame([{"vector": f["vector"], "field": f["field"], "weight": f["weight"], "known for": f["coverage"],
                            "best segments": ", ".join(t["segment"] for t in f["top_segments"])} for f in s["fields"]])  # fmt: skip
    weights = charts.bar(fields["vector"], fields["weight"], title="Suggested weights (points out of 100)",
                         xlabel="points", ylabel="vector", unit="count", horizontal=True)  # fmt: skip
    keys = [("t1_rate", f"T1 {s['rate_label']}"), ("t3_rate", f"T3 {s['rate_label']}"), ("lift_t1_t3", "T1/T3 lift"),
            ("share_in_t1", "share of outcomes in T1"), ("recall_t1_t2", "captured by T1+T2")]  # fmt: skip
    compare = pd.DataFrame({"measure": [label for _, label in keys],
                            "suggested (out of sample)": [s["suggested"].get(k) for k, _ in keys],
                            "current": [s["current"].get(k) for k, _ in keys]})  # fmt: skip
    findings = [Finding(s["caveat"], "warn")] if s["caveat"] else []
    c = s["comparison"]
    findings.append(Finding(f"out of sample ({s['cross_validation']['method']}), the suggestion's T1/T3 lift is "
                            f"{c['lift_t1_t3'] or 'not comparable'} and its T1 share {c['share_in_t1'] or 'not comparable'} "
                            "than the current rubric's", "info"))  # fmt: skip
    findings.append(Finding("nothing is written: copy what you accept into the client YAML", "info"))
    yaml_lines = pd.DataFrame({"yaml": s["yaml"].rstrip().splitlines()})
    return Section(
        title,
        lead=f"Learned from {s['rows']:,} rows ({s['positives']:,} positive outcomes); weights proportional to how much "
        f"each field's segments lift the {s['rate_label']}; thresholds for a 10%/25%/35% tier mix.",
        charts=[weights],
        findings=findings,
        tables=[Table("suggested_weights", "Suggested weights", fields, {"weight": "count", "known for": "pct"}),
                Table("suggested_vs_current", "Back-test: suggested (out of sample) vs current", compare, {}),
                Table("suggested_yaml", "Suggested rubric (YAML)", yaml_lines, {})],
    )  # fmt: skip
