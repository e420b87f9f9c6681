"""Valuation recalibration: won deal value against the account's valuation at the time.

For won new-business deals closed in the trailing year (and after the last applied
calibration, which changed the formula), it reports the median absolute % error
(MdAPE, ``|valuation - amount| / amount``) and the bias (median signed error: positive
means the valuation over-estimates) overall and by tier. Seed 000 asks estimates to be
within 20-30% of actual ARR; beyond ``maintenance.valuation_divergence`` (30%) the rule
fires — only with at least ``MIN_DEALS`` deals and when the distribution-free
``confidence`` interval of the median error (binomial order statistics) lies wholly
above the threshold.

The proposal: scale every coefficient of the configured methods by the median of
``amount / valuation`` (a robust refit of a multiplicative formula: valuations scale with
the coefficients). The report shows that the refit fits: the error of the current AND
the proposed coefficients on the same deals, and — with at least ``2 * MIN_DEALS``
deals — on held-out deals (scale fitted on the earlier half by close date, both
formulas measured on the later half). After a calibration is applied, the next check
measures the new coefficients on deals closed since then only, next to the error the
calibration expected (``since_calibration``). Applying it is a
manual run with ``apply_valuation=true``; it is recorded as a ``runs`` row (pipeline
``valuation_calibration``) that :func:`effective_config` applies to the client config.
"""

from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from marketmap import units
from marketmap.alerts.rules import Alert
from marketmap.config import ClientConfig
from marketmap.warehouse import schema as t

MIN_DEALS = 10
WINDOW_DAYS = 365
CALIBRATION_PIPELINE = "valuation_calibration"
COEFFICIENTS = {
    "revenue": ("revenue_coefficient",),
    "headcount": ("seat_price",),
    "product": ("product_coefficient",),
}


def median_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (normal approx. of the binomial)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    lo = max(int(math.floor(n / 2 - z * math.sqrt(n) / 2)), 0)
    hi = min(int(math.ceil(n / 2 + z * math.sqrt(n) / 2)), n - 1)
    return (float(x[lo]), float(x[hi]))


def last_calibration(engine: Engine, client_id: str) -> dict | None:
    """The latest applied calibration: ``{"run_id", "at", "scale", "coefficients"}``."""
    r = t.runs.c
    with engine.connect() as conn:
        row = conn.execute(
            select(t.runs).where(r.client_id == client_id, r.pipeline == CALIBRATION_PIPELINE, r.status == "applied")
            .order_by(r.logical_date.desc()).limit(1)
        ).first()  # fmt: skip
    if row is None:
        return None
    return {"run_id": row.run_id, "at": row.logical_date, **(row.summary or {})}


def effective_config(cfg: ClientConfig, engine: Engine) -> ClientConfig:
    """The client config with the last applied valuation calibration on top (if any)."""
    cal = last_calibration(engine, cfg.client_id)
    if not cal or not cal.get("coefficients"):
        return cfg
    return cfg.model_copy(update={"valuation": cfg.valuation.model_copy(update=cal["coefficients"])})


def proposal(cfg: ClientConfig, scale: float) -> dict[str, float]:
    """New coefficients: each configured coefficient times ``scale``."""
    v = cfg.valuation
    out = {}
    for method in v.methods:
        for name in COEFFICIENTS.get(method, ()):
            if getattr(v, name) is not None:
                out[name] = round(getattr(v, name) * scale, 6)
    return out


def won_vs_valuation(cfg: ClientConfig, engine: Engine, as_of: dt.date) -> pd.DataFrame:
    """Won new-business deals of the window with their account's valuation and tier.

    The valuation at the time is the one of the formula in force at the close: only deals
    closed since the last applied calibration count, valued by the current formula (the
    warehouse keeps one valuation per account and formula version, not its daily history).
    """
    from marketmap.analysis.correlation import prepare_deals
    from marketmap.scoring.pipeline import read_opportunities, read_scores, rubric_version

    cid = cfg.client_id
    empty = pd.DataFrame(columns=["account_key", "amount", "valuation", "tier", "close_date"])
    opps = read_opportunities(engine, cid)
    if opps.empty:
        return empty
    deals = prepare_deals(opps)
    deals["close_date"] = pd.to_datetime(opps["close_date"], errors="coerce").dt.date
    start = as_of - dt.timedelta(days=WINDOW_DAYS)
    cal = last_calibration(engine, cid)
    if cal and cal.get("at"):
        start = max(start, pd.Timestamp(cal["at"]).date())
    deals = deals[
        deals["won"] & (deals["kind"] == "new") & (deals["amount"] > 0) & deals["close_date"].notna()
    ]
    deals = deals[(deals["close_date"] > start) & (deals["close_date"] <= as_of)]
    scores = read_scores(engine, cid, rubric_version(cfg), cfg.icp.rubrics[0].product)
    if deals.empty or scores.empty:
        return empty
    out = deals.merge(scores[["account_key", "valuation", "tier"]], on="account_key", how="inner")
    out = out[["account_key", "amount", "valuation", "tier", "close_date"]]
    return out[out["valuation"].notna() & (out["valuation"] > 0)].reset_index(drop=True)


