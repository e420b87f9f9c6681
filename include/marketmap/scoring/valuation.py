"""Valuation: potential ARR per account, white space for customers, calibration.

Methods (SPEC section 5), each a column ``val_<method>`` (NaN when its inputs are unknown):

* ``revenue``: ``annual_revenue * revenue_coefficient``;
* ``headcount``: ``employees * seat_price * penetration``; a head count or revenue the export gave
  as a band (``20 - 49``, ``10,000+``, ``$1M-$5M``) enters as its representative value: the
  midpoint of a closed band, the low end of an open-ended one (ingest/bands.py; the band's ends
  are kept in ``employees_low/high``, ``annual_revenue_low/high``);
* ``product``: ``accounts[product_field] * product_coefficient`` (a numeric volume);
* ``like_accounts``: median ``current_arr`` of the k most similar existing customers
  (``current_arr > 0``), never counting the account itself;
* ``extrapolation``: average won-deal amount of the account's employee segment
  (1-10, 11-50, 51-200, 201-500, 501-1000, 1000+); a segment without won deals uses
  the overall average.

Zero or negative employees / revenue / product volume and won deals of 0 are treated as
unknown: CRMs store "not filled in" as 0 far more often than a company truly has no staff
or revenue. A non-numeric product field (e.g. a funding stage name) values nothing.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from marketmap.config import ValuationConfig

EMPLOYEE_SEGMENTS = ("1-10", "11-50", "51-200", "201-500", "501-1000", "1000+")
_SEGMENT_UPPER = np.array([10, 50, 200, 500, 1000], dtype=float)  # inclusive upper bounds
INDUSTRY_MISMATCH = 1.0  # distance penalty (in standard deviations) for a different/unknown industry
_CHUNK_CELLS = 200_000  # accounts x customers per block: ~1.6 MB per float64 array, stays in L2 cache


def _positive(accounts: pd.DataFrame, field: str | None) -> np.ndarray:
    """A column as float, NaN when missing, unparseable, zero or negative."""
    if field is None or field not in accounts.columns:
        return np.full(len(accounts), np.nan)
    v = pd.to_numeric(accounts[field], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(v > 0, v, np.nan)


def employee_segment(employees: pd.Series | np.ndarray | list) -> np.ndarray:
    """Segment index into ``EMPLOYEE_SEGMENTS`` per value; -1 when unknown (NaN, < 1)."""
    e = pd.to_numeric(pd.Series(employees), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    seg = np.searchsorted(_SEGMENT_UPPER, e, side="left")
    return np.where(e >= 1, seg, -1)


def _extrapolation(accounts: pd.DataFrame, won_deals: pd.DataFrame | None) -> np.ndarray:
    out = np.full(len(accounts), np.nan)
    if won_deals is None or won_deals.empty:
        return out
    deals = won_deals
    if "employees" not in deals.columns and {"account_key", "employees"} <= set(accounts.columns):
        size = accounts.drop_duplicates("account_key").set_index("account_key")["employees"]
        deals = deals.assign(employees=deals["account_key"].map(size))
    amount = pd.to_numeric(deals["amount"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    amount = np.where(amount > 0, amount, np.nan)  # a won deal of 0 is a deal without an amount
    seg = employee_segment(deals.get("employees", pd.Series(np.nan, index=deals.index)))
    ok = ~np.isnan(amount)
    if not ok.any():
        return out
    overall = amount[ok].mean()  # deals of unknown size still count towards the overall average
    table = np.array(
        [
            amount[ok & (seg == s)].mean() if (ok & (seg == s)).any() else overall
            for s in range(len(EMPLOYEE_SEGMENTS))
        ]
    )
    acc_seg = (
        employee_segment(accounts["employees"]) if "employees" in accounts.columns else np.full(len(out), -1)
    )
    known = acc_seg >= 0
    out[known] = table[acc_seg[known]]
    # An account of unknown size gets the all-segment average: an estimate, not a blank
    # valuation that would fail the QA gate for a field enrichment may never fill.
    out[~known] = overall
    return out


def _masked_median(values: np.ndarray) -> np.ndarray:
    """Row-wise median over the non-NaN entries of a 2-D array (NaN when a row has none)."""
    s = np.sort(values, axis=1)  # NaN sorts last
    cnt = (~np.isnan(values)).sum(axis=1)
    lo = np.take_along_axis(s, np.maximum((cnt - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(s, (cnt // 2 * (cnt > 0))[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        return np.where(cnt > 0, (lo + hi) / 2, np.nan)


def _industry_codes(accounts: pd.DataFrame) -> np.ndarray:
    """Industry as an integer code, trimmed and case-insensitive; -1 unknown."""
    if "industry" not in accounts.columns:
        return np.full(len(accounts), -1)
    codes, uniques = pd.factorize(accounts["industry"])
    norm = [u.strip().casefold() if isinstance(u, str) else "" for u in uniques]
    norm_codes, _ = pd.factorize(np.array(norm + [""], dtype=object))
    blank = norm_codes[-1]
    table = np.where(norm_codes == blank, -1, norm_codes)  # last entry serves code -1
    return table[codes]


def _like_accounts(accounts: pd.DataFrame, k: int) -> np.ndarray:
    """Median ARR of the k nearest customers on standardised log size, industry match as a bonus.

    Distance = RMS difference of standardised ``log1p(employees)`` and ``log1p(annual_revenue)``
    over the features both accounts know, plus ``INDUSTRY_MISMATCH`` when the industries differ
    (or either is unknown). An account knowing neither feature gets NaN; results are
    deterministic (for k <= 8, ties go to the customer that comes first). Computed in small
    blocks of accounts, on every core (numpy releases the GIL), so memory stays at a few MB per
    core whatever the number of accounts.
    """
    n = len(accounts)
    out = np.full(n, np.nan)
    arr = _positive(accounts, "current_arr")
    feats = np.column_stack(
        [np.log1p(_positive(accounts, "employees")), np.log1p(_positive(accounts, "annual_revenue"))]
    )
    with np.errstate(all="ignore"):
        mu, sd = np.nanmean(feats, axis=0), np.nanstd(feats, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    z = (feats - mu) / sd
    known = (~np.isnan(z)).astype(float)
    z = np.nan_to_num(z)
    ind = _industry_codes(accounts)

    cust = np.flatnonzero(~np.isnan(arr) & (known.sum(axis=1) > 0))
    if len(cust) == 0:
        return out
    wc, zc = known[cust], z[cust]
    ic, vc = np.where(ind[cust] < 0, -2, ind[cust]), arr[cust]  # unknown never equals unknown (-1 vs -2)
    all_known = bool(wc.all())
    own = np.full(n, -1)
    own[cust] = np.arange(len(cust))
    kk = min(k, len(cust))

    def block(start: int, stop: int) -> None:
        # elementwise on cache-sized blocks; a BLAS product would start threads of its own
        wa, za = known[start:stop], z[start:stop]
        full = all_known and bool(wa.all())
        dist = np.zeros((stop - start, len(cust)))
        tmp = np.empty_like(dist)
        cnt = None if full else np.zeros_like(dist)
        for j in range(z.shape[1]):
            np.subtract(za[:, j, None], zc[None, :, j], out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            if cnt is not None:
                both = wa[:, j, None] * wc[None, :, j]  # count only features both accounts know
                tmp *= both
                cnt += both
            dist += tmp
        if cnt is None:
            dist /= z.shape[1]
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                dist /= cnt
            dist[cnt == 0] = np.inf
        np.sqrt(dist, out=dist)
        dist += INDUSTRY_MISMATCH * (ind[start:stop, None] != ic[None, :])
        mine = np.flatnonzero(own[start:stop] >= 0)
        dist[mine, own[start:stop][mine]] = np.inf  # never value a customer by itself
        rows = np.arange(stop - start)
        vals = np.empty((stop - start, kk))
        if kk <= 8:  # a few argmin passes beat a per-row argpartition for small k
            for t in range(kk):
                j = np.argmin(dist, axis=1)
                vals[:, t] = np.where(np.isfinite(dist[rows, j]), vc[j], np.nan)
                dist[rows, j] = np.inf
        else:
            if kk < len(cust):
                idx = np.argpartition(dist, kk - 1, axis=1)[:, :kk]
            else:
                idx = np.broadcast_to(np.arange(kk), (stop - start, kk))
            vals = np.where(np.isfinite(np.take_along_axis(dist, idx, axis=1)), vc[idx], np.nan)
        out[start:stop] = _masked_median(vals)

    step = max(16, _CHUNK_CELLS // len(cust))
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 4)) as pool:
        list(pool.map(lambda s: block(s, min(s + step, n)), range(0, n, step)))
    return out


def value_accounts(
    accounts: pd.DataFrame, cfg: ValuationConfig, won_deals: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Value every account with the configured methods and combine them.

    Args:
        accounts: canonical account columns (``employees``, ``annual_revenue``,
            ``industry``, ``current_arr`` ...).
        cfg: the client's valuation config.
        won_deals: closed-won deals (``account_key``, ``amount``, ``employees``) for the
            extrapolation method; ``employees`` is looked up from ``accounts`` by
            ``account_key`` when the column is absent.

    Returns:
        Same index as ``accounts``: ``account_key`` (if given), ``val_<method>`` per
        configured method, ``valuation`` (combined over the non-NaN methods, clipped to
        [min_value, max_value], rounded to whole units; NaN when no method applies),
        ``valuation_methods`` (comma-joined methods that contributed), ``current_arr``
        and ``white_space`` (``max(valuation - current_arr, 0)`` for customers, NaN for
        prospects).
    """
    n = len(accounts)
    methods: dict[str, np.ndarray] = {}
    for m in cfg.methods:
        if m == "revenue":
            methods[m] = _positive(accounts, "annual_revenue") * cfg.revenue_coefficient
        elif m == "headcount":
            methods[m] = _positive(accounts, "employees") * cfg.seat_price * cfg.penetration
        elif m == "product":
            methods[m] = _positive(accounts, cfg.product_field) * cfg.product_coefficient
        elif m == "like_accounts":
            methods[m] = _like_accounts(accounts, cfg.like_accounts_k)
        elif m == "extrapolation":
            methods[m] = _extrapolation(accounts, won_deals)

    names = list(methods)
    stack = np.column_stack([methods[m] for m in names]) if n else np.empty((0, len(names)))
    avail = ~np.isnan(stack)
    if cfg.combine == "first":
        first = np.argmax(avail, axis=1)
        used = np.zeros_like(avail)
        used[np.arange(n), first] = avail[np.arange(n), first]
        value = np.where(used.any(axis=1), stack[np.arange(n), first], np.nan)
    elif cfg.combine == "mean":
        used = avail
        with np.errstate(invalid="ignore"):
            value = np.where(avail, stack, 0.0).sum(axis=1) / avail.sum(axis=1)
    else:
        used = avail
        value = _masked_median(stack)
    value = np.round(np.clip(value, cfg.min_value, np.inf if cfg.max_value is None else cfg.max_value))

    bits = np.zeros(n, dtype=np.int64)
    for j in range(len(names)):
        bits |= used[:, j].astype(np.int64) << j
    codes, uniques = pd.factorize(bits)
    labels = pd.array(
        [",".join(nm for j, nm in enumerate(names) if b >> j & 1) for b in uniques] or [""], dtype="str"
    )

    current = _positive(accounts, "current_arr")
    out: dict[str, object] = {}
    if "account_key" in accounts.columns:
        out["account_key"] = accounts["account_key"].array  # no round trip through Python objects
    for m in names:
        out[f"val_{m}"] = methods[m]
    out["valuation"] = value
    out["valuation_methods"] = labels.take(codes)  # a take: no per-row string conversion
    out["current_arr"] = current
    out["white_space"] = np.where(np.isnan(current), np.nan, np.maximum(value - current, 0.0))
    return pd.DataFrame(out, index=accounts.index)


