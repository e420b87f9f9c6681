"""Hosts that are not a company's domain, shared domains with different names, name cleaning,
rare-token blocking and placeholder names."""

from __future__ import annotations

import pandas as pd

from marketmap.ingest import dedupe as dd
from marketmap.ingest.dedupe import block_keys, dedupe_accounts
from marketmap.ingest.domains import company_domains, normalise_names, placeholder_names


def frame(rows: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "crm_id": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "website": [r[2] for r in rows],
            "source_row": range(2, len(rows) + 2),
        }
    )


def test_profile_store_social_builder_shortener_and_mail_hosts_are_not_company_domains():
    sites = {
        "https://www.linkedin.com/company/acme": "Acme",
        "crunchbase.com/organization/acme": "Acme",
        "https://angel.co/company/acme": "Acme",
        "wellfound.com/company/acme": "Acme",
        "https://www.producthunt.com/products/acme": "Acme",
        "https://www.ycombinator.com/companies/acme": "Acme",
        "https://apps.apple.com/us/app/acme/id123": "Acme",
        "itunes.apple.com/app/id123": "Acme",
        "https://play.google.com/store/apps/details?id=com.acme": "Acme",
        "facebook.com/acme": "Acme",
        "https://x.com/acme": "Acme",
        "twitter.com/acme": "Acme",
        "https://github.com/acme": "Acme",
        "lnkd.in/abc": "Acme",
        "bit.ly/acme": "Acme",
        "founder@gmail.com": "Acme",
        "outlook.com": "Acme",
        "yahoo.com": "Acme",
        "hotmail.com": "Acme",
        "acme.wixsite.com/home": "Acme",
        "acme.squarespace.com": "Acme",
    }
    domains, reasons = company_domains(pd.Series(list(sites)), pd.Series(list(sites.values())))
    assert domains.isna().all(), domains[domains.notna()]
    assert reasons.notna().all()


def test_a_host_owner_keeps_its_domain_and_clients_extend_the_list():
    sites = pd.Series(
        ["https://apps.apple.com/us/app/x/id1", "https://www.linkedin.com", "github.com", "acme-hub.io"]
    )
    names = pd.Series(["Apple Inc.", "LinkedIn Corporation", "GitHub, Inc.", "Acme"])
    domains, _ = company_domains(sites, names)
    assert domains.tolist() == ["apple.com", "linkedin.com", "github.com", "acme-hub.io"]
    domains, reasons = company_domains(sites, names, extra=["acme-hub.io | Acme Hub"])
    assert domains.tolist() == ["apple.com", "linkedin.com", "github.com", None]
    assert "acme-hub.io" in reasons.iloc[3]


def test_apple_is_not_merged_into_an_app_whose_website_is_an_app_store_link():
    records = frame(
        [
            ("A1", "Two Guys Apps", "https://apps.apple.com/us/app/fun/id1"),
            ("A2", "Apple", "https://www.apple.com"),
            ("A3", "Solo Founder Co", "https://www.linkedin.com/company/solo"),
            ("A4", "Other Founder", "https://www.linkedin.com/company/other"),
        ]
    )
    res = dedupe_accounts(records)
    assert len(res.merges) == 0 and len(res.accounts) == 4
    assert res.accounts.set_index("crm_id")["domain"].to_dict() == {
        "A1": None, "A2": "apple.com", "A3": None, "A4": None}  # fmt: skip
    assert res.warnings["crm_id"].tolist() == ["A1", "A3", "A4"]
    assert res.warnings["source_row"].tolist() == [2, 4, 5]


def test_shared_domain_with_clearly_different_names_goes_to_review_not_merge():
    records = frame(
        [
            ("A1", "Acme Corporation", "acme.com"),
            ("A2", "ACME Corp (EMEA)", "https://www.acme.com/uk"),  # the same company: merged
            ("A3", "Blue River Bakery", "acme.com"),  # clearly someone else: held for review
            ("B1", "International Business Machines", "ibm.com"),
            ("B2", "IBM", "www.ibm.com"),  # initials fit the domain: merged
        ]
    )
    res = dedupe_accounts(records)
    assert sorted(res.merges["merged_crm_id"]) == ["A2", "B2"]
    review = res.review[res.review["kind"] == "account_domain"]
    assert review[["left_key", "right_key"]].values.tolist() == [["id:A3", "acme.com"]]
    assert res.accounts.set_index("crm_id").loc["A3", "domain"] is None


