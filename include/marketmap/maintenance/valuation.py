"""The twice-yearly valuation check (won deal value vs valuation) and applying a refit."""

from __future__ import annotations

from marketmap.maintenance.run import MaintenanceRun, Outcome


def apply_valuation(r: MaintenanceRun) -> Outcome:
    """Only with param apply_valuation: apply the refitted coefficients and re-score (recorded in runs)."""
    from marketmap.analysis.valuation_drift import (
        effective_config,
        record_calibration,
        valuation_report,
        won_vs_valuation,
    )
    from marketmap.scoring.pipeline import score_accounts, value_accounts

    if not r.params.get("apply_valuation", False):
        return Outcome({"applied": False, "reason": "param apply_valuation is false"})
    report = valuation_report(r.cfg, won_vs_valuation(r.cfg, r.engine, r.as_of))
    if not report.get("proposal"):
        return Outcome({"applied": False, "reason": "no won deals or no coefficient method to refit"})
    summary = record_calibration(r.engine, r.cfg, r.run_id, r.now, report)
    cfg = effective_config(r.base_cfg, r.engine)
    s = score_accounts(cfg, r.engine, r.run_id, r.as_of)
    v = value_accounts(cfg, r.engine, r.run_id)
    return Outcome({"applied": True, **summary, "scores_written": s["written"], "values_written": v["written"]})


def valuation_check(r: MaintenanceRun) -> Outcome:
    """Won deal value vs valuation at the time: median abs % error and bias, overall and by tier; refit proposal."""
    from marketmap.analysis.valuation_drift import (
        last_calibration,
        valuation_alerts,
        valuation_report,
        won_vs_valuation,
    )
    from marketmap.reports import segments

    # after an applied calibration: the new coefficients, measured on deals closed since
    cal = last_calibration(r.engine, r.cfg.client_id)
    report = valuation_report(r.cfg, won_vs_valuation(r.cfg, r.engine, r.as_of), cal)
    report["segment_report"] = segments.write(r.cfg, r.engine, r.run_id, r.report_dir())
    path = r.write_json("valuation.json", report)
    return Outcome({"deals": report.get("deals", 0), "mdape": report.get("mdape")},
                   valuation_alerts(r.cfg, report, path), {"valuation_divergence"}, path)  # fmt: skip
