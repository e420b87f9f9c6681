"""Deterministic demo CRM for the demo client ("Northwind Analytics"), in Salesforce export format.

``generate_demo_export`` writes ``Account.csv``, ``Contact.csv``, ``Opportunity.csv`` and
``User.csv`` shaped like a real Salesforce export (UTF-8 with BOM, API field names, 18-character
ids, booleans ``1`` or blank), plus ``demo_enrichment.csv``, a bought vertical data file keyed by
registrable domain that the ``export_file`` enrichment provider reads.

The data is deliberately messy (website variants, duplicates, blanks, a few unparseable rows)
and carries a real signal: the chance of winning a deal rises with the account's fit to the
rubric of ``include/clients/demo.yaml``, won amounts scale with headcount, and good-fit deals
close faster. The same seed gives byte-identical files.

Usage: ``python -m marketmap.demo.generate OUT_DIR [--seed N] [--accounts N]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import random
import tempfile
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

AS_OF = date(2026, 11, 1)

ACCOUNT_COLUMNS = [
    "Id", "IsDeleted", "Name", "Type", "BillingStreet", "BillingCity", "BillingState", "BillingPostalCode",
    "BillingCountry", "Phone", "Website", "Industry", "AnnualRevenue", "NumberOfEmployees", "OwnerId",
    "CreatedDate", "LastModifiedDate", "AccountSource", "Tech_Stack__c", "Funding_Stage__c",
    "Last_Funding_Date__c", "Current_ARR__c", "Partner__c", "Prevent_Override__c", "Account_Tier__c",
    "ICP_Fit_Score__c", "Account_Valuation__c",
]  # fmt: skip
CONTACT_COLUMNS = [
    "Id", "IsDeleted", "AccountId", "LastName", "FirstName", "Name", "MailingCountry", "Email", "Title",
    "Department", "OwnerId", "HasOptedOutOfEmail", "CreatedDate", "LastModifiedDate", "LinkedIn_URL__c",
    "Role_Start_Date__c",
]  # fmt: skip
OPPORTUNITY_COLUMNS = [
    "Id", "IsDeleted", "AccountId", "Name", "StageName", "Amount", "Probability", "CloseDate", "Type",
    "IsClosed", "IsWon", "ForecastCategoryName", "OwnerId", "CreatedDate", "LastModifiedDate",
]  # fmt: skip
USER_COLUMNS = ["Id", "Name", "FirstName", "LastName", "Email", "IsActive", "UserRole"]
ENRICHMENT_COLUMNS = ["domain", "industry", "employees", "tech_stack", "last_funding_date", "country"]

# The reps of include/clients/demo.yaml (id, name, territory).
REPS = [
    ("005DEMO000000001", "Avery Johnson", "West"),
    ("005DEMO000000002", "Blake Chen", "West"),
    ("005DEMO000000003", "Casey Morgan", "Central"),
    ("005DEMO000000004", "Devon Patel", "Central"),
    ("005DEMO000000005", "Emerson Ruiz", "East"),
    ("005DEMO000000006", "Finley Okafor", "East"),
    ("005DEMO000000007", "Gray Nakamura", "International"),
    ("005DEMO000000008", "Harper Lindqvist", "International"),
    ("005DEMO000000009", "Indigo Alvarez", "Strategic"),
    ("005DEMO000000010", "Jules Dubois", "Strategic"),
]
# Share of domestic accounts per non-international rep: deliberately unbalanced (rep 1 holds 3x rep 2).
_DOMESTIC_REP_WEIGHTS = {0: 3.0, 1: 1.0, 2: 1.4, 3: 1.2, 4: 1.8, 5: 1.1, 8: 1.5, 9: 1.3}
_INTERNATIONAL_REP_WEIGHTS = {6: 0.55, 7: 0.45}

# --- the demo rubric (demo.yaml icp.rubrics[core]), used for the hidden fit score ------------------
_GEO_POINTS = {"United States": 20, "Canada": 12, "United Kingdom": 12, "Germany": 8, "Australia": 8}
_INDUSTRY_POINTS = {
    "Software": 20, "Technology": 20, "Financial Services": 15, "Professional Services": 12,
    "Healthcare": 8, "Manufacturing": 6, "Retail": 5,
}  # fmt: skip
_TECH_POINTS = {"Salesforce": 20, "HubSpot": 16, "Snowflake": 12, "Segment": 8}
_SEAT_PRICE, _PENETRATION = 600, 0.08

# --- vocabulary -----------------------------------------------------------------------------------
# canonical country -> (weight, [(tld, weight)], legal forms, [(city, state, postal prefix)])
_COUNTRIES: dict[str, tuple[float, list[tuple[str, float]], list[str], list[tuple[str, str, str]]]] = {
    "United States": (
        68.0,
        [(".com", 72), (".io", 10), (".co", 5), (".net", 5), (".ai", 4), (".us", 2), (".app", 2)],
        ["Inc", "Inc.", "LLC", "Corp", "Corporation", "Co."],
        [
            ("San Francisco", "CA", "941"), ("Los Angeles", "CA", "900"), ("San Diego", "CA", "921"),
            ("Seattle", "WA", "981"), ("Portland", "OR", "972"), ("Denver", "CO", "802"),
            ("Boulder", "CO", "803"), ("Salt Lake City", "UT", "841"), ("Phoenix", "AZ", "850"),
            ("Austin", "TX", "787"), ("Dallas", "TX", "752"), ("Chicago", "IL", "606"),
            ("Minneapolis", "MN", "554"), ("Kansas City", "MO", "641"), ("St. Louis", "MO", "631"),
            ("Columbus", "OH", "432"), ("Detroit", "MI", "482"), ("Indianapolis", "IN", "462"),
            ("Madison", "WI", "537"), ("Nashville", "TN", "372"), ("Atlanta", "GA", "303"),
            ("Miami", "FL", "331"), ("Raleigh", "NC", "276"), ("Washington", "DC", "200"),
            ("Philadelphia", "PA", "191"), ("Pittsburgh", "PA", "152"), ("New York", "NY", "100"),
            ("Newark", "NJ", "071"), ("Boston", "MA", "021"), ("Hartford", "CT", "061"),
        ],
    ),
    "Canada": (
        7.0, [(".ca", 55), (".com", 40), (".io", 5)], ["Inc.", "Ltd.", "Corp."],
        [("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B"), ("Montreal", "QC", "H3B"),
         ("Calgary", "AB", "T2P"), ("Ottawa", "ON", "K1P"), ("Waterloo", "ON", "N2L")],
    ),
    "United Kingdom": (
        7.0, [(".co.uk", 60), (".com", 32), (".io", 8)], ["Ltd", "Limited", "PLC", "LLP"],
        [("London", "", "EC1A"), ("Manchester", "", "M1"), ("Edinburgh", "", "EH1"),
         ("Bristol", "", "BS1"), ("Cambridge", "", "CB2"), ("Leeds", "", "LS1")],
    ),
    "Germany": (
        4.0, [(".de", 80), (".com", 15), (".io", 5)], ["GmbH", "AG", "GmbH & Co. KG"],
        [("Berlin", "BE", "10"), ("München", "BY", "80"), ("Hamburg", "HH", "20"),
         ("Köln", "NW", "50"), ("Frankfurt am Main", "HE", "60"), ("Stuttgart", "BW", "70")],
    ),
    "Australia": (
        3.5, [(".com.au", 70), (".com", 25), (".io", 5)], ["Pty Ltd", "Pty. Ltd."],
        [("Sydney", "NSW", "2"), ("Melbourne", "VIC", "3"), ("Brisbane", "QLD", "4"), ("Perth", "WA", "6")],
    ),
    "France": (
        2.5, [(".fr", 75), (".com", 25)], ["SAS", "SA", "SARL"],
        [("Paris", "", "75"), ("Lyon", "", "69"), ("Toulouse", "", "31"), ("Nantes", "", "44")],
    ),
    "India": (
        2.5, [(".in", 35), (".co.in", 20), (".com", 40), (".io", 5)], ["Pvt Ltd", "Private Limited", "Ltd"],
        [("Bengaluru", "KA", "560"), ("Mumbai", "MH", "400"), ("Pune", "MH", "411"),
         ("Hyderabad", "TG", "500")],
    ),
    "Netherlands": (1.5, [(".nl", 70), (".com", 30)], ["B.V.", "N.V."],
                    [("Amsterdam", "", "10"), ("Utrecht", "", "35")]),
    "Ireland": (1.0, [(".ie", 60), (".com", 40)], ["Ltd", "DAC"],
                [("Dublin", "", "D02"), ("Cork", "", "T12")]),
    "Sweden": (0.8, [(".se", 70), (".com", 30)], ["AB"],
               [("Stockholm", "", "111"), ("Gothenburg", "", "411")]),
    "Singapore": (0.7, [(".com.sg", 60), (".sg", 20), (".com", 20)], ["Pte Ltd"], [("Singapore", "", "0")]),
    "Israel": (0.5, [(".co.il", 60), (".com", 40)], ["Ltd"], [("Tel Aviv", "", "6")]),
    "Brazil": (0.5, [(".com.br", 80), (".com", 20)], ["Ltda", "S.A."], [("São Paulo", "SP", "01")]),
    "Japan": (0.5, [(".co.jp", 70), (".com", 30)], ["K.K.", "Co., Ltd."], [("Tokyo", "", "100")]),
    "Spain": (0.5, [(".es", 75), (".com", 25)], ["S.L.", "S.A."],
              [("Madrid", "", "280"), ("Barcelona", "", "080")]),
}  # fmt: skip
_US_LABELS = [("United States", 0.55), ("US", 0.25), ("USA", 0.20)]
_US_STATE_NAMES = {
    "CA": "California",
    "TX": "Texas",
    "NY": "New York",
    "MA": "Massachusetts",
    "WA": "Washington",
}
_GDPR = {"United Kingdom", "Germany", "France", "Netherlands", "Ireland", "Sweden", "Spain"}

_INDUSTRIES = {
    "Software": 17, "Technology": 12, "Financial Services": 10, "Professional Services": 10,
    "Healthcare": 10, "Manufacturing": 11, "Retail": 8, "Government": 4, "Education": 5,
    "Non-Profit": 4, "Media": 3, "Transportation": 3, "Energy": 3,
}  # fmt: skip
_INDUSTRY_DESCRIPTORS = {
    "Software": ["Software", "Labs", "Cloud", "AI", "Systems", "Data", "Analytics", "Apps"],
    "Technology": ["Technologies", "Tech", "Networks", "Digital", "Devices", "Solutions", "Robotics"],
    "Financial Services": ["Capital", "Financial", "Bank", "Insurance", "Wealth", "Payments", "Credit"],
    "Professional Services": ["Consulting", "Advisors", "Group", "Partners", "Associates", "Legal"],
    "Healthcare": ["Health", "Medical", "Care", "Clinics", "Therapeutics", "Diagnostics"],
    "Manufacturing": ["Manufacturing", "Industries", "Components", "Fabrication", "Works", "Materials"],
    "Retail": ["Goods", "Outfitters", "Market", "Supply", "Stores", "Brands"],
    "Media": ["Media", "Studios", "Publishing", "Entertainment"],
    "Transportation": ["Logistics", "Freight", "Transport", "Mobility"],
    "Energy": ["Energy", "Power", "Solar", "Utilities"],
}
_REVENUE_PER_EMPLOYEE = {
    "Software": 220_000, "Technology": 250_000, "Financial Services": 400_000,
    "Professional Services": 180_000,
    "Healthcare": 150_000, "Manufacturing": 300_000, "Retail": 200_000, "Education": 120_000,
    "Non-Profit": 90_000, "Media": 200_000, "Transportation": 260_000, "Energy": 500_000,
}  # fmt: skip

_ROOT_A = [
    "Bright", "North", "Blue", "Silver", "Iron", "Clear", "Swift", "True", "Red", "Green", "Stone", "Cedar",
    "Maple", "Oak", "Pine", "River", "Lake", "Summit", "Harbor", "Bay", "Sun", "Star", "Moon", "Sky",
    "Cloud", "Data", "Signal", "Vector", "Quantum", "Nova", "Apex", "Core", "Prime", "Vertex", "Pixel",
    "Atlas", "Orbit", "Echo", "Polar", "Crystal", "Golden", "Copper", "Cobalt", "Amber", "Falcon", "Eagle",
    "Hawk", "Wolf", "Fox", "Bear", "Lion", "Rapid", "Smart", "Open", "Next", "Zen", "Ever", "Hyper",
    "Omni", "Terra", "Aero", "Aqua", "Flex", "Agile", "Bold", "Keen", "Lumen", "Mosaic", "Onyx", "Sage",
]  # fmt: skip
_ROOT_B = [
    "wave", "point", "path", "bridge", "field", "stone", "works", "line", "scale", "stack", "forge", "gate",
    "light", "spring", "ridge", "brook", "crest", "view", "well", "wind", "leaf", "root", "mark", "hub",
    "loop", "base", "craft", "shift", "sight", "flow", "grid", "nest", "port", "sphere", "track", "trail",
    "vault", "yard", "beam", "bit", "cast", "dock", "edge", "frame", "lane", "mint", "peak", "rock", "sail",
]  # fmt: skip
_TOWN_A = ["Oak", "Maple", "Cedar", "Pine", "Elm", "Ash", "Birch", "Willow", "Spring", "Clear", "Fair",
           "Green", "Red", "White", "Stone", "Brook", "Lake", "River", "Hill", "Glen", "North", "South",
           "East", "West", "Rock", "Sand", "Mill", "Bridge", "Harbor", "Mead"]  # fmt: skip
_TOWN_B = ["wood", "ville", "ton", "field", "ridge", "brook", "dale", "ford", "port", "burg", "view",
           "haven", "mont", "water", "land", "crest", "side", "wick", "stead", "bury"]  # fmt: skip
_DE_A = ["Grün", "Schön", "Blau", "Kühn", "Süd", "Nord", "Wald", "Stahl", "Licht", "Brück", "Mühl",
         "König", "Fürst", "Bär", "Löwen", "Hoch", "Tal", "Berg", "Stern", "Fluss"]  # fmt: skip
_DE_B = ["werk", "haus", "bau", "feld", "hof", "tech", "daten", "logik", "netz", "mühle", "brücke", "stein"]
_DE_PLACE = ["München", "Köln", "Düsseldorf", "Nürnberg", "Lübeck", "Würzburg", "Göttingen", "Saarbrücken"]
_DE_DESC = ["Software", "Systeme", "Daten", "Technik", "Beratung", "Logistik"]
_FR_A = ["Éclair", "Étoile", "Rivière", "Forêt", "Lumière", "Château", "Hélios", "Océan", "Azur", "Mistral"]
_FR_DESC = ["Conseil", "Logiciel", "Données", "Solutions", "Systèmes"]
_SURNAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez",
    "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Shah", "Kim", "Park", "Chen", "Wang", "Li",
    "Singh", "Kumar", "Cohen", "Murphy", "Kelly", "O'Brien", "Sullivan", "Schmidt", "Müller", "Fischer",
    "Weber", "Dubois", "Moreau", "Rossi", "Bianchi", "Silva", "Santos", "Kowalski", "Novak", "Larsen",
    "Johansson", "Tanaka", "Sato", "Okafor", "Adeyemi", "Mensah", "Haddad", "Ivanova", "Hale", "Whitford",
    "Prescott", "Langley", "Ashford", "Kendall", "Thornton", "Whitaker", "Fairbanks", "Holloway",
]  # fmt: skip
_FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
    "Andrew", "Emily", "Joshua", "Michelle", "Kevin", "Amanda", "Brian", "Melissa", "Priya", "Rahul",
    "Wei", "Mei", "Hiroshi", "Yuki", "Carlos", "Sofia", "Mateo", "Lucía", "José", "Zoë", "Chloé", "Renée",
    "Lukas", "Jürgen", "Anna", "Sven", "Ingrid", "Oliver", "Amelia", "Noah", "Olivia", "Liam", "Emma",
    "Ethan", "Ava", "Aisha", "Omar", "Fatima", "Chidi", "Ngozi", "Kwame", "Ama", "Dmitri", "Elena",
    "Siobhan", "Connor", "Aoife", "Ravi", "Ananya", "Jordan", "Taylor", "Morgan", "Casey", "Riley",
]  # fmt: skip
_NICKNAMES = {"Robert": "Bob", "William": "Bill", "Michael": "Mike", "Richard": "Rick", "Joseph": "Joe",
              "Elizabeth": "Liz", "Jennifer": "Jen", "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony",
              "Steven": "Steve", "Andrew": "Andy", "Joshua": "Josh", "Thomas": "Tom",
              "Patricia": "Pat"}  # fmt: skip
_STREETS = ["Main St", "Market St", "Innovation Way", "Commerce Dr", "Park Ave", "Oak St", "Broadway",
            "Technology Pkwy", "Lake Shore Dr", "Mission St", "Elm St", "Congress Ave", "Industrial Blvd",
            "Harbor Rd", "Center St", "Pine St", "Washington Blvd", "1st Ave", "Peachtree St"]  # fmt: skip

# Known tools with a base adoption probability; Salesforce and HubSpot shift with company size.
_TOOLS = [
    ("Salesforce", 0.0), ("HubSpot", 0.0), ("Snowflake", 0.10), ("Segment", 0.06), ("Marketo", 0.07),
    ("Outreach", 0.06), ("Gong", 0.05), ("Zendesk", 0.18), ("Intercom", 0.08), ("Slack", 0.45),
    ("Jira", 0.25), ("AWS", 0.30), ("Google Workspace", 0.45), ("Microsoft 365", 0.35),
    ("Microsoft Dynamics", 0.05), ("NetSuite", 0.10), ("Stripe", 0.12), ("Tableau", 0.10),
    ("Looker", 0.05), ("Pipedrive", 0.04),
]  # fmt: skip
_TECHY = {"Software", "Technology"}
_PUBLIC_SECTOR = {"Government", "Education", "Non-Profit"}

# (title, department, weight); the department is what a clean CRM would hold.
_TITLES = [
    ("Chief Revenue Officer", "Executive", 2.0), ("CRO", "Executive", 1.0), ("VP, Sales", "Sales", 2.5),
    ("VP Sales", "Sales", 2.5), ("SVP Global Sales", "Sales", 1.0),
    ("Head of RevOps", "Revenue Operations", 1.5),
    ("Head of Revenue Operations", "Revenue Operations", 1.5),
    ("VP Revenue Operations", "Revenue Operations", 1.5),
    ("Director of Revenue Operations", "Revenue Operations", 2.0),
    ("Revenue Operations Manager", "Revenue Operations", 2.5),
    ("Sr. Dir. Sales Operations", "Sales Operations", 1.0),
    ("Director of Sales Operations", "Sales Operations", 1.5),
    ("VP Sales Operations", "Sales Operations", 1.0), ("Sales Ops Analyst", "Sales Operations", 2.5),
    ("Sales Operations Manager", "Sales Operations", 2.0), ("Sales Manager", "Sales", 4.0),
    ("Account Executive", "Sales", 5.0), ("Sales Development Representative", "Sales", 3.0),
    ("Business Analyst", "Operations", 2.5), ("Operations Manager", "Operations", 2.5),
    ("CFO", "Finance", 1.5), ("Controller", "Finance", 1.5), ("VP Finance", "Finance", 1.0),
    ("Chief Executive Officer", "Executive", 1.5), ("CEO", "Executive", 1.0),
    ("Founder & CEO", "Executive", 0.8), ("COO", "Executive", 0.8), ("CMO", "Marketing", 0.8),
    ("VP Marketing", "Marketing", 1.5), ("Marketing Manager", "Marketing", 3.0),
    ("Marketing Intern", "Marketing", 1.0), ("Executive Assistant", "Administration", 1.5),
    ("Office Manager", "Administration", 1.0), ("Software Engineer", "Engineering", 4.0),
    ("Senior Software Engineer", "Engineering", 2.0), ("CTO", "Engineering", 0.8),
    ("IT Director", "IT", 1.0), ("HR Manager", "Human Resources", 1.5),
    ("Customer Success Manager", "Customer Success", 2.5), ("Student Intern", "", 0.3),
]  # fmt: skip

_OPEN_STAGES = [("Qualification", 10, "Pipeline", 0.35), ("Discovery", 20, "Pipeline", 0.28),
                ("Proposal/Quote", 50, "Best Case", 0.20), ("Negotiation", 75, "Commit", 0.17)]  # fmt: skip
_STAGE_FORECAST = {"Closed Won": (100, "Closed"), "Closed Lost": (0, "Omitted")} | {
    s: (p, f) for s, p, f, _ in _OPEN_STAGES
}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]  # fmt: skip
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class _Company:
    """One real-world company: its true attributes, before the CRM mangles them."""

    base: str  # name without legal form
    legal: str
    slug: str  # distinctive part, for domains
    descriptor: str
    country: str
    city: str
    state: str
    postal: str
    industry: str
    employees: int
    revenue: int | None
    tech: list[str]
    funding_stage: str
    funding_days: int | None  # days before as_of of the last round
    domain: str = ""
    fit: float = 0.0
    idn: bool = False


@dataclass
class _AccountRow:
    """One Account.csv record; ``company`` indexes the true company it (possibly badly) describes."""

    company: int
    kind: str  # original | duplicate_domain | duplicate_name | bad_employees | blank_name
    account_type: str = "Prospect"
    owner: int = 0
    created: float = 0.0  # days before as_of (fractional: time of day)
    modified: float = 0.0
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class _Opp:
    account: int  # index into the account rows
    opp_type: str
    stage: str
    amount: int | None
    created: float
    close: int  # days before as_of (negative: in the future)
    owner: int


# ------------------------------------------------------------------------------------------------
# small helpers


def _sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce id: 15 case-sensitive characters plus the case-checksum suffix."""
    body = ""
    for _ in range(7):
        n, d = divmod(n, 62)
        body = _BASE62[d] + body
    id15 = f"{prefix}Dm000{body}"
    suffix = ""
    for i in range(3):
        bits = sum(1 << j for j, c in enumerate(id15[i * 5 : i * 5 + 5]) if "A" <= c <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


def _ts(as_of: date, days_ago: float) -> str:
    moment = datetime(as_of.year, as_of.month, as_of.day) - timedelta(seconds=round(days_ago * 86400))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _day(as_of: date, days_ago: int) -> str:
    return (as_of - timedelta(days=int(days_ago))).isoformat()


def _pick(r: random.Random, weighted: list[tuple[str, float]]) -> str:
    return r.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _ascii(s: str) -> str:
    folded = unicodedata.normalize("NFKD", s.replace("ß", "ss"))
    return "".join(c for c in folded if not unicodedata.combining(c))


def _slugify(s: str) -> str:
    return "".join(c for c in s.lower() if c.isalnum())


def _size_points(employees: int) -> int:
    for upper, points in ((50, 3), (200, 15), (2000, 25), (10000, 15)):
        if employees < upper:
            return points
    return 5


def _fit(c: _Company) -> float:
    """The demo rubric applied to the true values; excluded accounts score 0."""
    if c.industry == "Government":
        return 0.0
    funding = 0
    if c.funding_days is not None:
        funding = 15 if c.funding_days <= 365 else 8 if c.funding_days <= 730 else 0
    tech = max((_TECH_POINTS.get(t, 0) for t in c.tech), default=0)
    return float(
        _GEO_POINTS.get(c.country, 0)
        + _size_points(c.employees)
        + _INDUSTRY_POINTS.get(c.industry, 0)
        + funding
        + tech
    )


def _headcount_value(employees: int) -> float:
    return employees * _SEAT_PRICE * _PENETRATION


# ------------------------------------------------------------------------------------------------
# companies


def _company_name(
    r: random.Random, country: str, industry: str, legal_forms: list[str]
) -> tuple[str, str, str, str]:
    """(base name, legal form, slug for the domain, descriptor) of a new company."""
    town = r.choice(_TOWN_A) + r.choice(_TOWN_B)
    if industry == "Government":
        if country == "United States":
            form = r.random()
            if form < 0.45:
                return f"City of {town}", "", "cityof" + town.lower(), ""
            if form < 0.75:
                return f"{town} County", "", town.lower() + "county", ""
            return f"{town} Housing Authority", "", town.lower() + "housing", ""
        return f"{town} Council", "", town.lower() + "council", ""
    if industry == "Education":
        kind = r.choice(["University", "College", "Community College", "Academy", "Unified School District"])
        slug = town.lower() + ("" if kind == "University" else _slugify(kind)[:7])
        return f"{town} {kind}", "", slug, ""
    if industry == "Non-Profit":
        kind = r.choice(["Foundation", "Community Foundation", "Alliance", "Trust", "Society"])
        return f"{town} {kind}", "", town.lower() + _slugify(kind.split()[-1]), ""

    legal = r.choice(legal_forms) if r.random() < 0.55 else ""
    descriptors = _INDUSTRY_DESCRIPTORS.get(industry, ["Group"])
    if country == "Germany" and r.random() < 0.6:
        if r.random() < 0.25:
            place = r.choice(_DE_PLACE)
            desc = r.choice(_DE_DESC)
            return f"{place} {desc}", legal or "GmbH", f"{place.lower()}-{desc.lower()}", ""
        compound = r.choice(_DE_A) + r.choice(_DE_B)
        return compound, legal or "GmbH", compound.lower(), ""
    if country == "France" and r.random() < 0.4:
        word, desc = r.choice(_FR_A), r.choice(_FR_DESC)
        return f"{word} {desc}", legal, f"{word.lower()}-{desc.lower()}", ""
    if industry == "Professional Services" and r.random() < 0.35:
        a, b = r.sample(_SURNAMES, 2)
        return f"{a} & {b}", r.choice(["LLP", "", "Partners"]), _slugify(_ascii(a + b)), ""
    if r.random() < 0.15:
        surname = r.choice(_SURNAMES)
        desc = r.choice(descriptors)
        return f"{surname} {desc}", legal, _slugify(_ascii(surname + desc)), ""
    a = r.choice(_ROOT_A)
    b = r.choice(_ROOT_B)
    while a.lower() == b:
        b = r.choice(_ROOT_B)
    compound = a + b
    desc = r.choice(descriptors) if r.random() < 0.5 else ""
    base = f"{compound} {desc}".strip()
    return base, legal, compound.lower(), desc or r.choice(descriptors)


def _domain_for(r: random.Random, c: _Company, tld: str, taken: set[str]) -> str:
    if c.industry in _PUBLIC_SECTOR:
        if c.country == "United States":
            tld = {"Government": ".gov", "Education": ".edu", "Non-Profit": ".org"}[c.industry]
        elif c.country == "United Kingdom":
            tld = {"Government": ".gov.uk", "Education": ".ac.uk", "Non-Profit": ".org.uk"}[c.industry]
        elif c.industry == "Non-Profit":
            tld = ".org"
    slug = c.slug
    desc = _slugify(_ascii(c.descriptor)) if c.descriptor else ""
    candidates = [slug + tld]
    if desc:
        candidates += [slug + desc + tld, f"{slug}-{desc}{tld}"]
    candidates += [f"get{slug}{tld}", f"{slug}hq{tld}", f"the{slug}{tld}", f"{slug}group{tld}"]
    for cand in candidates:
        if cand not in taken:
            return cand
    n = 2
    while f"{slug}{n}{tld}" in taken:
        n += r.randint(1, 9)
    return f"{slug}{n}{tld}"


def _make_companies(rng: np.random.Generator, r: random.Random, n: int) -> list[_Company]:
    countries = list(_COUNTRIES)
    cw = np.array([_COUNTRIES[c][0] for c in countries])
    country_idx = rng.choice(len(countries), size=n, p=cw / cw.sum())
    industries = list(_INDUSTRIES)
    iw = np.array([_INDUSTRIES[i] for i in industries], dtype=float)
    industry_idx = rng.choice(len(industries), size=n, p=iw / iw.sum())
    employees = np.clip(np.exp(rng.normal(math.log(180), 1.6, size=n)), 5, 50_000).astype(int)
    rev_noise = np.exp(rng.normal(0.0, 0.4, size=n))

    log_size = np.log(employees)
    p_tools = np.empty((n, len(_TOOLS)))
    for j, (_, base) in enumerate(_TOOLS):
        p_tools[:, j] = base
    techy = np.isin(industry_idx, [industries.index(i) for i in _TECHY])
    p_tools[:, 0] = 0.10 + 0.45 / (1 + np.exp(-(log_size - math.log(300))))  # Salesforce: bigger firms
    p_tools[:, 1] = 0.38 - 0.28 / (1 + np.exp(-(log_size - math.log(400))))  # HubSpot: smaller firms
    for name in ("Snowflake", "Segment", "Jira", "AWS", "Looker"):
        j = [t for t, _ in _TOOLS].index(name)
        p_tools[:, j] = np.where(techy, np.minimum(p_tools[:, j] * 2.2, 0.9), p_tools[:, j])
    tool_draws = rng.random((n, len(_TOOLS))) < p_tools

    funding_draw = rng.random(n)
    funding_days = rng.integers(15, 2200, size=n)
    ipo_days = rng.integers(400, 7000, size=n)

    companies: list[_Company] = []
    taken_names: set[str] = set()
    taken_domains: set[str] = set()
    for i in range(n):
        country = countries[country_idx[i]]
        industry = industries[industry_idx[i]]
        _, tlds, legal_forms, cities = _COUNTRIES[country]
        for _ in range(50):
            base, legal, slug, desc = _company_name(r, country, industry, legal_forms)
            if base.lower() not in taken_names:
                break
        else:  # the vocabulary ran dry for this shape: make it distinct with a town name
            base = f"{base} {r.choice(_TOWN_A)}{r.choice(_TOWN_B)}"
            slug += _slugify(base.rsplit(" ", 1)[-1])
        taken_names.add(base.lower())
        city, state, prefix = r.choice(cities)
        emp = int(employees[i])
        if emp > 1000 and r.random() < 0.6:
            emp = int(round(emp, -2))
        elif emp > 100 and r.random() < 0.5:
            emp = int(round(emp, -1))
        rpe = _REVENUE_PER_EMPLOYEE.get(industry)
        revenue = int(round(emp * rpe * rev_noise[i], -3)) if rpe else None
        tech = [t for j, (t, _) in enumerate(_TOOLS) if tool_draws[i, j]] or ["Google Workspace"]
        stage, fdays = _funding(industry, emp, funding_draw[i], int(funding_days[i]), int(ipo_days[i]))
        c = _Company(
            base=base, legal=legal, slug=slug, descriptor=desc, country=country, city=city, state=state,
            postal=_postal(r, country, prefix), industry=industry, employees=emp, revenue=revenue, tech=tech,
            funding_stage=stage, funding_days=fdays,
        )  # fmt: skip
        tld = _pick(r, tlds)
        c.domain = _domain_for(r, c, tld, taken_domains)
        c.idn = not c.domain.isascii()
        taken_domains.add(c.domain)
        c.fit = _fit(c)
        companies.append(c)
    return companies


def _funding(industry: str, emp: int, u: float, days: int, ipo_days: int) -> tuple[str, int | None]:
    if industry in _PUBLIC_SECTOR:
        return "", None
    if emp < 50:
        stages = [("Seed", 0.35), ("Series A", 0.25)]
    elif emp < 200:
        stages = [("Seed", 0.05), ("Series A", 0.30), ("Series B", 0.25)]
    elif emp < 2000:
        stages = [("Series B", 0.20), ("Series C", 0.20), ("Growth", 0.15), ("Public", 0.05)]
    else:
        stages = [("Growth", 0.10), ("Public", 0.45)]
    scale = 1.0 if industry in _TECHY else 0.45  # traditional industries raise venture money less often
    acc = 0.0
    for stage, p in stages:
        acc += p * (scale if stage != "Public" else 1.0)
        if u < acc:
            if stage == "Public":
                return stage, ipo_days if ipo_days % 2 else None
            return stage, days
    return "", None


def _postal(r: random.Random, country: str, prefix: str) -> str:
    if country == "United States":
        return prefix + f"{r.randint(0, 99):02d}"
    if country == "Canada":
        return f"{prefix} {r.randint(1, 9)}{r.choice('ABCEGHJKLMNPRSTVWXYZ')}{r.randint(1, 9)}"
    if country == "United Kingdom":
        return (
            f"{prefix} {r.randint(1, 9)}{r.choice('ABDEFGHJLNPQRSTUWXYZ')}{r.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        )
    if prefix.isdigit():
        width = {"Germany": 5, "France": 5, "Australia": 4, "India": 6, "Spain": 5, "Sweden": 5}.get(
            country, 0
        )
        if width:
            return prefix + "".join(str(r.randint(0, 9)) for _ in range(width - len(prefix)))
    return ""


# ------------------------------------------------------------------------------------------------
# messiness


def _messy_website(r: random.Random, domain: str) -> str:
    """The domain as a human typed it into the CRM."""
    host = domain
    u = r.random()
    if u < 0.015:
        host = r.choice(["us.", "en.", "go.", "shop."]) + host
    elif u < 0.46:
        host = "www." + host
    case = r.random()
    if case < 0.02:
        host = host.upper()
    elif case < 0.05:
        host = host[0].upper() + host[1:] if host[:4] != "www." else "www." + host[4].upper() + host[5:]
    scheme = _pick(r, [("", 0.55), ("http://", 0.15), ("https://", 0.28), ("HTTPS://", 0.02)])
    tail = ""
    t = r.random()
    if t < 0.005:
        tail = r.choice([":8080", ":443"])
    elif t < 0.06:
        tail = r.choice(["/", "/about", "/en/", "/home", "/contact-us", "/index.html"])
    elif t < 0.08:
        tail = r.choice(["?ref=g2", "/?utm_source=linkedin", "?ref=x"])
    if tail and not scheme and tail.startswith(":"):
        scheme = "https://"
    url = scheme + host + tail
    if r.random() < 0.004:
        url = f" {url} "
    return url


def _name_variant(r: random.Random, base: str, legal: str, current: str, incorporated: bool) -> str:
    """A near-identical spelling of a company name, as a second rep would type it."""
    for _ in range(20):
        kind = r.random()
        b, lg, sep = base, legal, " "
        if kind < 0.25:
            if lg not in ("Inc", "Inc.", "Ltd", "Ltd.", "Corp", "Corp.", "LLC", "") or not (
                lg or incorporated
            ):
                continue
            sep = ", " if lg else " "
            lg = {"Inc": "Inc.", "Ltd": "Ltd.", "Corp": "Corp.", "Inc.": "Inc", "": "Inc."}.get(lg, lg)
        elif kind < 0.40:
            lg = ""
        elif kind < 0.55:
            b = b.upper()
        elif kind < 0.65:
            b = b.replace(" & ", " and ") if " & " in b else b.replace(" and ", " & ")
            lg = {"Inc": "Incorporated", "Ltd": "Limited", "Corp": "Corporation"}.get(lg, lg)
        elif kind < 0.82:
            # A typo, but not in the first word: that is the word people (and blocking) search by.
            words = b.split(" ")
            later = [k for k in range(1, len(words)) if len(words[k]) > 4]
            if not later:
                continue
            k = r.choice(later)
            w = words[k]
            j = r.randint(1, len(w) - 3)
            words[k] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
            b = " ".join(words)
        elif kind < 0.92:
            b = "The " + b
        else:
            b = b.replace(" ", "  ", 1) if " " in b else b + " "
        name = f"{b}{sep}{lg}".strip() if lg else b
        if name != current:
            return name
    return current.upper() if current.upper() != current else current.title()


def _title_case_variant(r: random.Random, title: str) -> str:
    u = r.random()
    if u < 0.04:
        return title.lower()
    if u < 0.06:
        return title.upper()
    if u < 0.07:
        return title + " "
    return title


# ------------------------------------------------------------------------------------------------
# the generator


def generate_demo_export(
    out_dir: Path, seed: int = 7, n_accounts: int = 20_000, as_of: date = AS_OF
) -> dict[str, int]:
    """Write Account.csv, Contact.csv, Opportunity.csv, User.csv and demo_enrichment.csv into out_dir.

    Args:
        out_dir: Directory to write into (created if missing). Each file is written to a
            temporary name and renamed, so a half-written file never exists.
        seed: Random seed; the same seed gives byte-identical files.
        n_accounts: Rows of Account.csv, duplicates and bad rows included (at least 500).
        as_of: The export date; closed deals fall in the two years before it.

    Returns:
        Row counts per file (keyed by file name) and counts of the injected messiness.
    """
    if n_accounts < 500:
        raise ValueError(f"n_accounts must be at least 500, got {n_accounts}")
    from marketmap.storage import path as storage_path

    out_dir = storage_path(out_dir)  # the inbox may be an object store
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    r = random.Random(int(rng.integers(2**62)))

    n_bad_emp, n_blank_name = 3, 2
    n_dup = round(n_accounts * 0.03)
    n_unique = n_accounts - n_dup - n_bad_emp - n_blank_name
    n_outside = round(n_accounts * 0.03)  # companies only the bought data file knows
    companies = _make_companies(rng, r, n_unique + n_bad_emp + n_blank_name + n_outside)

    # --- account types --------------------------------------------------------------------------
    types = ["Prospect"] * n_unique
    partner_flag = [False] * n_unique
    candidates = [i for i in range(n_unique) if companies[i].industry == "Software"]
    for i in r.sample(candidates, 6):
        types[i] = "Competitor"
    partner_pool = [
        i for i in range(n_unique)
        if types[i] == "Prospect" and companies[i].industry in ("Professional Services", "Technology")
    ]  # fmt: skip
    for i in r.sample(partner_pool, max(5, n_unique // 500)):
        types[i], partner_flag[i] = "Partner", True

    # --- opportunities on the true companies ---------------------------------------------------
    fit = np.array([c.fit for c in companies[:n_unique]])
    eligible = np.array([i for i in range(n_unique) if types[i] == "Prospect"])
    n_pursued = min(460, len(eligible) // 4)
    n_customers = min(120, n_pursued * 120 // 460)
    # Gumbel top-k: sampling without replacement with weights exp(fit / T).
    pursue_keys = fit[eligible] / 25 + rng.gumbel(size=len(eligible))
    pursued = eligible[np.argsort(-pursue_keys, kind="stable")[:n_pursued]]
    win_keys = fit[pursued] / 7 + rng.gumbel(size=len(pursued))
    won_mask = np.zeros(len(pursued), dtype=bool)
    won_mask[np.argsort(-win_keys, kind="stable")[:n_customers]] = True
    for i in pursued[won_mask]:
        types[int(i)] = "Customer"
    for i in r.sample(sorted(int(i) for i in pursued[won_mask]), max(1, n_customers // 25)):
        partner_flag[i] = True  # a few customers also resell

    opps: list[_Opp] = []  # account field holds the company index until rows exist
    arr: dict[int, float] = {}
    amount_noise = np.exp(rng.normal(0, 0.22, size=len(pursued)))
    close_ago = rng.integers(1, 731, size=len(pursued))
    cycle_noise = np.exp(rng.normal(0, 0.35, size=len(pursued)))
    for k, ci in enumerate(int(i) for i in pursued):
        c = companies[ci]
        won = bool(won_mask[k])
        amount = max(1000, int(round(_headcount_value(c.employees) * amount_noise[k], -2)))
        cycle = float(
            np.clip(95 * math.exp(-(c.fit - 50) / 60) * cycle_noise[k] * (1.0 if won else 1.15), 14, 420)
        )
        close = int(close_ago[k])
        opps.append(
            _Opp(ci, "New Business", "Closed Won" if won else "Closed Lost", amount, close + cycle, close, -1)
        )
        if r.random() < 0.10 and close + 200 < 730:  # an earlier attempt that was lost
            prev = close + r.randint(120, min(400, 729 - close))
            opps.append(_Opp(ci, "New Business", "Closed Lost", amount, prev + cycle * 1.2, prev, -1))
        if not won:
            continue
        arr[ci] = amount
        if close > 120 and r.random() < 0.25:
            exp_close = r.randint(1, close - 90)
            exp_amount = int(round(amount * r.uniform(0.15, 0.4), -2))
            exp_won = r.random() < 0.75
            stage = "Closed Won" if exp_won else "Closed Lost"
            opps.append(
                _Opp(ci, "Expansion", stage, exp_amount, exp_close + r.uniform(20, 70), exp_close, -1)
            )
            if exp_won:
                arr[ci] += exp_amount
        renewal_close = close - 365
        if renewal_close >= 1:
            renewal_amount = amount + sum(
                o.amount or 0 for o in opps
                if o.account == ci and o.opp_type == "Expansion" and o.stage == "Closed Won"
                and o.close > renewal_close
            )  # fmt: skip
            opps.append(_Opp(ci, "Renewal", "Closed Won", renewal_amount, renewal_close + r.uniform(45, 75),
                             renewal_close, -1))  # fmt: skip

    # open pipeline
    customers = sorted(arr)
    lost_only = [int(i) for i in pursued[~won_mask]]
    fresh = np.setdiff1d(eligible, pursued)
    n_open_nb = min(120, len(fresh) // 4)
    fresh_keys = fit[fresh] / 25 + rng.gumbel(size=len(fresh))
    open_accounts = [
        int(i) for i in fresh[np.argsort(-fresh_keys, kind="stable")[: n_open_nb - n_open_nb // 6]]
    ]
    open_accounts += r.sample(lost_only, min(len(lost_only), n_open_nb // 6))
    open_accounts += r.sample(customers, min(len(customers), 30))
    for ci in open_accounts:
        c = companies[ci]
        stage = _pick(r, [(s, w) for s, _, _, w in _OPEN_STAGES])
        is_exp = ci in arr
        amount: int | None = int(round(_headcount_value(c.employees) * math.exp(r.gauss(0, 0.25)), -2))
        amount = max(1000, int(round(amount * r.uniform(0.15, 0.4), -2))) if is_exp else max(1000, amount)
        if stage == "Qualification" and r.random() < 0.3:
            amount = None
        created = r.uniform(5, 200)
        close = -r.randint(10, 180) if r.random() > 0.12 else r.randint(1, 60)  # some slipped past due
        opps.append(_Opp(ci, "Expansion" if is_exp else "New Business", stage, amount, created, close, -1))

    # --- account rows ---------------------------------------------------------------------------
    rows: list[_AccountRow] = []
    company_row: dict[int, int] = {}
    for ci in range(n_unique):
        rows.append(_AccountRow(ci, "original", account_type=types[ci]))
        company_row[ci] = ci
    dup_sources = [i for i in range(n_unique) if types[i] != "Competitor"]
    dup_of = r.sample(dup_sources, n_dup)
    n_name_only = round(n_dup * 0.25)
    for k, ci in enumerate(dup_of):
        rows.append(_AccountRow(ci, "duplicate_name" if k < n_name_only else "duplicate_domain"))
    for k in range(n_bad_emp + n_blank_name):
        ci = n_unique + k
        rows.append(_AccountRow(ci, "bad_employees" if k < n_bad_emp else "blank_name"))

    # owners: non-US accounts go to the international reps; the rest unevenly to the others
    dom_reps, dom_w = list(_DOMESTIC_REP_WEIGHTS), list(_DOMESTIC_REP_WEIGHTS.values())
    int_reps, int_w = list(_INTERNATIONAL_REP_WEIGHTS), list(_INTERNATIONAL_REP_WEIGHTS.values())
    for row in rows:
        c = companies[row.company]
        if row.kind.startswith("duplicate") and r.random() < 0.5:
            row.owner = rows[company_row[row.company]].owner
        elif c.country == "United States" or r.random() < 0.1:
            row.owner = r.choices(dom_reps, dom_w)[0]
        else:
            row.owner = r.choices(int_reps, int_w)[0]

    first_opp: dict[int, float] = {}
    last_touch: dict[int, float] = {}
    for o in opps:
        first_opp[o.account] = max(first_opp.get(o.account, 0.0), o.created)
        last_touch[o.account] = min(last_touch.get(o.account, 1e9), max(o.close, 0))
        o.owner = rows[company_row[o.account]].owner if r.random() < 0.85 else r.randrange(len(REPS))
        o.account = company_row[o.account]

    counts = {"blank_websites": 0, "idn_websites": 0}
    created = rng.uniform(30, 2800, size=len(rows))
    for idx, row in enumerate(rows):
        c = companies[row.company]
        row.created = float(created[idx])
        if row.kind == "original" and row.company in first_opp:
            row.created = max(row.created, first_opp[row.company] + r.uniform(3, 120))
        if row.kind.startswith("duplicate"):
            row.created = r.uniform(1, rows[company_row[row.company]].created)
        floor = last_touch.get(row.company, row.created) if row.kind == "original" else row.created
        row.modified = r.uniform(0.01, min(floor, row.created))
        original = rows[company_row[row.company]].values if row.kind.startswith("dup") else None
        is_partner = partner_flag[row.company] if row.company < n_unique else False
        current_arr = arr.get(row.company) if row.kind == "original" else None
        row.values = _account_values(r, row, c, is_partner, current_arr, original, as_of)
        if not row.values["Website"].strip():
            counts["blank_websites"] += 1
        elif not row.values["Website"].isascii():
            counts["idn_websites"] += 1

    # ids follow creation order, as in a real org
    account_ids = _assign_ids("001", [row.created for row in rows])
    rep_ids = [rid for rid, _, _ in REPS]
    account_out = []
    for idx in sorted(range(len(rows)), key=lambda i: account_ids[i]):
        row = rows[idx]
        v = row.values
        v.update(Id=account_ids[idx], IsDeleted="", Type=row.account_type, OwnerId=rep_ids[row.owner],
                 CreatedDate=_ts(as_of, row.created), LastModifiedDate=_ts(as_of, row.modified))  # fmt: skip
        account_out.append([v.get(col, "") for col in ACCOUNT_COLUMNS])

    # --- opportunities out ----------------------------------------------------------------------
    opp_ids = _assign_ids("006", [o.created for o in opps])
    opp_out = []
    for idx in sorted(range(len(opps)), key=lambda i: opp_ids[i]):
        o = opps[idx]
        acct = rows[o.account].values["Name"]
        closed = o.stage.startswith("Closed")
        won = o.stage == "Closed Won"
        prob, forecast = _STAGE_FORECAST[o.stage]
        close_day = as_of - timedelta(days=o.close)
        label = f"Renewal {close_day.year}" if o.opp_type == "Renewal" else o.opp_type
        name = f"{acct} - {label} - {_MONTHS[close_day.month - 1]} {close_day.year}"
        if o.opp_type == "Renewal":
            name = f"{acct} - {label}"
        modified = (
            r.uniform(max(o.close, 0.0) - 10, max(o.close, 0.0)) if closed else r.uniform(0.01, o.created)
        )
        opp_out.append([
            opp_ids[idx], "", account_ids[o.account], name, o.stage,
            "" if o.amount is None else str(o.amount),
            str(prob), _day(as_of, o.close), o.opp_type, "1" if closed else "", "1" if won else "", forecast,
            rep_ids[o.owner], _ts(as_of, o.created), _ts(as_of, max(modified, 0.01)),
        ])  # fmt: skip

    # --- contacts -------------------------------------------------------------------------------
    contact_out, contact_counts = _contacts(rng, r, rows, companies, account_ids, rep_ids, arr, as_of)

    # --- users ----------------------------------------------------------------------------------
    user_out = []
    for rid, name, territory in REPS:
        first, last = name.split(" ", 1)
        role = (
            "Strategic Account Executive" if territory == "Strategic" else f"Account Executive - {territory}"
        )
        user_out.append(
            [rid, name, first, last, f"{first}.{last}@northwind-analytics.example".lower(), "1", role]
        )

    # --- bought enrichment file -----------------------------------------------------------------
    with_site = sorted(
        {row.company for row in rows if row.values["Website"].strip() and row.company < n_unique}
    )
    covered = [
        with_site[i] for i in sorted(rng.choice(len(with_site), round(len(with_site) * 0.6), replace=False))
    ]
    enrich_companies = covered + list(range(n_unique + n_bad_emp + n_blank_name, len(companies)))
    enrich_out = sorted(
        [c.domain, c.industry, str(c.employees), ";".join(c.tech),
         "" if c.funding_days is None else _day(as_of, c.funding_days), c.country]
        for c in (companies[i] for i in enrich_companies)
    )  # fmt: skip

    _write_csv(out_dir / "Account.csv", ACCOUNT_COLUMNS, account_out, bom=True)
    _write_csv(out_dir / "Contact.csv", CONTACT_COLUMNS, contact_out, bom=True)
    _write_csv(out_dir / "Opportunity.csv", OPPORTUNITY_COLUMNS, opp_out, bom=True)
    _write_csv(out_dir / "User.csv", USER_COLUMNS, user_out, bom=True)
    _write_csv(out_dir / "demo_enrichment.csv", ENRICHMENT_COLUMNS, enrich_out, bom=False)

    closed = [o for o in opps if o.stage.startswith("Closed")]
    return {
        "Account.csv": len(account_out),
        "Contact.csv": len(contact_out),
        "Opportunity.csv": len(opp_out),
        "User.csv": len(user_out),
        "demo_enrichment.csv": len(enrich_out),
        "unique_companies": n_unique + n_bad_emp + n_blank_name,
        "customers": len(arr),
        "partners": sum(1 for t in types if t == "Partner"),
        "competitors": sum(1 for t in types if t == "Competitor"),
        "duplicates_injected": n_dup,
        "duplicates_by_domain": n_dup - n_name_only,
        "duplicates_name_only": n_name_only,
        "bad_rows_injected": n_bad_emp + n_blank_name,
        "bad_employee_values": n_bad_emp,
        "blank_names": n_blank_name,
        **counts,
        "closed_opportunities": len(closed),
        "closed_won": sum(1 for o in closed if o.stage == "Closed Won"),
        "open_opportunities": len(opps) - len(closed),
        **contact_counts,
        "enrichment_rows_matching_crm": len(covered),
        "enrichment_rows_outside_crm": len(enrich_companies) - len(covered),
    }


def _account_values(
    r: random.Random,
    row: _AccountRow,
    c: _Company,
    is_partner: bool,
    current_arr: float | None,
    original: dict[str, str] | None,
    as_of: date,
) -> dict[str, str]:
    """The CRM's view of one company: true values, some blanked, formatted as Salesforce exports them."""
    dup = original is not None
    blank_rate = 1.6 if dup else 1.0  # re-entered records are sloppier
    customer = current_arr is not None

    def keep(p_blank: float) -> bool:
        return r.random() >= p_blank * blank_rate

    legal = c.legal
    name = f"{c.base} {legal}" if legal else c.base
    if legal and legal.startswith("Inc") and r.random() < 0.3:
        name = f"{c.base}, {legal}"
    if dup:
        name = (
            _name_variant(r, c.base, c.legal, original["Name"], c.industry not in _PUBLIC_SECTOR)
            if r.random() < 0.75
            else original["Name"]
        )
    if row.kind == "blank_name":
        name = ""

    if row.kind == "duplicate_name":
        website = ""
    elif dup:
        website = original["Website"]
        for _ in range(20):
            website = _messy_website(r, c.domain)
            if website != original["Website"]:
                break
    else:
        website = _messy_website(r, c.domain) if r.random() >= 0.015 else ""

    country = ""
    if keep(0.08):
        country = _pick(r, _US_LABELS) if c.country == "United States" else c.country
    address = bool(country) or r.random() < 0.4
    state = c.state
    if country and c.country == "United States" and r.random() < 0.08:
        state = _US_STATE_NAMES.get(state, state)
    street = f"{r.randint(1, 9999)} {r.choice(_STREETS)}"
    if r.random() < 0.15:
        street += f", Suite {r.randint(1, 40) * 10}"
    phone = ""
    if keep(0.2):
        if c.country == "United States" or c.country == "Canada":
            area, line = r.randint(201, 989), r.randint(100, 199)
            phone = r.choice([f"({area}) 555-0{line}", f"{area}-555-0{line}", f"+1 {area} 555 0{line}"])
        else:
            phone = f"+{r.randint(30, 99)} {r.randint(10, 99)} {r.randint(1000000, 9999999)}"

    employees = str(c.employees) if (customer or keep(0.11)) else ""
    if row.kind == "bad_employees":
        employees = r.choice(["n/a", "twelve", "unknown", "approx. 40", "1.2k"])
    funded = c.funding_days is not None or c.funding_stage
    tier = score = valuation = prevent = ""
    if not dup and r.random() < 0.08:
        old = c.fit + r.gauss(0, 12)
        tier = "Tier 1" if old >= 75 else "Tier 2" if old >= 50 else "Tier 3"
        score = str(int(min(100, max(0, round(old)))))
    if not dup and r.random() < 0.025:
        valuation = str(max(5000, int(round(_headcount_value(c.employees) * math.exp(r.gauss(0, 0.5)), -3))))
        prevent = "1" if r.random() < 0.5 else ""
    if not dup and not prevent and r.random() < 0.008:
        prevent = "1"

    return {
        "Name": name,
        "BillingStreet": street if address else "",
        "BillingCity": c.city if address else "",
        "BillingState": state if address else "",
        "BillingPostalCode": c.postal if address else "",
        "BillingCountry": country,
        "Phone": phone,
        "Website": website,
        "Industry": c.industry if keep(0.10) else "",
        "AnnualRevenue": str(c.revenue) if c.revenue is not None and keep(0.35) else "",
        "NumberOfEmployees": employees,
        "AccountSource": _pick(
            r,
            [
                ("", 0.4),
                ("Web", 0.2),
                ("Purchased List", 0.15),
                ("Partner Referral", 0.1),
                ("Phone Inquiry", 0.05),
                ("Other", 0.1),
            ],
        ),  # fmt: skip
        "Tech_Stack__c": ";".join(c.tech) if keep(0.40) else "",
        "Funding_Stage__c": c.funding_stage if funded and keep(0.25) else "",
        "Last_Funding_Date__c": _day(as_of, c.funding_days)
        if c.funding_days is not None and keep(0.35)
        else "",
        "Current_ARR__c": str(int(round(current_arr))) if current_arr is not None else "",
        "Partner__c": "1" if is_partner and not dup else "",
        "Prevent_Override__c": prevent,
        "Account_Tier__c": tier,
        "ICP_Fit_Score__c": score,
        "Account_Valuation__c": valuation,
    }


def _contacts(
    rng: np.random.Generator,
    r: random.Random,
    rows: list[_AccountRow],
    companies: list[_Company],
    account_ids: list[str],
    rep_ids: list[str],
    arr: dict[int, float],
    as_of: date,
) -> tuple[list[list[str]], dict[str, int]]:
    titles = [(t, d) for t, d, _ in _TITLES]
    title_w = np.array([w for _, _, w in _TITLES])
    chosen = [
        i for i, row in enumerate(rows)
        if row.values["Name"] and (row.company in arr and row.kind == "original" or r.random() < 0.30)
    ]  # fmt: skip
    people: list[tuple[int, float, list[str]]] = []  # (row, created, values)
    n_dups = 0
    for i in chosen:
        row = rows[i]
        c = companies[row.company]
        n = r.randint(4, 8) if row.company in arr and row.kind == "original" else r.randint(3, 5)
        title_idx = rng.choice(len(titles), size=n, p=title_w / title_w.sum())
        pattern = r.choices(["first.last", "flast", "first", "firstl"], [0.6, 0.2, 0.1, 0.1])[0]
        for k in range(n):
            first, last = r.choice(_FIRST_NAMES), r.choice(_SURNAMES)
            title, dept = titles[title_idx[k]]
            f_, l_ = _slugify(_ascii(first)), _slugify(_ascii(last))
            local = {
                "first.last": f"{f_}.{l_}",
                "flast": f"{f_[0]}{l_}",
                "first": f_,
                "firstl": f"{f_}{l_[0]}",
            }[pattern if r.random() < 0.9 else "first.last"]
            email = f"{local}@{c.domain}" if r.random() > 0.02 else f"{f_}.{l_}{r.randint(1, 99)}@gmail.com"
            linkedin = ""
            if r.random() < 0.55:
                host = (
                    "uk.linkedin.com"
                    if c.country == "United Kingdom" and r.random() < 0.5
                    else "www.linkedin.com"
                )
                slug = f"{f_}-{l_}-{r.getrandbits(24):06x}" if r.random() < 0.7 else f"{f_}{l_}"
                linkedin = r.choice(["https://", "https://", "http://", ""]) + f"{host}/in/{slug}"
                linkedin += "/" if r.random() < 0.3 else ""
            if r.random() < 0.08:
                email = ""
                if not linkedin:
                    linkedin = f"https://www.linkedin.com/in/{f_}-{l_}-{r.getrandbits(24):06x}"
            country = ""
            if r.random() < 0.7:
                country = _pick(r, _US_LABELS) if c.country == "United States" else c.country
            opted_out = r.random() < (0.15 if c.country in _GDPR else 0.05)
            created = r.uniform(0.5, row.created)
            role_start = ""
            if r.random() < 0.65:
                role_start = _day(as_of, min(int(r.expovariate(1 / 900)) + 1, 6000))
            values = [
                "", "", account_ids[i], last, first, f"{first} {last}", country, email,
                _title_case_variant(r, title), dept if r.random() < 0.6 else "", rep_ids[row.owner],
                "1" if opted_out else "", _ts(as_of, created), _ts(as_of, r.uniform(0.01, created)), linkedin,
                role_start,
            ]  # fmt: skip
            people.append((i, created, values))
            if (email or linkedin) and r.random() < 0.015:  # the same person entered twice
                again = list(values)
                again[4] = _NICKNAMES.get(first, first)
                again[5] = f"{again[4]} {last}"
                if r.random() < 0.4:
                    again[8] = _title_case_variant(
                        r, titles[int(rng.choice(len(titles), p=title_w / title_w.sum()))][0]
                    )
                dup_created = r.uniform(0.3, created)
                again[12], again[13] = _ts(as_of, dup_created), _ts(as_of, r.uniform(0.01, dup_created))
                people.append((i, dup_created, again))
                n_dups += 1
    ids = _assign_ids("003", [created for _, created, _ in people])
    out = []
    for idx in sorted(range(len(people)), key=lambda k: ids[k]):
        values = people[idx][2]
        values[0] = ids[idx]
        out.append(values)
    n_no_email = sum(1 for values in out if not values[7])
    return out, {"contact_duplicates_injected": n_dups, "contacts_without_email": n_no_email}


def _assign_ids(prefix: str, days_ago: list[float]) -> list[str]:
    """Ids in creation order (oldest first), as Salesforce hands them out."""
    order = sorted(range(len(days_ago)), key=lambda i: (-days_ago[i], i))
    ids = [""] * len(days_ago)
    start = 62**5 * 17 + 5_000_000  # looks like an org that has been running for a while
    for rank, i in enumerate(order):
        ids[i] = _sf_id(prefix, start + rank * 7 + (i % 5))
    return ids


def _write_csv(path: Path, header: list[str], rows: list[list[str]], bom: bool) -> None:
    """Write a CSV atomically: a temporary file in the same directory, then a rename."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8-sig" if bom else "utf-8")
    from marketmap import storage

    if not storage.is_local(path):  # an object-store inbox: one PUT is all or nothing
        path.write_bytes(data)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m marketmap.demo.generate OUT_DIR [--seed N] [--accounts N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m marketmap.demo.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF, help="export date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    counts = generate_demo_export(args.out_dir, seed=args.seed, n_accounts=args.accounts, as_of=args.as_of)
    print(json.dumps(counts, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
