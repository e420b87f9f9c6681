"""Benchmark: score + tier + value 1M accounts three ways, and check they agree.

    .venv/bin/python bench/bench_scoring.py [--rows N] [--apply-rows M] [--seed S]

(a) Market Map's vectorised ``score_rubric`` + ``value_accounts`` (numeric part, and with
    explanations); (b) a row-by-row ``DataFrame.apply(axis=1)`` interpretation of the same
    rubric, as an analyst would write it: the ORACLE; (c) the rubric compiled to ONE DuckDB
    SQL query over the same in-memory frame. Scores, tiers, exclusions and valuations must be
    identical across all three (on the ``--apply-rows`` subset for the oracle).

Peak memory is the process's peak resident set (Linux ``VmHWM``), reset before each phase
by writing 5 to ``/proc/self/clear_refs``, minus the resident set at the phase start; where
that reset is not possible it falls back to ``resource.getrusage().ru_maxrss`` (whole-run peak).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import resource
import statistics
import time

import duckdb
import numpy as np
import pandas as pd

from marketmap.config import Rubric, ValuationConfig
from marketmap.scoring.fit import EPS, months_before, score_rubric
from marketmap.scoring.valuation import EMPLOYEE_SEGMENTS, value_accounts

RUN_DATE = dt.date(2026, 3, 2)

COUNTRIES = [
    "United States",
    "Canada",
    "United Kingdom",
    "Germany",
    "France",
    "Australia",
    "India",
    "Brazil",
    "Japan",
    "Netherlands",
    "Spain",
    "Sweden",
    "Mexico",
    "Singapore",
    "Ireland",
]
INDUSTRIES = [
    "Software",
    "Technology",
    "Financial Services",
    "Professional Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Government",
    "Media",
    "Logistics",
    "Energy",
    "Telecommunications",
    "Real Estate",
    "Non-Profit",
]
TECHS = [
    "Salesforce",
    "HubSpot",
    "Snowflake",
    "Segment",
    "Marketo",
    "Outreach",
    "Gong",
    "Zendesk",
    "Slack",
    "Jira",
    "Oracle",
    "SAP",
]
STAGES = ["Seed", "Series A", "Series B", "Series C", "Series D+", "Public", "Bootstrapped"]


# --------------------------------------------------------------------------- data + rubric


def make_accounts(n: int, seed: int) -> pd.DataFrame:
    """Synthetic accounts with skewed, realistic-looking distributions and ~5-15% gaps."""
    rng = np.random.default_rng(seed)

    def pick(values, p_missing, zipf=1.1):
        w = 1 / np.arange(1, len(values) + 1) ** zipf
        arr = np.array(values, dtype=object)[rng.choice(len(values), n, p=w / w.sum())]
        arr[rng.random(n) < p_missing] = None
        return arr

    employees = np.round(rng.lognormal(4.5, 1.6, n))
    employees[rng.random(n) < 0.08] = np.nan
    revenue = np.round(employees * rng.lognormal(11.8, 0.6, n), -3)
    revenue[rng.random(n) < 0.15] = np.nan
    funding = pd.Timestamp(RUN_DATE) - pd.to_timedelta(rng.integers(-60, 6 * 365, n), unit="D")
    funding = funding.where(rng.random(n) > 0.35)
    n_tech = rng.integers(0, 5, n)
    tech_idx = rng.choice(len(TECHS), (n, 4), p=(w := 1 / np.arange(1, len(TECHS) + 1)) / w.sum())
    combos = {}
    tech = np.empty(n, dtype=object)
    for i in range(n):  # join tokens once per distinct combination, not per row
        k = (n_tech[i], *tech_idx[i, : n_tech[i]])
        if k not in combos:
            combos[k] = ";".join(dict.fromkeys(TECHS[j] for j in k[1:])) if k[0] else None
        tech[i] = combos[k]
    flags = np.array([True, False, None], dtype=object)
    return pd.DataFrame(
        {
            "account_key": [f"acc{i:07d}" for i in range(n)],
            "country": pick(COUNTRIES, 0.05),
            "employees": employees,
            "annual_revenue": revenue,
            "industry": pick(INDUSTRIES, 0.07, zipf=0.7),
            "last_funding_date": funding,
            "tech_stack": tech,
            "funding_stage": pick(STAGES, 0.3, zipf=0.5),
            "is_b2b": flags[rng.choice(3, n, p=[0.6, 0.3, 0.1])],
            "hiring_sales": np.array(["yes", "no", None], dtype=object)[rng.choice(3, n, p=[0.3, 0.5, 0.2])],
            "web_visits": np.where(rng.random(n) < 0.2, np.nan, np.round(rng.lognormal(8, 2, n))),
            "is_partner": flags[rng.choice(3, n, p=[0.03, 0.87, 0.1])],
            "account_type": pick(["Prospect", "Customer", "Competitor", "Partner"], 0.1, zipf=3),
            "churned": flags[rng.choice(3, n, p=[0.02, 0.9, 0.08])],
            # ~200 existing customers, for the like-accounts valuation
            "current_arr": np.where(
                rng.random(n) < 200 / n, np.round(rng.lognormal(10.5, 0.7, n), -2), np.nan
            ),
        }
    )


def make_rubric() -> Rubric:
    """Ten vectors (every kind), three negative actions, seed-004 thresholds."""
    return Rubric.model_validate(
        {
            "product": "core",
            "vectors": [
                {
                    "name": "geography",
                    "kind": "categorical",
                    "field": "country",
                    "weight": 15,
                    "points": {
                        "United States": 15,
                        "Canada": 10,
                        "United Kingdom": 10,
                        "Germany": 7.5,
                        "Australia": 7.5,
                        "Netherlands": 5,
                    },
                },
                {
                    "name": "size",
                    "kind": "bands",
                    "field": "employees",
                    "weight": 15,
                    "bands": [
                        {"max": 50, "points": 2.5},
                        {"min": 50, "max": 200, "points": 10},
                        {"min": 200, "max": 2000, "points": 15},
                        {"min": 2000, "max": 10000, "points": 10},
                        {"min": 10000, "points": 5},
                    ],
                },
                {
                    "name": "revenue",
                    "kind": "bands",
                    "field": "annual_revenue",
                    "weight": 10,
                    "bands": [
                        {"min": 1e6, "max": 1e7, "points": 5},
                        {"min": 1e7, "max": 1e9, "points": 10},
                        {"min": 1e9, "points": 6},
                    ],
                },
                {
                    "name": "industry",
                    "kind": "categorical",
                    "field": "industry",
                    "weight": 15,
                    "points": {
                        "Software": 15,
                        "Technology": 15,
                        "Financial Services": 10,
                        "Professional Services": 7.5,
                        "Healthcare": 5,
                        "Media": 5,
                    },
                    "default": 1,
                },
                {
                    "name": "funding",
                    "kind": "recency",
                    "field": "last_funding_date",
                    "weight": 10,
                    "windows": [
                        {"within_months": 6, "points": 10},
                        {"within_months": 12, "points": 7.5},
                        {"within_months": 24, "points": 4},
                    ],
                },
                {
                    "name": "tech",
                    "kind": "any_of",
                    "field": "tech_stack",
                    "weight": 10,
                    "points": {"Salesforce": 10, "HubSpot": 8, "Snowflake": 6, "Segment": 4, "Gong": 4},
                },
                {
                    "name": "stage",
                    "kind": "categorical",
                    "field": "funding_stage",
                    "weight": 5,
                    "points": {"Series B": 5, "Series C": 5, "Series A": 3, "Series D+": 3},
                },
                {"name": "b2b", "kind": "boolean", "field": "is_b2b", "weight": 5, "true_points": 5},
                {
                    "name": "hiring",
                    "kind": "boolean",
                    "field": "hiring_sales",
                    "weight": 5,
                    "true_points": 5,
                    "false_points": 1,
                },
                {
                    "name": "web",
                    "kind": "bands",
                    "field": "web_visits",
                    "weight": 10,
                    "bands": [{"min": 1000, "max": 10000, "points": 5}, {"min": 10000, "points": 10}],
                },
            ],
            "negative_indicators": [
                {"name": "government", "field": "industry", "values": ["Government"], "action": "exclude"},
                {
                    "name": "competitor",
                    "field": "account_type",
                    "values": ["Competitor"],
                    "action": "exclude",
                },
                {
                    "name": "partner",
                    "field": "is_partner",
                    "is_true": True,
                    "action": "cap_tier",
                    "cap": "T3",
                },
                {
                    "name": "nonprofit",
                    "field": "industry",
                    "contains_any": ["profit", "educat"],
                    "action": "cap_tier",
                    "cap": "T2",
                },
                {"name": "churned", "field": "churned", "is_true": True, "action": "subtract", "points": 15},
            ],
            "thresholds": {"T1": 70, "T2": 50, "T3": 30},
        }
    )


VALUATION = ValuationConfig(
    methods=["revenue", "headcount", "extrapolation"],
    combine="median",
    revenue_coefficient=0.002,
    seat_price=600,
    penetration=0.08,
    max_value=2_000_000,
)


def make_won_deals(accounts: pd.DataFrame, seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    rows = accounts.sample(n, random_state=seed)
    amount = np.round(rng.lognormal(9.5, 0.8, n) * (1 + np.nan_to_num(rows["employees"].to_numpy()) / 500), 0)
    return pd.DataFrame(
        {
            "account_key": rows["account_key"].to_numpy(),
            "amount": amount,
            "employees": rows["employees"].to_numpy(),
        }
    )


# --------------------------------------------------------------------------- (b) the oracle


TRUE_WORDS, FALSE_WORDS = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}


def _text(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    if isinstance(x, bool | np.bool_):
        return "true" if x else "false"
    s = str(x).strip().lower()
    return s or None


def _flag(x):
    s = _text(x)
    return True if s in TRUE_WORDS else False if s in FALSE_WORDS else None


def make_oracle(rubric: Rubric, val: ValuationConfig, won: pd.DataFrame):
    """A per-row scorer written the straightforward way, sharing no code with Market Map."""
    cutoffs = {
        v.name: [(pd.Timestamp(months_before(RUN_DATE, w.within_months)), w.points) for w in v.windows]
        for v in rubric.vectors
        if v.kind == "recency"
    }
    lower_points = {
        v.name: {k.strip().lower(): p for k, p in v.points.items()}
        for v in rubric.vectors
        if v.kind in ("categorical", "any_of")
    }

    # the analyst's segment averages: one groupby, then a lookup per row
    def seg_of(e):
        if e is None or math.isnan(e) or e < 1:
            return None
        return 0 if e <= 10 else 1 if e <= 50 else 2 if e <= 200 else 3 if e <= 500 else 4 if e <= 1000 else 5

    won_seg = won.assign(seg=won["employees"].map(seg_of))
    overall = won["amount"].mean()
    seg_avg = [won_seg.loc[won_seg["seg"] == s, "amount"].mean() for s in range(len(EMPLOYEE_SEGMENTS))]
    seg_avg = [overall if math.isnan(a) else a for a in seg_avg]

    def score_row(row) -> tuple[float, str, bool, float]:
        total = 0
        for v in rubric.vectors:
            x = row[v.field]
            pts = 0.0
            if v.kind == "bands":
                if x is not None and not math.isnan(x):
                    for b in v.bands:
                        if (b.min is None or x >= b.min) and (b.max is None or x < b.max):
                            pts = b.points
            elif v.kind == "categorical":
                s = _text(x)
                if s is not None:
                    pts = lower_points[v.name].get(s, v.default)
            elif v.kind == "any_of":
                s = _text(x)
                if s is not None:
                    tokens = [t.strip().lower() for t in s.split(v.separator) if t.strip()]
                    found = [lower_points[v.name][t] for t in tokens if t in lower_points[v.name]]
                    pts = max(found) if found else (v.default if tokens else 0.0)
            elif v.kind == "recency":
                if not pd.isna(x):
                    pts = max([p for cutoff, p in cutoffs[v.name] if x >= cutoff], default=0.0)
            elif v.kind == "boolean":
                f = _flag(x)
                pts = v.true_points if f is True else v.false_points if f is False else 0.0
            total += pts
        excluded, cap, sub = False, 0, 0.0
        for ind in rubric.negative_indicators:
            x = row[ind.field]
            s = _text(x)
            hit = (ind.is_true and _flag(x) is True) or (
                s is not None
                and (s in [w.lower() for w in ind.values] or any(c.lower() in s for c in ind.contains_any))
            )
            if hit:
                if ind.action == "exclude":
                    excluded = True
                elif ind.action == "cap_tier":
                    cap = max(cap, {"T2": 1, "T3": 2}[ind.cap])
                else:
                    sub += ind.points
        score = max(total - sub, 0.0)
        t = rubric.thresholds
        code = 0 if score >= t.T1 - EPS else 1 if score >= t.T2 - EPS else 2 if score >= t.T3 - EPS else 3
        code = 3 if excluded else max(code, cap)

        estimates = []
        emp, rev = row["employees"], row["annual_revenue"]
        if rev > 0:
            estimates.append(rev * val.revenue_coefficient)
        if emp > 0:
            estimates.append(emp * val.seat_price * val.penetration)
        seg = seg_of(emp)
        if seg is not None:
            estimates.append(seg_avg[seg])
        value = statistics.median(estimates) if estimates else math.nan
        value = round(min(max(value, val.min_value), val.max_value)) if estimates else math.nan
        return round(score, 1), ("T1", "T2", "T3", "OUT")[code], excluded, float(value)

    return score_row


# --------------------------------------------------------------------------- (c) DuckDB SQL


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _lit(x: float) -> str:
    return f"CAST({float(x)!r} AS DOUBLE)"


def _sql_text(col: str) -> str:
    return f"NULLIF(lower(trim(CAST({col} AS VARCHAR))), '')"


def _sql_flag(col: str) -> str:
    t = ", ".join(f"'{w}'" for w in sorted(TRUE_WORDS))
    f = ", ".join(f"'{w}'" for w in sorted(FALSE_WORDS))
    return f"(CASE WHEN {_sql_text(col)} IN ({t}) THEN 1 WHEN {_sql_text(col)} IN ({f}) THEN 0 END)"


def rubric_sql(rubric: Rubric, val: ValuationConfig, table: str = "accounts", won: str = "won") -> str:
    """Compile the rubric (and the bench valuation) to one SQL query."""
    pts = []
    for v in rubric.vectors:
        c = f'"{v.field}"'
        if v.kind == "bands":
            whens = []
            for b in v.bands:
                parts = [] if b.min is None else [f"{c} >= {_lit(b.min)}"]
                parts += [] if b.max is None else [f"{c} < {_lit(b.max)}"]
                cond = " AND ".join(parts)
                whens.append(f"WHEN {cond or 'TRUE'} THEN {_lit(b.points)}")
            expr = f"CASE WHEN {c} IS NULL OR isnan({c}) THEN 0.0 {' '.join(whens)} ELSE 0.0 END"
        elif v.kind == "categorical":
            m = " ".join(f"WHEN {q(k.strip().lower())} THEN {_lit(p)}" for k, p in v.points.items())
            expr = f"CASE WHEN {_sql_text(c)} IS NULL THEN 0.0 ELSE CASE {_sql_text(c)} {m} ELSE {_lit(v.default)} END END"
        elif v.kind == "any_of":
            m = " ".join(f"WHEN {q(k.strip().lower())} THEN {_lit(p)}" for k, p in v.points.items())
            tokens = (
                f"list_filter(list_transform(string_split({_sql_text(c)}, {q(v.separator)}), "
                f"lambda t: lower(trim(t))), lambda t: t <> '')"
            )
            expr = (
                f"CASE WHEN coalesce(len({tokens}), 0) = 0 THEN 0.0 ELSE coalesce(list_max(list_transform("
                f"{tokens}, lambda t: CASE t {m} END)), {_lit(v.default)}) END"
            )
        elif v.kind == "recency":
            ws = sorted(v.windows, key=lambda w: -w.points)
            whens = " ".join(
                f"WHEN {c} >= TIMESTAMP '{pd.Timestamp(months_before(RUN_DATE, w.within_months))}' THEN {_lit(w.points)}"
                for w in ws
            )
            expr = f"CASE WHEN {c} IS NULL THEN 0.0 {whens} ELSE 0.0 END"
        else:
            expr = (
                f"CASE {_sql_flag(c)} WHEN 1 THEN {_lit(v.true_points)} WHEN 0 THEN {_lit(v.false_points)} "
                "ELSE 0.0 END"
            )
        pts.append(f"({expr})")
    excl, caps, subs = ["FALSE"], ["0"], ["0.0"]
    for ind in rubric.negative_indicators:
        c = f'"{ind.field}"'
        conds = []
        if ind.is_true:
            conds.append(f"coalesce({_sql_flag(c)} = 1, FALSE)")
        if ind.values:
            conds.append(
                f"coalesce({_sql_text(c)} IN ({', '.join(q(x.lower()) for x in ind.values)}), FALSE)"
            )
        for needle in ind.contains_any:
            conds.append(f"coalesce(contains({_sql_text(c)}, {q(needle.lower())}), FALSE)")
        hit = "(" + " OR ".join(conds) + ")"
        if ind.action == "exclude":
            excl.append(hit)
        elif ind.action == "cap_tier":
            caps.append(f"CASE WHEN {hit} THEN {1 if ind.cap == 'T2' else 2} ELSE 0 END")
        else:
            subs.append(f"CASE WHEN {hit} THEN {_lit(ind.points)} ELSE 0.0 END")
    t = rubric.thresholds
    seg = (
        "CASE WHEN {e} IS NULL OR isnan({e}) OR {e} < 1 THEN NULL WHEN {e} <= 10 THEN 0 WHEN {e} <= 50 THEN 1 "
        "WHEN {e} <= 200 THEN 2 WHEN {e} <= 500 THEN 3 WHEN {e} <= 1000 THEN 4 ELSE 5 END"
    )
    return f"""