def _stats(d: pd.DataFrame, confidence: float) -> dict:
    err = (d["valuation"] - d["amount"]) / d["amount"]
    ape = err.abs().to_numpy()
    lo, hi = median_ci(ape, confidence)
    return {
        "deals": int(len(d)),
        "mdape": round(float(np.median(ape)), 4),
        "mdape_ci": (round(lo, 4), round(hi, 4)),
        "bias": round(float(np.median(err)), 4),
        "median_actual": round(float(d["amount"].median()), 2),
        "median_valuation": round(float(d["valuation"].median()), 2),
        "scale": round(float(np.median(d["amount"] / d["valuation"])), 4),
    }


def _mdape(amount: pd.Series, valuation: pd.Series) -> dict:
    err = (valuation - amount) / amount
    return {"mdape": round(float(err.abs().median()), 4), "bias": round(float(err.median()), 4)}


def fit_check(deals: pd.DataFrame, scale: float) -> dict:
    """Error of the current and the proposed coefficients on the same deals, and on held-out deals."""
    out = {"in_sample": {"deals": int(len(deals)), "current": _mdape(deals["amount"], deals["valuation"]),
                         "proposed": _mdape(deals["amount"], deals["valuation"] * scale)}}  # fmt: skip
    if len(deals) < 2 * MIN_DEALS or "close_date" not in deals:
        out["held_out"] = {"skipped": f"fewer than {2 * MIN_DEALS} deals: no held-out check"}
        return out
    d = deals.assign(_c=pd.to_datetime(deals["close_date"], errors="coerce")).sort_values(["_c", "amount"])
    half = len(d) // 2
    train, test = d.iloc[:half], d.iloc[half:]
    s = float(np.median(train["amount"] / train["valuation"]))
    out["held_out"] = {"fit_deals": int(len(train)), "test_deals": int(len(test)), "scale": round(s, 4),
                       "test_from": str(test["_c"].min().date()), "test_to": str(test["_c"].max().date()),
                       "current": _mdape(test["amount"], test["valuation"]),
                       "proposed": _mdape(test["amount"], test["valuation"] * s)}  # fmt: skip
    return out


def valuation_report(cfg: ClientConfig, deals: pd.DataFrame, calibration: dict | None = None) -> dict:
    """MdAPE and bias overall and by tier, with the refit proposal and how well it fits.

    Args:
        calibration: the last applied calibration (:func:`last_calibration`), when there is
            one: the deals are then those closed since, measured with the new coefficients.
    """
    conf = cfg.maintenance.confidence
    out: dict = {"deals": int(len(deals)), "by_tier": {}}
    if calibration:
        out["since_calibration"] = {
            "applied_at": str(calibration.get("at")), "coefficients": calibration.get("coefficients"),
            "expected_mdape": calibration.get("mdape_expected"), "mdape_before": calibration.get("mdape_before"),
            "measured_on": f"{len(deals)} won deals closed since the calibration",
        }  # fmt: skip
    if len(deals) == 0:
        return out
    out |= _stats(deals, conf)
    out["by_tier"] = {tier: _stats(g, conf) for tier, g in deals.groupby("tier") if len(g)}
    out["proposal"] = proposal(cfg, out["scale"])
    out["fit"] = fit_check(deals, float(np.median(deals["amount"] / deals["valuation"])))
    return out


def _fit_text(report: dict) -> str:
    f = report.get("fit") or {}
    ins, ho = f.get("in_sample"), f.get("held_out") or {}
    if not ins:
        return ""
    text = (
        f" On the same {ins['deals']} deals the current coefficients are {ins['current']['mdape']:.0%} off "
        f"(median), the proposed {ins['proposed']['mdape']:.0%}."
    )
    if "current" in ho:
        text += (
            f" Held out ({ho['test_deals']} later deals, scale fitted on the {ho['fit_deals']} before): "
            f"current {ho['current']['mdape']:.0%}, proposed {ho['proposed']['mdape']:.0%} off."
        )
    else:
        text += f" {ho.get('skipped', '')}."
    better = ho.get("proposed", ins["proposed"])["mdape"] < ho.get("current", ins["current"])["mdape"]
    if not better:
        text += " The refit does not fit better: do not apply it."
    return text


def _since_text(report: dict) -> str:
    c = report.get("since_calibration")
    if not c:
        return ""
    exp = c.get("expected_mdape")
    return f" Coefficients applied {c['applied_at'][:10]}; measured on {c['measured_on']}" + (
        f" (the calibration expected {exp:.0%} off)." if exp is not None else "."
    )


