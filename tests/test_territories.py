"""Territory balance: values per rep, imbalance rules, minimal-move rebalancing, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketmap.analysis.territories import (
    balance_stats,
    greedy_largest_first,
    rebalance,
    rep_sets,
    round_robin,
    territory_alerts,
    territory_frame,
)
from marketmap.config import load_client


def frame(
    owners: list[str], values: list[float], tiers: list[str] | None = None, locked=None
) -> pd.DataFrame:
    n = len(owners)
    return pd.DataFrame({"account_key": [f"a{i:03d}" for i in range(n)], "owner_id": owners, "value": values,
                         "tier": tiers or ["T2"] * n, "locked": locked or [False] * n})  # fmt: skip


@pytest.fixture()
def cfg(fixture_clients):
    return load_client("sample")


def test_balanced_territories_need_no_moves_and_fire_nothing(cfg):
    f = frame(["r1", "r2", "r3"] * 10, [100.0] * 30)
    rb = rebalance(f, ["r1", "r2", "r3"], 0.2)
    assert rb.moves == []
    alerts, summary = territory_alerts(cfg, f, ["r1", "r2", "r3"], set())
    assert alerts == [] and summary["stats"]["ratio"] == 1.0


def test_imbalance_fires_and_rebalance_moves_few_accounts(cfg):
    # r1 holds 4x r3: moving its one large account fixes it
    f = frame(
        ["r1"] * 6 + ["r2"] * 4 + ["r3"] * 2, [300, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    )
    alerts, _ = territory_alerts(cfg, f, ["r1", "r2", "r3"], set())
    (a,) = alerts
    assert a.rule == "territory_imbalance" and not a.holding and a.numbers["max_min_ratio"] == 4.0
    rb = rebalance(f, ["r1", "r2", "r3"], 0.2)
    assert rb.stats_after["max_deviation"] <= 0.2 * 0.9 + 1e-9
    assert len(rb.moves) == 1 and all(m.from_rep == "r1" for m in rb.moves)


def test_exceptions_partners_and_t1_fairness(cfg):
    f = frame(
        ["r1"] * 8 + ["r2"] * 2, [100] * 10, tiers=["T1"] * 4 + ["T2"] * 6, locked=[True] * 4 + [False] * 6
    )
    rb = rebalance(f, ["r1", "r2"], 0.2)
    assert {m.account_key for m in rb.moves}.isdisjoint(
        {"a000", "a001", "a002", "a003"}
    )  # named exceptions stay
    # T1 accounts move only when the T1 spread does not get worse
    f2 = frame(["r1"] * 6 + ["r2"] * 2, [100] * 8, tiers=["T1"] * 3 + ["T2"] * 3 + ["T1"] * 2)
    rb2 = rebalance(f2, ["r1", "r2"], 0.2)
    assert max(rb2.t1_after.values()) - min(rb2.t1_after.values()) <= 1
    accounts = pd.DataFrame(
        {"account_key": ["p", "q"], "owner_id": ["r1", "r1"], "is_partner": [True, False]}
    )
    scores = pd.DataFrame({"account_key": ["p", "q"], "tier": ["T1", "T1"], "valuation": [5.0, 7.0]})
    assert list(territory_frame(cfg, accounts, scores)["account_key"]) == ["q"]  # partner accounts stay out


def test_departed_rep_accounts_are_handed_out_and_alerted(cfg):
    reps = pd.DataFrame({"rep_id": ["r1", "r2", "r3"], "active": [True, True, False]})
    active, left = rep_sets(cfg, reps)
    assert active == ["r1", "r2"] and left == {"r3"}
    f = frame(["r1"] * 3 + ["r2"] * 3 + ["r3"] * 4, [100] * 10, tiers=["T2"] * 6 + ["T1"] * 4)
    rb = rebalance(f, active, 0.2, left)
    assert sorted(m.account_key for m in rb.moves if m.reason == "rep left") == [
        "a006",
        "a007",
        "a008",
        "a009",
    ]
    assert rb.t1_after == {"r1": 2, "r2": 2}
    alerts, _ = territory_alerts(cfg, f, active, left)
    assert [a.rule for a in alerts] == ["inactive_rep_owns_accounts"] and alerts[0].key == "r3"


def test_baselines():
    v = np.array([9.0, 1, 1, 1, 4, 4])
    assert list(round_robin(v, 3)) == [0, 1, 2, 0, 1, 2]
    loads = np.bincount(greedy_largest_first(v, 2), weights=v, minlength=2)
    assert sorted(loads) == [10.0, 10.0]
    assert balance_stats({"a": 10.0, "b": 20.0})["ratio"] == 2.0