WITH won_seg AS (SELECT {seg.format(e="employees")} AS seg, amount FROM {won}),
overall AS (SELECT avg(amount) AS avg_all FROM {won}),
seg_avg AS (SELECT s.seg, coalesce(avg(w.amount), any_value(o.avg_all)) AS avg_amount
            FROM range(6) s(seg) CROSS JOIN overall o LEFT JOIN won_seg w ON w.seg = s.seg GROUP BY s.seg),
scored AS (
  SELECT account_key, employees, annual_revenue,
         (0.0 + {" + ".join(pts)}) AS raw,
         ({" + ".join(subs)}) AS sub,
         ({" OR ".join(excl)}) AS excluded,
         greatest({", ".join(caps)}) AS cap,
         {seg.format(e="employees")} AS seg
  FROM {table}
),
tiered AS (
  SELECT *, greatest(raw - sub, 0.0) AS s FROM scored
),
valued AS (
  SELECT t.*, list_sort(list_filter([
      CASE WHEN annual_revenue > 0 THEN annual_revenue * {_lit(val.revenue_coefficient)} END,
      CASE WHEN employees > 0 THEN employees * {_lit(val.seat_price)} * {_lit(val.penetration)} END,
      a.avg_amount], lambda x: x IS NOT NULL)) AS est
  FROM tiered t LEFT JOIN seg_avg a ON a.seg = t.seg
)
SELECT account_key,
       round_even(s, 1) AS score,
       CASE WHEN excluded THEN 'OUT' ELSE ['T1', 'T2', 'T3', 'OUT'][1 + greatest(cap,
         CASE WHEN s >= {t.T1 - EPS!r} THEN 0 WHEN s >= {t.T2 - EPS!r} THEN 1 WHEN s >= {t.T3 - EPS!r} THEN 2
              ELSE 3 END)] END AS tier,
       excluded,
       CASE WHEN len(est) > 0 THEN round_even(least(greatest(
         (est[(len(est) + 1) // 2] + est[len(est) // 2 + 1]) / 2, {_lit(val.min_value)}), {_lit(val.max_value)}), 0)
       END AS valuation
FROM valued
"""


# --------------------------------------------------------------------------- measuring


class Peak:
    """Peak resident memory of one phase (see module docstring)."""

    def __init__(self):
        self.how = "VmHWM reset per phase"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.how = "ru_maxrss (whole run)"

    @staticmethod
    def _status(key: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        if self.how.startswith("VmHWM"):
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.base = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.how.startswith("VmHWM"):
            self.peak = self._status("VmHWM") - self.base
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn, repeat: int):
    """Wall seconds of the first run, (wall, CPU) seconds of the best of ``repeat`` runs, the last
    result and the phase's peak memory. CPU time counts every thread of the process."""
    times, result = [], None
    with Peak() as peak:
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times[0][0], min(times), result, peak


def check_same(name: str, mine: pd.DataFrame, other: pd.DataFrame) -> None:
    """Exact agreement on score, tier, excluded and valuation (NaN equals NaN)."""
    for col in ("score", "tier", "excluded", "valuation"):
        a, b = mine[col].to_numpy(), other[col].to_numpy()
        same = (a == b) | (pd.isna(a) & pd.isna(b)) if col in ("score", "valuation") else a == b
        assert same.all(), f"{name} disagrees on {col}: rows {np.flatnonzero(~same)[:5].tolist()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--apply-rows", type=int, default=None, help="rows for the apply oracle (default: all)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of each fast engine (first and best reported)"
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rubric = make_rubric()
    t0 = time.perf_counter()
    acc = make_accounts(args.rows, args.seed)
    won = make_won_deals(acc, args.seed)
    n = len(acc)
    n_customers = int((acc["current_arr"] > 0).sum())
    print(
        f"data: {n:,} accounts x {len(rubric.vectors)} vectors + {len(rubric.negative_indicators)} negative "
        f"indicators, {len(won)} won deals, {n_customers} customers (generated in {time.perf_counter() - t0:.1f}s)\n"
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pd.__version__}, duckdb {duckdb.__version__}"
    )

    def ours(explain: bool) -> pd.DataFrame:
        scores = score_rubric(acc, rubric, RUN_DATE, explain=explain)
        values = value_accounts(acc, VALUATION, won)
        return scores.assign(valuation=values["valuation"]), scores

    results = {}
    f, b, (mine, _), mem = timed(lambda: ours(False), args.repeat)
    results["(a) Market Map score+tier+value, explain=False"] = (f, b, mem)
    f, b, _, _ = timed(lambda: score_rubric(acc, rubric, RUN_DATE, explain=False), args.repeat)
    results["    of which score+tier"] = (f, b, None)
    f, b, (_, explained), mem = timed(lambda: ours(True), args.repeat)
    n_breakdowns = explained["explanation"].nunique()
    results["(a) Market Map score+tier+value, explain=True"] = (f, b, mem)

    con = duckdb.connect()
    con.register("accounts_df", acc)
    con.register("won", won)
    f, b, duck, mem = timed(
        lambda: con.execute(rubric_sql(rubric, VALUATION, "accounts_df")).df(), args.repeat
    )
    results["(c) DuckDB SQL over the pandas frame -> DataFrame"] = (f, b, mem)
    check_same("DuckDB (pandas scan)", mine, duck.set_index("account_key").loc[acc["account_key"]])
    con.execute("CREATE TABLE accounts AS SELECT * FROM accounts_df")  # load not timed
    f, b, duck_native, mem = timed(
        lambda: con.execute(rubric_sql(rubric, VALUATION, "accounts")).df(), args.repeat
    )
    results["(c) DuckDB SQL over a native table -> DataFrame"] = (f, b, mem)
    check_same("DuckDB (native)", mine, duck_native.set_index("account_key").loc[acc["account_key"]])
    con.close()

    m = min(args.apply_rows or n, n)
    oracle = make_oracle(rubric, VALUATION, won)
    f, _, res, mem = timed(lambda: acc.iloc[:m].apply(oracle, axis=1, result_type="expand"), 1)
    res.columns = ["score", "tier", "excluded", "valuation"]
    check_same("apply oracle", mine.iloc[:m], res)
    label = f"(b) DataFrame.apply row by row ({m:,} rows{', extrapolated' if m < n else ''})"
    results[label] = (f * n / m, (f * n / m, f * n / m), mem)
    print(
        f"agreement: Market Map == apply oracle on {m:,} rows, == DuckDB (both) on {n:,} rows "
        "(score, tier, excluded, valuation: exact)"
    )

    like_cfg = ValuationConfig(methods=["like_accounts"], like_accounts_k=5)
    f, b, _, mem = timed(lambda: value_accounts(acc, like_cfg), 1)
    results[f"    like_accounts method alone (k=5, {n_customers} customers)"] = (f, b, mem)

    print(f"\npeak memory: {Peak().how} (resident set growth during the phase)")
    print(f"{'engine':60} {'first s':>8} {'best s':>8} {'cpu s':>7} {'rows/s (best)':>14} {'peak mem':>9}")
    for name, (first, (best, cpu), mem) in results.items():
        peak = f"{mem.peak / 2**20:,.0f} MB" if mem else ""
        print(f"{name:60} {first:8.3f} {best:8.3f} {cpu:7.2f} {n / best:14,.0f} {peak:>9}")
    t_num = results["(a) Market Map score+tier+value, explain=False"][1][0]
    t_exp = results["(a) Market Map score+tier+value, explain=True"][1][0]
    t_apply = results[label][1][0]
    t_duck = results["(c) DuckDB SQL over the pandas frame -> DataFrame"][1][0]
    t_native = results["(c) DuckDB SQL over a native table -> DataFrame"][1][0]
    print(
        f"\napply / ours: {t_apply / t_num:,.0f}x (explain=False), {t_apply / t_exp:,.0f}x (explain=True)\n"
        f"ours / DuckDB over the frame: {t_num / t_duck:.2f} (explain=False), {t_exp / t_duck:.2f} (explain=True)\n"
        f"ours / DuckDB native table:   {t_num / t_native:.2f} (explain=False), {t_exp / t_native:.2f} (explain=True)\n"
        f"distinct breakdowns (explanations built): {n_breakdowns:,}\n"
        f"tier mix: {mine['tier'].value_counts(normalize=True).round(3).to_dict()}"
    )


if __name__ == "__main__":
    main()