def calibration_report(valued: pd.DataFrame, actual_col: str = "current_arr") -> dict:
    """Compare valuations with the actual ARR of existing customers (SPEC 5, seed 000).

    The formula is trusted (``ok``) when at least 10 customers can be compared and at
    least 70% of them are valued within 30% of their actual ARR.

    Returns:
        A JSON-serialisable dict: ``n`` (customers compared), ``n_unvalued`` (customers
        without a valuation), ``within_20`` / ``within_30`` (shares), ``median_abs_pct_error``,
        ``bias`` (median signed % error; positive = over-estimates), ``ok``, ``message`` and
        ``customers`` (account_key, estimate, actual, pct_error; largest error first).
        Percentages are fractions (0.25 = 25%).
    """
    actual = pd.to_numeric(valued[actual_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    estimate = pd.to_numeric(valued["valuation"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    customer = actual > 0
    both = customer & ~np.isnan(estimate)
    err = (estimate[both] - actual[both]) / actual[both]
    abs_err = np.abs(err)
    n = int(both.sum())
    keys = valued["account_key"].to_numpy()[both] if "account_key" in valued.columns else valued.index[both]

    def share(limit: float) -> float | None:
        return float(np.mean(abs_err <= limit + 1e-12)) if n else None

    report = {
        "n": n,
        "n_unvalued": int(customer.sum()) - n,
        "within_20": share(0.20),
        "within_30": share(0.30),
        "median_abs_pct_error": float(np.median(abs_err)) if n else None,
        "bias": float(np.median(err)) if n else None,
    }
    if n < 10:
        report["ok"] = False
        report["message"] = f"not enough customers to calibrate: {n} with actual ARR and a valuation, need 10"
    else:
        report["ok"] = report["within_30"] >= 0.7
        verdict = "calibrated" if report["ok"] else "not calibrated"
        report["message"] = (
            f"{verdict}: {report['within_30']:.0%} of {n} customers within 30% of actual ARR (target 70%), "
            f"{report['within_20']:.0%} within 20%; median error {report['median_abs_pct_error']:.0%}, "
            f"bias {report['bias']:+.0%}"
        )
    order = np.argsort(-abs_err, kind="stable")
    report["customers"] = [
        {
            "account_key": keys[i].item() if hasattr(keys[i], "item") else keys[i],
            "estimate": float(estimate[both][i]),
            "actual": float(actual[both][i]),
            "pct_error": float(err[i]),
        }
        for i in order
    ]
    return report