def test_name_cleaning():
    names = pd.Series(
        [
            "Nestl&eacute; S.A.",
            "Société Générale",
            "Acme (UK) Holdings Ltd",
            "AT&amp;T Inc.",
            "Procter & Gamble Co",
            "The Home Depot",
            "Amazon.com, Inc.",
            "Loews Cos",
            "Siemens Group",
            "Holdings",
        ]  # fmt: skip
    )
    assert normalise_names(names).tolist() == [
        "nestle", "societe generale", "acme", "at and t", "procter and gamble", "home depot", "amazon", "loews",
        "siemens", "holdings"]  # fmt: skip


def test_placeholders_are_recognised():
    names = normalise_names(pd.Series(["Unknown", "N/A", "Test Account", "Customer 001", "TBD", "-", "", "12345",
                                       "Acme", "Test Kitchen Supplies", "Customer Success Labs"]))  # fmt: skip
    assert placeholder_names(names).tolist() == [True] * 8 + [False] * 3


def test_placeholder_names_never_fill_the_review_queue():
    rows = [(f"P{i}", name, None) for i, name in enumerate(["Unknown", "N/A", "Test Account"] * 300)]
    rows += [(f"C{i}", f"Customer {i:03d}", None) for i in range(500)]
    rows += [("R1", "Globex Corporation", None), ("R2", "Globex Corp.", "globex.com")]
    res = dedupe_accounts(frame(rows))
    assert res.review[["left_key", "right_key"]].values.tolist() == [["id:R1", "globex.com"]]


def test_word_order_and_a_typo_in_the_first_word_still_meet():
    rows = [("A1", "Mircosoft Dynamics Partners", None), ("A2", "Microsoft Dynamics Partners", "msdp.com"),
            ("B1", "Bakery Blue River", None), ("B2", "Blue River Bakery", "brb.com")]  # fmt: skip
    res = dedupe_accounts(frame(rows))
    pairs = {tuple(p) for p in res.review[["left_key", "right_key"]].values.tolist()}
    assert pairs == {("id:A1", "msdp.com"), ("id:B1", "brb.com")}


def test_blocks_stay_bounded_and_common_words_are_not_keys(monkeypatch):
    monkeypatch.setattr(dd, "MAX_BLOCK", 50)
    names = normalise_names(pd.Series([f"Global Services Zeta{i % 20}" for i in range(500)]))
    keys = block_keys(names)
    assert len(keys) and keys["key"].value_counts().max() <= 50
    assert not keys["key"].isin(["global", "services"]).any()


def test_chunked_scoring_finds_the_same_pairs(monkeypatch):
    rows = [(f"L{i}", f"Northwind Trading {i}", None) for i in range(30)]
    rows += [(f"D{i}", f"Northwind Trading {i}", f"nw{i}.com") for i in range(30)]
    whole = dedupe_accounts(frame(rows)).review
    monkeypatch.setattr(dd, "CHUNK", 4)
    chunked = dedupe_accounts(frame(rows)).review
    assert len(whole) > 0
    pd.testing.assert_frame_equal(
        whole.sort_values(["left_key", "right_key"]).reset_index(drop=True),
        chunked.sort_values(["left_key", "right_key"]).reset_index(drop=True),
    )


def test_block_keys_take_the_rarest_then_longest_then_first_word_of_each_name():
    names = pd.Series(["alpha bravo", "alpha bravo", "bravo alpha", "bravo alpha",  # a tie: the first word
                       "delta echoes", "echoes delta",  # same rarity: the longer word
                       "kilo mikes", "mikes kilo", "papa mikes", "mikes papa"])  # the rarer, though shorter  # fmt: skip
    keys = block_keys(names, rare=1)
    by_row = keys.groupby("row")["key"].apply(set).to_dict()
    assert by_row == {0: {"alpha", "~alph"}, 1: {"alpha", "~alph"}, 2: {"bravo", "~brav"}, 3: {"bravo", "~brav"},
                      4: {"echoes", "~echo"}, 5: {"echoes", "~echo"}, 6: {"kilo"}, 7: {"kilo"}, 8: {"papa"},
                      9: {"papa"}}  # fmt: skip
