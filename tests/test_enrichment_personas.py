"""Persona enrichment against the Apollo fake: T1 first, T2 only in cadence, coverage gaps
only, GDPR, duplicates, excluded titles, e-mail reveal, manual research, credits once."""

from __future__ import annotations

import pandas as pd
import pytest
from enrichment_support import NOW, RUN_DATE, apollo_cfg, conn_getter, ledger_rows, make_cfg, seed
from servers.apollo import ApolloServer
from sqlalchemy import select

from marketmap.enrichment import enrich_personas, providers_for
from marketmap.enrichment.providers import Credentials
from marketmap.warehouse import get_engine, upsert
from marketmap.warehouse import schema as t

TIERS = pd.DataFrame(
    {
        "account_key": ["good.com", "north.ca", "mid.co.uk", "far.in", "berlin.de"],
        "tier": ["T1", "T2", "T2", "T3", "T1"],
        "in_cadence": [False, True, False, False, False],
    }
)


def _contact(key: str, account: str, **v) -> dict:
    row = {c.name: None for c in t.contacts.columns}
    row.update(client_id="demo", contact_key=key, crm_id=key, account_key=account, **v)
    return row


@pytest.fixture()
def setup(mm_home):
    engine = get_engine()
    seed(engine)
    seed(engine, {"berlin.de": {"country": "Germany"}})
    with engine.begin() as conn:
        upsert(
            conn,
            t.contacts,
            [
                _contact(
                    "003JANE",
                    "good.com",
                    first_name="Jane",
                    last_name="Roe",
                    title="CFO",
                    email="jane@good.com",
                    linkedin_url="https://www.linkedin.com/in/jane-roe-p2/",
                    country="United States",
                )
            ],
        )
    with ApolloServer() as apollo:
        apollo.add_person("good.com", "p1", "Ada", "Lovelace", "VP Revenue Operations", "ada@good.com")
        apollo.add_person(
            "good.com",
            "p2",
            "Jane",
            "Roe",
            "CFO",
            "jane@good.com",
            linkedin_url="http://www.linkedin.com/in/jane-roe-p2",
        )
        apollo.add_person("good.com", "p3", "Al", "Assist", "Assistant Sales Manager", "al@good.com")
        apollo.add_person("good.com", "p4", "Nora", "Nomail", "Head of Revenue Operations", None)
        apollo.add_person(
            "north.ca", "p5", "Cy", "Ro", "Chief Revenue Officer", "cy@north.ca", country="Canada"
        )
        apollo.add_person("mid.co.uk", "p6", "Mo", "Mid", "Chief Revenue Officer", "mo@mid.co.uk")
        apollo.add_person("berlin.de", "p7", "Lena", "Berg", "VP Sales", "lena@berlin.de", country="Germany")
        pcfg = apollo_cfg(costs={"people_search": 1, "person_match": 2, "company": 1})
        data = make_cfg([pcfg]).model_dump(mode="json", exclude_none=True)
        data["personas"]["gdpr"] = "skip"
        from marketmap.config import ClientConfig

        cfg = ClientConfig.model_validate(data)
        getter = conn_getter(apollo=Credentials(host=apollo.url, password=apollo.api_key))
        yield engine, apollo, cfg, getter


def _contacts(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(t.contacts).where(t.contacts.c.client_id == "demo")).all()
    return {f"{r.first_name} {r.last_name}": dict(r._mapping) for r in rows}


def test_personas_just_in_time_with_gdpr_duplicates_and_reveal(setup):
    engine, apollo, cfg, getter = setup
    out = enrich_personas(cfg, engine, "run-1", providers_for(cfg, getter), TIERS, run_date=RUN_DATE, now=NOW)
    people = _contacts(engine)
    assert set(people) == {"Jane Roe", "Ada Lovelace", "Nora Nomail", "Cy Ro"}
    assert people["Ada Lovelace"]["email"] == "ada@good.com"  # revealed by people/match
    assert (
        people["Ada Lovelace"]["source"] == "apollo" and people["Ada Lovelace"]["account_key"] == "good.com"
    )
    assert people["Nora Nomail"]["needs_research"] is True and people["Nora Nomail"]["linkedin_url"]
    assert people["Cy Ro"]["account_key"] == "north.ca"
    searched = [
        r.json()["q_organization_domains_list"][0] for r in apollo.requests if "mixed_people" in r.path
    ]
    # T1 accounts first, then the T2 account in a cadence; none for T2 outside one or T3
    assert sorted(searched[:2]) == ["berlin.de", "good.com"] and searched[2:] == ["north.ca"]
    assert out["skipped_gdpr"] == 1 and out["skipped_duplicates"] == 1 and out["skipped_excluded_titles"] == 1
    assert out["contacts_added"] == 3 and out["contacts_need_research"] == 1
    # 3 searches x 1 credit + 3 reveals x 2 credits
    assert out["credits"] == 9 == sum(r["credits"] for r in ledger_rows(engine))

    again = enrich_personas(
        cfg, engine, "run-2", providers_for(cfg, getter), TIERS, run_date=RUN_DATE, now=NOW
    )
    assert again["credits"] == 0 and again["contacts_added"] == 0
    assert set(_contacts(engine)) == set(people)


def test_covered_accounts_cost_nothing(setup):
    engine, apollo, cfg, getter = setup
    with engine.begin() as conn:
        upsert(
            conn,
            t.contacts,
            [
                _contact(
                    f"003C{i}",
                    "good.com",
                    first_name=f"C{i}",
                    last_name="X",
                    title=title,
                    email=f"c{i}@good.com",
                    country="United States",
                )
                for i, title in enumerate(
                    [
                        "Chief Revenue Officer",
                        "VP Revenue Operations",
                        "VP Sales",
                        "CFO",
                        "Sales Manager",
                        "VP Sales",
                    ]
                )
            ],
        )
    only_good = TIERS[TIERS["account_key"] == "good.com"]
    out = enrich_personas(
        cfg, engine, "run-1", providers_for(cfg, getter), only_good, run_date=RUN_DATE, now=NOW
    )
    assert out["accounts_covered_already"] == 1 and out["credits"] == 0
    assert apollo.requests == []


def test_opted_in_only_keeps_found_eu_people_out(setup):
    engine, apollo, cfg, getter = setup
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["personas"]["gdpr"] = "opted_in_only"
    from marketmap.config import ClientConfig

    cfg = ClientConfig.model_validate(data)
    berlin = TIERS[TIERS["account_key"] == "berlin.de"]
    out = enrich_personas(
        cfg, engine, "run-1", providers_for(cfg, getter), berlin, run_date=RUN_DATE, now=NOW
    )
    assert out["skipped_gdpr"] == 1 and out["contacts_added"] == 0


def test_account_tiers_from_the_stored_scores(mm_home):
    from marketmap.enrichment import account_tiers
    from marketmap.scoring.pipeline import score_accounts

    engine = get_engine()
    seed(engine)
    cfg = make_cfg([])
    assert account_tiers(cfg, engine).empty  # nothing scored yet
    score_accounts(cfg, engine, "run-1", RUN_DATE)
    tiers = account_tiers(cfg, engine, in_cadence=["north.ca"]).set_index("account_key")
    assert tiers.at["full.com", "tier"] == "T1"
    assert tiers.at["agency.gov", "tier"] == "OUT"
    assert bool(tiers.at["north.ca", "in_cadence"]) and not bool(tiers.at["full.com", "in_cadence"])