def valuation_alerts(cfg: ClientConfig, report: dict, report_path: str | None = None) -> list[Alert]:
    """``valuation_divergence`` when estimates diverge from won values beyond the threshold.

    Below the threshold a cleared candidate carries the current numbers (an open alert
    resolves with them); with no won deals to measure there is nothing to say.
    """
    limit = cfg.maintenance.valuation_divergence
    n = report.get("deals", 0)
    if n == 0:
        return []
    lo, hi = report["mdape_ci"]
    fit = report.get("fit") or {}
    ins, ho = fit.get("in_sample") or {}, fit.get("held_out") or {}
    numbers = {"won_deals": n, "median_error_current": report["mdape"],
               "median_error_interval": f"{lo:.0%}–{hi:.0%}", "bias": report["bias"],
               "median_won_value": units.money(report["median_actual"], units.client_currency(cfg)),
               "median_valuation": units.money(report["median_valuation"], units.client_currency(cfg))}  # fmt: skip
    if report["mdape"] <= limit:
        return [Alert(
            client_id=cfg.client_id, rule="valuation_divergence", role="leadership", severity="warning",
            key="overall", cleared=True, report=report_path, numbers=numbers,
            title=(f"Valuations are {report['mdape']:.0%} off won deal values (median of {n} deals), within "
                   f"the {limit:.0%} limit."),
            material={"mdape": report["mdape"], "bias": report["bias"]},
            confidence=(f"{cfg.maintenance.confidence:.0%} interval of the median error {lo:.0%}–{hi:.0%} "
                        f"(order statistics, n={n})." + _since_text(report)),
        )]  # fmt: skip
    firing = n >= MIN_DEALS and lo > limit
    direction = "over-estimates" if report["bias"] > 0 else "under-estimates"
    tiers = {
        k: f"{v['mdape']:.0%} (bias {v['bias']:+.0%}, n={v['deals']})" for k, v in report["by_tier"].items()
    }
    coeffs = ", ".join(f"{k} {getattr(cfg.valuation, k):g} → {v:g}" for k, v in report["proposal"].items())
    if ins:
        numbers["median_error_proposed"] = ins["proposed"]["mdape"]
    if "current" in ho:
        numbers["held_out_error_current"] = ho["current"]["mdape"]
        numbers["held_out_error_proposed"] = ho["proposed"]["mdape"]
    numbers |= {"by_tier": tiers, "proposed_scale": f"{report['scale']:.2f}×",
                "proposed_coefficients": coeffs or "no coefficient method (like-accounts/extrapolation follow won deals)"}  # fmt: skip
    evidence = (f"{cfg.maintenance.confidence:.0%} interval of the median error {lo:.0%}–{hi:.0%} "
                f"(order statistics, n={n})" + (f" lies above {limit:.0%}." if firing else
                                               f"; an alert needs it wholly above {limit:.0%} and {MIN_DEALS}+ deals."))  # fmt: skip
    proposed_text = ""
    if ins:
        proposed_text = (
            f" The proposed coefficients would be {ins['proposed']['mdape']:.0%} off on the same deals"
        )
        proposed_text += f" ({ho['proposed']['mdape']:.0%} on held-out deals)." if "current" in ho else "."
    return [Alert(
        client_id=cfg.client_id, rule="valuation_divergence", role="leadership", severity="warning",
        key="overall", holding=not firing, report=report_path,
        title=(f"Valuations are {report['mdape']:.0%} off won deal values (median of {n} deals), beyond {limit:.0%}: "
               f"the formula {direction} by {abs(report['bias']):.0%}.{proposed_text}"),
        numbers=numbers,
        material={"mdape": report["mdape"], "bias": report["bias"]},
        confidence=evidence + _fit_text(report) + _since_text(report),
        next_steps=_valuation_steps(report),
    )]  # fmt: skip


def _valuation_steps(report: dict) -> list[str]:
    """What to do, with the exact YAML change that makes an applied calibration permanent."""
    from marketmap.alerts.rules import NEXT_STEPS

    steps = list(NEXT_STEPS["valuation_divergence"])
    if report.get("proposal"):
        yaml_lines = ", ".join(f"`valuation.{k}: {v:g}`" for k, v in report["proposal"].items())
        steps.append(f"To make it permanent, set {yaml_lines} in the client YAML (until then the applied "
                     "calibration is an overlay the build, preview, reports and portfolio all use).")  # fmt: skip
    return steps


def record_calibration(
    engine: Engine, cfg: ClientConfig, run_id: str, logical_date: dt.datetime, report: dict
) -> dict:
    """Record an applied calibration (idempotent per run)."""
    from marketmap.warehouse import upsert

    fit = report.get("fit") or {}
    expected = (
        (fit.get("held_out") or {}).get("proposed") or (fit.get("in_sample") or {}).get("proposed") or {}
    )
    summary = {"scale": report["scale"], "coefficients": report["proposal"], "mdape_before": report["mdape"],
               "mdape_expected": expected.get("mdape"), "deals": report["deals"], "fit": fit}  # fmt: skip
    with engine.begin() as conn:
        upsert(conn, t.runs, [{"client_id": cfg.client_id, "run_id": f"{CALIBRATION_PIPELINE}:{run_id}",
                               "pipeline": CALIBRATION_PIPELINE, "logical_date": logical_date,
                               "started_at": dt.datetime.now(dt.UTC), "finished_at": dt.datetime.now(dt.UTC),
                               "status": "applied", "summary": summary}])  # fmt: skip
    return summary
