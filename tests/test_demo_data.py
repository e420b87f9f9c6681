"""The demo CRM generator: deterministic, Salesforce-shaped, messy on purpose, with a real win signal."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from marketmap.demo.generate import generate_demo_export, main

ROOT = Path(__file__).resolve().parents[1]
FILES = ["Account.csv", "Contact.csv", "Opportunity.csv", "User.csv", "demo_enrichment.csv"]
SALESFORCE_FILES = FILES[:4]
US = {"United States", "US", "USA"}
TWO_LEVEL_SUFFIXES = {
    "co.uk", "gov.uk", "ac.uk", "org.uk", "com.au", "co.in", "com.sg", "co.il", "com.br", "co.jp",
}  # fmt: skip
LEGAL_WORDS = {
    "inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "the", "gmbh", "ag",
}  # fmt: skip


def _domain(website: str) -> str | None:
    """A small registrable-domain normaliser, enough for the suffixes the generator uses."""
    s = website.strip().lower()
    if not s:
        return None
    s = re.sub(r"^[a-z]+://", "", s)
    s = re.split(r"[/?:#]", s, maxsplit=1)[0]
    labels = s.split(".")
    n = 3 if ".".join(labels[-2:]) in TWO_LEVEL_SUFFIXES else 2
    return ".".join(labels[-n:])


def _name_key(name: str) -> str:
    words = re.sub(r"[^\w\s]", " ", name.lower().replace("&", " and ")).split()
    return " ".join(w for w in words if w not in LEGAL_WORDS)


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype=str, keep_default_na=False, encoding="utf-8-sig")


@pytest.fixture(scope="module")
def default_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("demo_default")
    return out, generate_demo_export(out)


@pytest.fixture(scope="module")
def frames(default_export: tuple[Path, dict[str, int]]) -> dict[str, pd.DataFrame]:
    out, _ = default_export
    return {name: _read(out, name) for name in FILES}


def test_same_seed_gives_identical_bytes_even_across_processes(tmp_path: Path) -> None:
    generate_demo_export(tmp_path / "a", seed=11, n_accounts=1500)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    cli = [sys.executable, "-m", "marketmap.demo.generate", str(tmp_path / "b")]
    subprocess.run(
        [*cli, "--seed", "11", "--accounts", "1500"],
        check=True,
        env=env,
        capture_output=True,
    )
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    generate_demo_export(tmp_path / "a", seed=1, n_accounts=1500)
    generate_demo_export(tmp_path / "b", seed=2, n_accounts=1500)
    for name in ["Account.csv", "Contact.csv", "Opportunity.csv", "demo_enrichment.csv"]:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    assert main([str(tmp_path), "--accounts", "600", "--seed", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)


def test_too_few_accounts_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 500"):
        generate_demo_export(tmp_path, n_accounts=100)


def test_default_size_counts(
    default_export: tuple[Path, dict[str, int]], frames: dict[str, pd.DataFrame]
) -> None:
    _, counts = default_export
    for name in FILES:
        assert counts[name] == len(frames[name]), name
    assert len(frames["Account.csv"]) >= 20_000
    opps = frames["Opportunity.csv"]
    assert (opps["IsClosed"] == "1").sum() >= 500
    assert 100 <= (opps["IsClosed"] == "").sum() <= 200
    assert 20_000 <= len(frames["Contact.csv"]) <= 30_000
    accounts = frames["Account.csv"]
    assert 100 <= (accounts["Type"] == "Customer").sum() <= 140
    assert set(accounts["Type"]) == {"Prospect", "Customer", "Partner", "Competitor"}
    assert 1 <= (accounts["Type"] == "Competitor").sum() <= 10


def test_users_are_the_reps_of_the_demo_client(frames: dict[str, pd.DataFrame]) -> None:
    config = yaml.safe_load((ROOT / "include" / "clients" / "demo.yaml").read_text())
    reps = {r["id"]: r["name"] for r in config["territories"]["reps"]}
    users = frames["User.csv"]
    assert len(users) >= 8
    assert dict(zip(users["Id"], users["Name"], strict=True)) == reps
    assert set(users["IsActive"]) == {"1"}


def test_bom_and_salesforce_headers(default_export: tuple[Path, dict[str, int]]) -> None:
    out, _ = default_export
    for name in SALESFORCE_FILES:
        assert (out / name).read_bytes()[:3] == b"\xef\xbb\xbf", name
    header = {name: list(_read(out, name).columns) for name in FILES}
    assert set(header["Account.csv"]) >= {
        "Id", "IsDeleted", "Name", "Type", "BillingStreet", "BillingCity", "BillingState",
        "BillingPostalCode", "BillingCountry", "Phone", "Website", "Industry", "AnnualRevenue",
        "NumberOfEmployees", "OwnerId", "CreatedDate", "LastModifiedDate", "Tech_Stack__c",
        "Funding_Stage__c", "Last_Funding_Date__c", "Current_ARR__c", "Partner__c", "Prevent_Override__c",
        "Account_Tier__c", "ICP_Fit_Score__c", "Account_Valuation__c",
    }  # fmt: skip
    assert set(header["Contact.csv"]) >= {
        "Id", "IsDeleted", "AccountId", "LastName", "FirstName", "Name", "MailingCountry", "Email", "Title",
        "Department", "OwnerId", "CreatedDate", "LastModifiedDate", "HasOptedOutOfEmail", "LinkedIn_URL__c",
        "Role_Start_Date__c",
    }  # fmt: skip
    assert set(header["Opportunity.csv"]) >= {
        "Id", "IsDeleted", "AccountId", "Name", "StageName", "Amount", "CloseDate", "Type", "IsClosed",
        "IsWon", "OwnerId", "CreatedDate", "LastModifiedDate",
    }  # fmt: skip
    assert set(header["User.csv"]) >= {"Id", "Name", "Email", "IsActive", "UserRole"}
    assert header["demo_enrichment.csv"] == [
        "domain", "industry", "employees", "tech_stack", "last_funding_date", "country",
    ]  # fmt: skip


def test_salesforce_value_formats(frames: dict[str, pd.DataFrame]) -> None:
    accounts, opps = frames["Account.csv"], frames["Opportunity.csv"]
    assert accounts["Id"].str.fullmatch(r"001[0-9A-Za-z]{15}").all()
    assert accounts["Id"].is_unique and opps["Id"].is_unique and frames["Contact.csv"]["Id"].is_unique
    assert accounts["CreatedDate"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000").all()
    assert opps["CloseDate"].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    for col in ["IsDeleted", "Partner__c", "Prevent_Override__c"]:
        assert set(accounts[col]) <= {"", "1"}, col
    assert set(opps["IsWon"]) == {"", "1"} and set(opps["IsClosed"]) == {"", "1"}
    assert (accounts["CreatedDate"] <= accounts["LastModifiedDate"]).all()
    stages = {"Closed Won", "Closed Lost", "Qualification", "Discovery", "Proposal/Quote", "Negotiation"}
    assert set(opps["StageName"]) == stages
    assert set(opps["Type"]) == {"New Business", "Expansion", "Renewal"}
    stacks = accounts.loc[accounts["Tech_Stack__c"] != "", "Tech_Stack__c"]
    assert stacks.str.contains(";").any() and stacks.str.contains("Salesforce").any()
    stages = {"", "Seed", "Series A", "Series B", "Series C", "Growth", "Public"}
    assert set(accounts["Funding_Stage__c"]) <= stages


def test_references_resolve(frames: dict[str, pd.DataFrame]) -> None:
    account_ids = set(frames["Account.csv"]["Id"])
    user_ids = set(frames["User.csv"]["Id"])
    for name in ["Account.csv", "Contact.csv", "Opportunity.csv"]:
        assert set(frames[name]["OwnerId"]) <= user_ids, name
    assert set(frames["Contact.csv"]["AccountId"]) <= account_ids
    assert set(frames["Opportunity.csv"]["AccountId"]) <= account_ids


def test_closed_deals_fall_in_the_two_years_before_as_of(frames: dict[str, pd.DataFrame]) -> None:
    opps = frames["Opportunity.csv"]
    closed = opps[opps["IsClosed"] == "1"]
    assert closed["CloseDate"].min() >= "2024-11-01" and closed["CloseDate"].max() < "2026-11-01"
    assert (closed["CreatedDate"].str[:10] <= closed["CloseDate"]).all()
    open_ = opps[opps["IsClosed"] == ""]
    assert (open_["CloseDate"] >= "2026-11-01").mean() > 0.8  # the rest slipped past due


def test_messy_websites_and_domain_duplicates(
    default_export: tuple[Path, dict[str, int]], frames: dict[str, pd.DataFrame]
) -> None:
    _, counts = default_export
    accounts = frames["Account.csv"]
    sites = accounts["Website"]
    blank = sites.str.strip() == ""
    assert blank.sum() == counts["blank_websites"]
    assert 0.01 <= blank.mean() <= 0.04
    for pattern in [r"^www\.", r"^http://", r"^https://", r"/about$", r":\d+$", r"\?ref=", r"[A-Z]"]:
        assert sites.str.contains(pattern).any(), pattern
    assert (~sites.str.isascii()).sum() == counts["idn_websites"] > 0

    domains = sites.map(_domain)
    dup = accounts[domains.notna()].assign(domain=domains).groupby("domain")["Website"]
    sizes = dup.size()
    assert (sizes > 1).sum() >= 0.8 * counts["duplicates_by_domain"]
    spellings = dup.nunique()
    assert (spellings[sizes > 1] > 1).all()  # a duplicate never repeats the exact same string


def test_duplicates_without_website_need_fuzzy_review(
    default_export: tuple[Path, dict[str, int]], frames: dict[str, pd.DataFrame]
) -> None:
    _, counts = default_export
    accounts = frames["Account.csv"]
    keys = accounts["Name"].map(_name_key)
    no_site = accounts["Website"].str.strip() == ""
    with_site_keys = set(keys[~no_site])
    exact = sum(1 for k in keys[no_site] if k and k in with_site_keys)
    assert counts["duplicates_name_only"] > 0
    # most name-only duplicates normalise to a known name; the rest carry a typo
    assert exact >= 0.5 * counts["duplicates_name_only"]


def test_bad_rows_and_blank_fields(
    default_export: tuple[Path, dict[str, int]], frames: dict[str, pd.DataFrame]
) -> None:
    _, counts = default_export
    accounts = frames["Account.csv"]
    employees = accounts["NumberOfEmployees"]
    non_numeric = employees[(employees != "") & ~employees.str.fullmatch(r"\d+")]
    assert len(non_numeric) == counts["bad_employee_values"] == 3
    assert (accounts["Name"].str.strip() == "").sum() == counts["blank_names"] == 2
    assert counts["bad_rows_injected"] == 5
    for col in ["Industry", "NumberOfEmployees", "BillingCountry"]:
        assert 0.05 <= (accounts[col] == "").mean() <= 0.15, col
    numeric = pd.to_numeric(employees, errors="coerce")
    assert numeric.min() >= 5 and numeric.max() <= 50_000
    industries = set(accounts["Industry"])
    assert {"Software", "Technology", "Financial Services", "Professional Services", "Healthcare",
            "Manufacturing", "Retail", "Government", "Education", "Non-Profit"} <= industries  # fmt: skip
    countries = accounts["BillingCountry"].value_counts()
    assert countries[list(US)].sum() > 0.5 * len(accounts)
    assert {"Canada", "United Kingdom", "Germany", "Australia", "France", "India"} <= set(countries.index)


def test_win_rate_rises_with_fit(frames: dict[str, pd.DataFrame]) -> None:
    accounts, opps = frames["Account.csv"], frames["Opportunity.csv"]
    employees = pd.to_numeric(accounts["NumberOfEmployees"], errors="coerce")
    sweet = accounts["BillingCountry"].isin(US) & employees.between(200, 2000)
    sweet &= accounts["Industry"].isin(["Software", "Technology"])
    deals = opps[(opps["IsClosed"] == "1") & (opps["Type"] == "New Business")]
    deals = deals.merge(accounts.assign(sweet=sweet)[["Id", "sweet"]], left_on="AccountId", right_on="Id")
    won = deals["IsWon"] == "1"
    sweet_rate, rest_rate = won[deals["sweet"]].mean(), won[~deals["sweet"]].mean()
    assert deals["sweet"].sum() >= 30
    assert sweet_rate >= 2 * rest_rate and sweet_rate - rest_rate >= 0.2

    cycle = (pd.to_datetime(deals["CloseDate"]) - pd.to_datetime(deals["CreatedDate"].str[:10])).dt.days
    assert cycle[deals["sweet"]].median() < cycle[~deals["sweet"]].median()


def test_won_amounts_scale_with_headcount_and_match_arr(frames: dict[str, pd.DataFrame]) -> None:
    accounts, opps = frames["Account.csv"], frames["Opportunity.csv"]
    won = opps[opps["IsWon"] == "1"].merge(
        accounts[["Id", "NumberOfEmployees", "Type"]], left_on="AccountId", right_on="Id"
    )
    nb = won[won["Type_x"] == "New Business"]
    ratio = nb["Amount"].astype(float) / (nb["NumberOfEmployees"].astype(float) * 600 * 0.08)
    assert 0.8 <= ratio.median() <= 1.25
    log_amount = np.log(nb["Amount"].astype(float))
    log_employees = np.log(nb["NumberOfEmployees"].astype(float))
    assert np.corrcoef(log_amount, log_employees)[0, 1] > 0.9

    customers = accounts[accounts["Type"] == "Customer"]
    assert (customers["Current_ARR__c"] != "").all()
    assert (accounts.loc[accounts["Type"] != "Customer", "Current_ARR__c"] == "").all()
    bookings = won[won["Type_x"].isin(["New Business", "Expansion"])].groupby("AccountId")["Amount"]
    arr = bookings.apply(lambda s: s.astype(float).sum())
    for _, row in customers.iterrows():
        assert math.isclose(float(row["Current_ARR__c"]), arr[row["Id"]]), row["Name"]


def test_ownership_is_unbalanced(frames: dict[str, pd.DataFrame]) -> None:
    per_rep = frames["Account.csv"]["OwnerId"].value_counts()
    assert len(per_rep) == 10
    assert per_rep.max() >= 2.5 * per_rep.min()


def test_contacts_are_messy_and_realistic(
    default_export: tuple[Path, dict[str, int]], frames: dict[str, pd.DataFrame]
) -> None:
    _, counts = default_export
    contacts = frames["Contact.csv"]
    titles = set(contacts["Title"])
    for title in ["VP, Sales", "Head of RevOps", "Chief Revenue Officer", "Sr. Dir. Sales Operations", "CRO",
                  "Marketing Intern", "Executive Assistant", "CFO", "Software Engineer"]:  # fmt: skip
        assert title in titles, title
    assert any(t.islower() for t in titles) and any(t.isupper() and len(t) > 4 for t in titles)
    no_email = contacts["Email"] == ""
    assert no_email.sum() == counts["contacts_without_email"] > 0
    assert (contacts.loc[no_email, "LinkedIn_URL__c"] != "").all()
    emails = contacts.loc[~no_email, "Email"]
    assert emails.duplicated().sum() >= counts["contact_duplicates_injected"] * 0.8 > 0
    per_account = contacts.groupby("AccountId").size()
    assert 3 <= per_account.median() <= 5
    assert 0.2 <= len(per_account) / len(frames["Account.csv"]) <= 0.4
    assert set(contacts["HasOptedOutOfEmail"]) == {"", "1"}


def test_enrichment_file_gives_true_values(frames: dict[str, pd.DataFrame]) -> None:
    accounts, enrich = frames["Account.csv"], frames["demo_enrichment.csv"]
    assert enrich["domain"].is_unique
    assert (enrich["domain"] == enrich["domain"].map(_domain)).all()
    assert (enrich["domain"] == enrich["domain"].str.lower()).all()

    acc = accounts.assign(domain=accounts["Website"].map(_domain))
    acc = acc[acc["domain"].notna()]
    covered = acc["domain"].isin(set(enrich["domain"]))
    assert 0.5 <= acc.loc[~acc["domain"].duplicated(), "domain"].isin(set(enrich["domain"])).mean() <= 0.7

    joined = acc[covered].merge(enrich, on="domain")
    country = joined["BillingCountry"].replace({"US": "United States", "USA": "United States"})
    for crm, true in [("Industry", "industry"), ("NumberOfEmployees", "employees"), ("Last_Funding_Date__c",
                      "last_funding_date"), ("Tech_Stack__c", "tech_stack")]:  # fmt: skip
        filled = joined[crm] != ""
        assert (joined.loc[filled, crm] == joined.loc[filled, true]).all(), crm
        assert (joined.loc[~filled & (joined[crm] == ""), true] != "").any(), crm  # enrichment fills blanks
    filled = country != ""
    assert (country[filled] == joined.loc[filled, "country"]).all()
