"""Title normalisation on real-world CRM titles."""

from __future__ import annotations

import pandas as pd
import pytest

from marketmap.scoring import titles
from marketmap.scoring.titles import TitleInfo, canonical_department, normalise_title, normalise_titles

# raw title -> (clean, seniority, department)
CASES = [
    ("VP, Sales", "vice president sales", "VP", "Sales"),
    ("vp sales", "vice president sales", "VP", "Sales"),
    ("VICE PRESIDENT OF SALES", "vice president sales", "VP", "Sales"),
    ("Vice-President, Sales", "vice president sales", "VP", "Sales"),
    ("V.P. Sales", "vice president sales", "VP", "Sales"),
    ("Head of RevOps", "head revenue operations", "VP", "Revenue Operations"),
    ("Head of Rev-Ops", "head revenue operations", "VP", "Revenue Operations"),
    ("Chief Revenue Officer", "chief revenue officer", "C-Level", "Sales"),
    ("CRO", "chief revenue officer", "C-Level", "Sales"),
    ("Sr. Dir.", "senior director", "Director", None),
    ("SVP Global Sales", "senior vice president global sales", "VP", "Sales"),
    ("EVP", "executive vice president", "VP", None),
    ("AVP, Finance", "associate vice president finance", "Director", "Finance"),
    ("Dir. of Rev Ops", "director revenue operations", "Director", "Revenue Operations"),
    ("Revenue Operations Manager", "revenue operations manager", "Manager", "Revenue Operations"),
    ("VP Revenue Operations", "vice president revenue operations", "VP", "Revenue Operations"),
    ("Sales Ops Analyst", "sales operations analyst", "Individual Contributor", "Sales Operations"),
    ("Sr. Mgr, Sales Ops", "senior manager sales operations", "Manager", "Sales Operations"),
    (
        "Director, Sales Operations & Enablement",
        "director sales operations and enablement",
        "Director",
        "Sales Operations",
    ),
    ("CEO", "chief executive officer", "C-Level", "Executive"),
    ("Co-Founder & CEO", "co founder and chief executive officer", "C-Level", "Executive"),
    ("CFO", "chief financial officer", "C-Level", "Finance"),
    ("COO", "chief operating officer", "C-Level", "Operations"),
    ("CMO", "chief marketing officer", "C-Level", "Marketing"),
    ("CTO", "chief technology officer", "C-Level", "Engineering"),
    ("President", "president", "C-Level", "Executive"),
    ("Founder & Head of Sales", "founder and head sales", "C-Level", "Sales"),
    ("Director, FP&A", "director financial planning and analysis", "Director", "Finance"),
    ("Marketing Manager", "marketing manager", "Manager", "Marketing"),
    ("Product Marketing Manager", "product marketing manager", "Manager", "Marketing"),
    ("Customer Success Manager", "customer success manager", "Manager", "Customer Success"),
    ("CSM", "customer success manager", "Manager", "Customer Success"),
    ("Account Executive", "account executive", "Individual Contributor", "Sales"),
    ("SDR", "sales development representative", "Individual Contributor", "Sales"),
    ("BDR Team Lead", "business development representative team lead", "Manager", "Sales"),
    ("Senior Software Engineer", "senior software engineer", "Individual Contributor", "Engineering"),
    ("VP Engineering", "vice president engineering", "VP", "Engineering"),
    ("Marketing Intern", "marketing intern", "Intern/Assistant", "Marketing"),
    (
        "Executive Assistant to the CEO",
        "executive assistant to chief executive officer",
        "Intern/Assistant",
        "Executive",
    ),
    ("Assistant Vice President, Sales", "assistant vice president sales", "Director", "Sales"),
    ("Managing Director", "managing director", "C-Level", "Executive"),
    ("Chief of Staff", "chief staff", "Director", None),
    ("Product Owner", "product owner", "Individual Contributor", "Product"),
    ("VP Sales at Acme Corp", "vice president sales", "VP", "Sales"),
    ("Head of Sales @ Initech", "head sales", "VP", "Sales"),
    ("CEO | Board Member | Speaker", "chief executive officer", "C-Level", "Executive"),
    ("Operations Manager", "operations manager", "Manager", "Operations"),
    ("Business Analyst", "business analyst", "Individual Contributor", None),
    ("Controller", "controller", "Individual Contributor", "Finance"),
    ("General Counsel", "general counsel", "Individual Contributor", "Legal"),
    ("HR Business Partner", "human resources business partner", "Individual Contributor", "Human Resources"),
    ("Head of GTM Operations", "head go to market operations", "VP", "Revenue Operations"),
]


