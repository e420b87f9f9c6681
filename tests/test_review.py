"""The review queue, worked: decisions stored, applied on the next build, never asked again."""

from __future__ import annotations

import pandas as pd
import pytest

from marketmap.ingest.dedupe import dedupe_accounts


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "crm_id": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "website": [r[2] for r in rows],
            "industry": [r[3] if len(r) > 3 else None for r in rows],
            "employees": [r[4] if len(r) > 4 else None for r in rows],
            "source_row": range(2, len(rows) + 2),
        }
    )


RECORDS = [
    ("A1", "Northwind Traders Inc", "northwind.com", None, 120.0),
    ("A2", "Northwind Traders", None, "Retail", None),  # no domain: queued next to A1
    ("B1", "Blue River Bakery", "blueriver.com", "Food", 30.0),
    ("B2", "Blue River Bakery LLC", None, None, 31.0),  # queued next to B1
]


def test_a_merge_decision_joins_the_two_accounts_with_the_survivor_rules():
    first = dedupe_accounts(frame(RECORDS))
    assert sorted(map(tuple, first.review[["left_key", "right_key"]].values.tolist())) == [
        ("id:A2", "northwind.com"), ("id:B2", "blueriver.com"),
    ]  # fmt: skip
    again = dedupe_accounts(frame(RECORDS), merge_pairs=[("id:A2", "northwind.com")])
    acc = again.accounts.set_index("account_key")
    assert "id:A2" not in acc.index and len(acc) == 3
    # the domain account's key survives; the merged record fills its blank industry
    assert acc.loc["northwind.com", "industry"] == "Retail" and acc.loc["northwind.com", "employees"] == 120
    assert again.absorbed == {"id:A2": "northwind.com"}
    ids = again.crm_ids.set_index("crm_id")
    assert ids.loc["A2", "account_key"] == "northwind.com" and not ids.loc["A2", "is_survivor"]
    assert again.merges[["account_key", "kept_crm_id", "merged_crm_id", "reason"]].values.tolist() == [
        ["northwind.com", "A1", "A2", "review decision: same company as northwind.com"]
    ]
    # the merged pair is gone from the queue; the undecided one is still asked
    assert again.review[["left_key", "right_key"]].values.tolist() == [["id:B2", "blueriver.com"]]


def test_a_merge_with_a_vanished_account_is_ignored():
    res = dedupe_accounts(frame(RECORDS[2:]), merge_pairs=[("id:A2", "northwind.com")])
    assert res.absorbed == {} and len(res.accounts) == 2
