"""Territory rebalancing benchmark: 100,000 accounts across 50 reps from an unbalanced start.

Compares Market Map's minimal-move rebalance (``marketmap.analysis.territories.rebalance``)
with two assignments from scratch — round robin and greedy largest-first (LPT) — and, on
small instances, with the exact optimum from an integer program (PuLP + CBC):

* the fewest moves that bring every rep within the goal band (what the rebalance aims for);
* the smallest possible max-min spread from scratch (the best balance any assignment reaches).

Values are log-normal (a few very large accounts, many small ones), 10% T1. Deterministic
(seeded). Run: ``.venv/bin/python bench/bench_territories.py`` (PuLP needed for the exact part).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from marketmap.analysis.territories import (
    GOAL_SHARE,
    balance_stats,
    greedy_largest_first,
    rebalance,
    round_robin,
)

BAND = 0.2


def instance(n: int, reps: int, seed: int = 7) -> tuple[pd.DataFrame, list[str]]:
    """Accounts with log-normal values, owners skewed 1:4 across reps (unbalanced)."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(10, 1.0, n).round(2)
    weights = np.linspace(1, 4, reps)
    owners = rng.choice(reps, size=n, p=weights / weights.sum())
    tiers = rng.choice(["T1", "T2", "T3"], size=n, p=[0.1, 0.3, 0.6])
    names = [f"r{i:02d}" for i in range(reps)]
    f = pd.DataFrame({"account_key": [f"a{i:06d}" for i in range(n)], "owner_id": [names[o] for o in owners],
                      "value": values, "tier": tiers, "locked": False})  # fmt: skip
    return f, names


def loads(values: np.ndarray, assign: np.ndarray, reps: int) -> dict[str, float]:
    return {f"r{i:02d}": float(v) for i, v in enumerate(np.bincount(assign, weights=values, minlength=reps))}


def row(name: str, stats: dict, moved: int | str, seconds: float) -> str:
    ratio = f"{stats['ratio']:.3f}" if stats["ratio"] is not None else "inf"
    return (f"| {name} | {ratio} | {stats['max_deviation']:.1%} | {stats['spread']:.2%} | "
            f"{moved if isinstance(moved, str) else f'{moved:,}'} | {seconds:.3f} |")  # fmt: skip


def compare(n: int, reps: int) -> list[str]:
    f, names = instance(n, reps)
    values = f["value"].to_numpy()
    owner_idx = f["owner_id"].map({r: i for i, r in enumerate(names)}).to_numpy()
    out = [f"### {n:,} accounts, {reps} reps", "",
           "| method | max/min ratio | max deviation from mean | spread (CV) | accounts moved | seconds |",
           "|---|---|---|---|---|---|",
           row("start (unbalanced)", balance_stats(loads(values, owner_idx, reps)), 0, 0.0)]  # fmt: skip
    t0 = time.perf_counter()
    rb = rebalance(f, names, BAND)
    out.append(
        row("**Market Map rebalance** (keep owners)", rb.stats_after, len(rb.moves), time.perf_counter() - t0)
    )
    for label, fn in (
        ("round robin from scratch", round_robin),
        ("greedy largest-first from scratch", greedy_largest_first),
    ):
        t0 = time.perf_counter()
        a = fn(values, reps)
        secs = time.perf_counter() - t0
        out.append(row(label, balance_stats(loads(values, a, reps)), int((a != owner_idx).sum()), secs))
    t1 = [rb.t1_before[r] for r in names], [rb.t1_after[r] for r in names]
    out += [
        "",
        f"T1 accounts per rep (min-max): before {min(t1[0])}-{max(t1[0])}, after {min(t1[1])}-{max(t1[1])}.",
        "",
    ]
    return out


