"""Deduplication: merge by domain, never by name; look-alike names go to review."""

from __future__ import annotations

import pandas as pd

from marketmap.ingest.dedupe import dedupe_accounts


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in ("website", "employees", "industry", "crm_created"):
        if col not in df:
            df[col] = None
    df["source_row"] = range(2, len(df) + 2)
    return df


def test_same_domain_merges_into_most_complete_record_and_fills_blanks():
    df = frame(
        [
            {"crm_id": "A1", "name": "Acme", "website": "www.acme.com", "employees": None, "industry": "Software"},
            {"crm_id": "A2", "name": "Acme Inc", "website": "https://acme.com/about", "employees": 250.0, "industry": "Software",
             "crm_created": pd.Timestamp("2020-01-01", tz="UTC")},
            {"crm_id": "B1", "name": "Beta", "website": "beta.io", "employees": 10.0, "industry": None},
        ]
    )  # fmt: skip
    res = dedupe_accounts(df)
    assert sorted(res.accounts["account_key"]) == ["acme.com", "beta.io"]
    acme = res.accounts.set_index("account_key").loc["acme.com"]
    assert acme["crm_id"] == "A2"  # the more complete record survives
    assert acme["employees"] == 250.0
    assert res.merges[["kept_crm_id", "merged_crm_id"]].values.tolist() == [["A2", "A1"]]
    ids = res.crm_ids.set_index("crm_id")
    assert ids.loc["A1", "account_key"] == "acme.com" and not ids.loc["A1", "is_survivor"]
    assert ids.loc["A2", "is_survivor"]


def test_survivor_keeps_its_values_and_takes_only_blanks_from_duplicates():
    df = frame(
        [
            {
                "crm_id": "A1",
                "name": "Acme",
                "website": "acme.com",
                "employees": 100.0,
                "industry": None,
                "country": "US",
            },
            {
                "crm_id": "A2",
                "name": "Acme Corp",
                "website": "acme.com",
                "employees": 999.0,
                "industry": "Retail",
                "country": None,
            },
        ]
    )
    res = dedupe_accounts(df)
    [row] = res.accounts.to_dict("records")
    assert row["crm_id"] == "A1"  # tie on completeness: earliest row wins
    assert row["employees"] == 100.0  # survivor's value kept
    assert row["industry"] == "Retail"  # blank filled from the duplicate


def test_no_domain_is_never_merged_but_queued_for_review():
    df = frame(
        [
            {"crm_id": "A1", "name": "Acme Analytics, Inc.", "website": "acme.com"},
            {"crm_id": "X1", "name": "ACME Analytics", "website": None},
            {"crm_id": "X2", "name": "Acme Analytics LLC", "website": ""},
            {"crm_id": "Z1", "name": "Zebra Holdings", "website": None},
        ]
    )
    res = dedupe_accounts(df)
    assert len(res.accounts) == 4
    assert res.merges.empty
    pairs = {tuple(sorted(p)) for p in res.review[["left_key", "right_key"]].values.tolist()}
    assert pairs == {("acme.com", "id:X1"), ("acme.com", "id:X2"), ("id:X1", "id:X2")}
    assert (res.review["score"] >= 90).all()


def test_distinct_companies_with_similar_names_but_domains_are_not_reviewed():
    df = frame(
        [
            {"crm_id": "A1", "name": "Acme Analytics", "website": "acme.com"},
            {"crm_id": "A2", "name": "Acme Analytics", "website": "acme-analytics.de"},
        ]
    )
    res = dedupe_accounts(df)
    assert len(res.accounts) == 2 and res.review.empty


def test_same_crm_id_twice_is_one_record():
    df = frame(
        [
            {"crm_id": "A1", "name": "Acme", "website": "acme.com"},
            {"crm_id": "A1", "name": "Acme", "website": "acme.com"},
        ]
    )
    res = dedupe_accounts(df)
    assert len(res.accounts) == 1
    assert res.crm_ids["crm_id"].tolist() == ["A1"]


def test_oversized_name_blocks_are_split_by_two_words(monkeypatch):
    """A first word shared by too many names ("global …") blocks by the first two words instead."""
    from marketmap.ingest import dedupe

    monkeypatch.setattr(dedupe, "MAX_BLOCK", 2)
    df = frame(
        [
            {"crm_id": "A1", "name": "Global Analytics", "website": "ga.com"},
            {"crm_id": "A2", "name": "Global Robotics", "website": "gr.com"},
            {"crm_id": "A3", "name": "Global Shipping", "website": "gs.com"},
            {"crm_id": "X1", "name": "Global Analytics Inc", "website": None},
        ]
    )
    res = dedupe_accounts(df)
    assert res.review[["left_key", "right_key"]].values.tolist() == [["id:X1", "ga.com"]]