@pytest.mark.parametrize(("raw", "clean", "seniority", "department"), CASES, ids=[c[0] for c in CASES])
def test_real_world_titles(raw, clean, seniority, department):
    assert normalise_title(raw) == TitleInfo(clean, seniority, department)


def test_table_has_thirty_plus_titles():
    assert len(CASES) >= 30


@pytest.mark.parametrize("blank", [None, "", "   ", float("nan"), "---"])
def test_blank_titles(blank):
    assert normalise_title(blank) == TitleInfo("", None, None)


def test_variants_collapse_to_one_clean_form():
    variants = ["VP Sales", "V.P. of Sales", "Vice President, Sales", "vp - sales", "VICE PRESIDENT SALES"]
    assert {normalise_title(v).clean for v in variants} == {"vice president sales"}


def test_intern_is_a_whole_word():
    assert normalise_title("VP International Sales").seniority == "VP"
    assert normalise_title("Internal Audit Manager").seniority == "Manager"


def test_client_aliases_add_and_override():
    aliases = {"CSO": "Chief Security Officer", "Revenue Leader": "VP Sales", "Growth Ops": "RevOps"}
    assert normalise_title("CSO", aliases) == TitleInfo("chief security officer", "C-Level", "Engineering")
    # without the alias CSO is the default chief sales officer
    assert normalise_title("CSO").department == "Sales"
    # an expansion may itself use default abbreviations
    assert normalise_title("Revenue Leader", aliases).clean == "vice president sales"
    assert normalise_title("Head of Growth Ops", aliases).department == "Revenue Operations"


def test_default_table_is_documented_and_lower_case():
    for table in (titles.ABBREVIATIONS,):
        assert all(k == k.lower() and v == v.lower() for k, v in table.items())
    assert {d for d, _ in titles.DEPARTMENT_RULES} >= {
        "Revenue Operations",
        "Sales Operations",
        "Sales",
        "Marketing",
        "Finance",
        "Engineering",
        "Operations",
        "Customer Success",
        "Executive",
    }
    assert {lvl for lvl, _ in titles.SENIORITY_RULES} == set(titles.SENIORITY_LEVELS)


def test_normalise_titles_vectorised_once_per_unique(monkeypatch):
    calls: list = []
    real = titles.normalise_title

    def counting(title, aliases=None):
        calls.append(title)
        return real(title, aliases)

    monkeypatch.setattr(titles, "normalise_title", counting)
    s = pd.Series(["VP Sales", "CRO", None, "VP Sales", "CRO", float("nan")] * 50, index=range(100, 400))
    out = normalise_titles(s)
    assert sorted(map(str, calls)) == sorted(["VP Sales", "CRO", "None"])
    assert list(out.columns) == ["clean", "seniority", "department"]
    assert out.index.equals(s.index)
    assert out.loc[100].tolist() == ["vice president sales", "VP", "Sales"]
    assert out.loc[102].tolist() == ["", None, None]
    assert out.loc[105, "seniority"] is None


def test_normalise_titles_with_string_dtype_and_aliases():
    s = pd.Series(["Revenue Leader", None], dtype="string")
    out = normalise_titles(s, {"revenue leader": "CRO"})
    assert out["seniority"].tolist() == ["C-Level", None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("RevOps", "Revenue Operations"),
        ("Rev Ops", "Revenue Operations"),
        ("sales ops", "Sales Operations"),
        ("Sales", "Sales"),
        ("Finance & Accounting", "Finance"),
        ("Skunkworks", "Skunkworks"),
        ("", None),
        (None, None),
    ],
)
def test_canonical_department(value, expected):
    assert canonical_department(value) == expected