def exact(n: int, reps: int, seconds: int = 30) -> list[str]:
    """Exact optimum on a small instance (PuLP/CBC): fewest moves into the goal band; best spread."""
    import pulp

    f, names = instance(n, reps, seed=11)
    v = f["value"].to_numpy()
    own = f["owner_id"].map({r: i for i, r in enumerate(names)}).to_numpy()
    target = v.sum() / reps
    goal = BAND * GOAL_SHARE
    out = [f"### exact comparison: {n} accounts, {reps} reps (PuLP {pulp.__version__}, CBC, {seconds} s limit)", "",
           "| method | max/min ratio | max deviation | spread (CV) | accounts moved | seconds |", "|---|---|---|---|---|---|",
           row("start (unbalanced)", balance_stats(loads(v, own, reps)), 0, 0.0)]  # fmt: skip
    t0 = time.perf_counter()
    rb = rebalance(f, names, BAND)
    out.append(row("Market Map rebalance", rb.stats_after, len(rb.moves), time.perf_counter() - t0))

    # (1) fewest moves with every rep inside the goal band
    p = pulp.LpProblem("min_moves", pulp.LpMinimize)
    x = {(i, r): pulp.LpVariable(f"x_{i}_{r}", cat="Binary") for i in range(n) for r in range(reps)}
    p += pulp.lpSum(x[i, r] for i in range(n) for r in range(reps) if r != own[i])
    for i in range(n):
        p += pulp.lpSum(x[i, r] for r in range(reps)) == 1
    for r in range(reps):
        load = pulp.lpSum(v[i] * x[i, r] for i in range(n))
        p += load >= target * (1 - goal)
        p += load <= target * (1 + goal)
    t0 = time.perf_counter()
    p.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=seconds))
    secs = time.perf_counter() - t0
    if pulp.LpStatus[p.status] == "Optimal":
        a = np.array([next(r for r in range(reps) if x[i, r].value() > 0.5) for i in range(n)])
        out.append(row("exact: fewest moves into the band", balance_stats(loads(v, a, reps)),
                       int((a != own).sum()), secs))  # fmt: skip
    else:
        out.append(f"| exact: fewest moves into the band | {pulp.LpStatus[p.status]} | | | | {secs:.1f} |")

    # (2) best possible balance from scratch: minimise max load - min load
    q = pulp.LpProblem("min_spread", pulp.LpMinimize)
    y = {(i, r): pulp.LpVariable(f"y_{i}_{r}", cat="Binary") for i in range(n) for r in range(reps)}
    hi, lo = pulp.LpVariable("hi"), pulp.LpVariable("lo")
    q += hi - lo
    for i in range(n):
        q += pulp.lpSum(y[i, r] for r in range(reps)) == 1
    for r in range(reps):
        load = pulp.lpSum(v[i] * y[i, r] for i in range(n))
        q += load <= hi
        q += load >= lo
    t0 = time.perf_counter()
    q.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=seconds))
    secs = time.perf_counter() - t0
    a = np.array([next(r for r in range(reps) if y[i, r].value() > 0.5) for i in range(n)])
    status = pulp.LpSolution[q.sol_status].lower()  # "optimal solution found" or stopped at the time limit
    out.append(row(f"exact: best spread from scratch ({status}, limit {seconds}s)",
                   balance_stats(loads(v, a, reps)), int((a != own).sum()), secs))  # fmt: skip
    g = greedy_largest_first(v, reps)
    out.append(
        row("greedy largest-first from scratch", balance_stats(loads(v, g, reps)), int((g != own).sum()), 0.0)
    )
    return out + [""]


def unreachable(n: int, reps: int, seconds: int = 30) -> list[str]:
    """One account worth 2.5x a mean territory: ±20% cannot be reached. Say so, and move as few as needed.

    Compares the proposal's moves with the exact fewest moves (PuLP/CBC) that reach the
    same best-reachable band the proposal aimed at.
    """
    f, names = instance(n, reps, seed=5)
    target = f["value"].sum() / reps
    giant = pd.DataFrame({"account_key": ["giant"], "owner_id": [names[-1]], "value": [2.5 * target],
                          "tier": ["T1"], "locked": [False]})  # fmt: skip
    f = pd.concat([f, giant], ignore_index=True)
    v = f["value"].to_numpy()
    own = f["owner_id"].map({r: i for i, r in enumerate(names)}).to_numpy()
    t0 = time.perf_counter()
    rb = rebalance(f, names, BAND)
    secs = time.perf_counter() - t0
    out = [f"### band out of reach: {n} accounts + one worth 2.5× a mean territory, {reps} reps", "",
           f"Proposal says: reachable = {rb.reachable}; {rb.reason}.", "",
           "| method | max/min ratio | max deviation | spread (CV) | accounts moved | seconds |", "|---|---|---|---|---|---|",
           row("start (unbalanced)", balance_stats(loads(v, own, reps)), 0, 0.0),
           row(f"Market Map proposal (aims at ±{rb.goal_used:.0%}, the best reachable)", rb.stats_after, len(rb.moves), secs)]  # fmt: skip
    try:
        import pulp
    except ImportError:
        return out + ["", "(PuLP not installed: exact comparison skipped)", ""]
    mean = v.sum() / reps
    p = pulp.LpProblem("min_moves_reachable", pulp.LpMinimize)
    x = {(i, r): pulp.LpVariable(f"x_{i}_{r}", cat="Binary") for i in range(len(v)) for r in range(reps)}
    p += pulp.lpSum(x[i, r] for i in range(len(v)) for r in range(reps) if r != own[i])
    for i in range(len(v)):
        p += pulp.lpSum(x[i, r] for r in range(reps)) == 1
    for r in range(reps):
        load = pulp.lpSum(v[i] * x[i, r] for i in range(len(v)))
        p += load >= mean * (1 - rb.goal_used)
        p += load <= mean * (1 + rb.goal_used)
    t0 = time.perf_counter()
    p.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=seconds))
    secs = time.perf_counter() - t0
    if pulp.LpStatus[p.status] == "Optimal":
        a = np.array([next(r for r in range(reps) if x[i, r].value() > 0.5) for i in range(len(v))])
        out.append(row(f"exact: fewest moves into ±{rb.goal_used:.0%}", balance_stats(loads(v, a, reps)),
                       int((a != own).sum()), secs))  # fmt: skip
    else:
        out.append(
            f"| exact: fewest moves into ±{rb.goal_used:.0%} | {pulp.LpStatus[p.status]} | | | | {secs:.1f} |"
        )
    return out + [""]


def main() -> None:
    lines = ["# Territory rebalancing benchmark", "",
             f"Goal band: ±{BAND * GOAL_SHARE:.0%} of the mean (alert band ±{BAND:.0%}). Python {sys.version.split()[0]}.", ""]  # fmt: skip
    lines += compare(100_000, 50)
    lines += compare(10_000, 20)
    try:
        lines += exact(60, 4)
        lines += exact(120, 6)
    except ImportError:
        lines.append("(PuLP not installed: exact comparison skipped)")
    lines += unreachable(60, 4)
    lines += unreachable(300, 6, seconds=60)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
