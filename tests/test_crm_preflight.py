"""Preflight against CRM metadata (Salesforce describe, HubSpot properties API): every problem
reported together, the push not started; missing HubSpot properties created on request."""

from __future__ import annotations

import pytest
from servers.hubspot import HubSpotServer
from servers.salesforce import SalesforceServer
from servers.world import FAST, client_cfg, salesforce_custom_fields

from marketmap import crm

BAD_SF_PUSH = [
    {
        "object": "account",
        "mode": "upsert",
        "prevent_override_field": "Industry",  # a picklist, not a checkbox
        "external_id_field": "Name",  # not an External ID
        "fields": [
            # T1 instead of the CRM's "Tier 1": the seed's blank-field failure
            {
                "source": "tier",
                "crm_field": "Account_Tier__c",
                "picklist": {"T1": "T1", "T2": "Tier 2", "T3": "Tier 3"},
            },
            {"source": "fit_score", "crm_field": "ICP_Score__c"},  # no such field
            {"source": "valuation", "crm_field": "Website"},  # a url field for a number
            {"source": "tier", "crm_field": "LastModifiedDate"},  # read-only
            {"source": "nonsense", "crm_field": "Type"},  # unknown source
        ],
    }
]


def test_salesforce_preflight_lists_every_problem_together(mm_home):
    server = SalesforceServer()
    salesforce_custom_fields(server)
    with server:
        cfg = client_cfg("salesforce", push=BAD_SF_PUSH)
        ad = crm.adapter_for(
            cfg,
            {"host": server.instance_url, "password": server.token},
            settings=FAST,
            mounts=server.mounts(),
        )
        report = crm.preflight(cfg, ad)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "unknown source 'nonsense'" in text
    assert "Account.ICP_Score__c does not exist" in text and "did you mean ICP_Fit_Score__c" in text
    assert "Account.Website is a url field but 'valuation' is a number value" in text
    assert "Account.LastModifiedDate is read-only" in text
    assert "picklist value(s) ['T1']" in text and "Tier 1" in text
    assert "Account.Industry (prevent_override_field) is a picklist field" in text
    assert "Account.Name (external_id_field) is not an External ID" in text
    assert len(report.problems) >= 7
    assert "push will not start" in str(report)


def test_salesforce_preflight_ok(mm_home):
    server = SalesforceServer()
    salesforce_custom_fields(server)
    with server:
        cfg = client_cfg("salesforce")
        ad = crm.adapter_for(
            cfg,
            {"host": server.instance_url, "password": server.token},
            settings=FAST,
            mounts=server.mounts(),
        )
        report = crm.preflight(cfg, ad)
    assert report.ok, report.problems
    assert "Account.Account_Tier__c" in report.checked and "Contact.Persona_Tier__c" in report.checked


@pytest.fixture()
def hs():
    with HubSpotServer(token="pat-na1-t", rate_limit=None) as server:
        yield server


def test_hubspot_preflight_label_vs_value_and_missing_properties(hs, mm_home):
    push = [{"object": "account", "fields": [
        {"source": "tier", "crm_field": "hs_ideal_customer_profile", "picklist": {"T1": "Tier 1", "T2": "Tier 2", "T3": "Tier 3"}},
        {"source": "fit_score", "crm_field": "icp_fit_score"},
        {"source": "state", "crm_field": "state"},
    ]}]  # fmt: skip
    cfg = client_cfg("hubspot", push=push)
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": "pat-na1-t"}, settings=FAST)
    report = crm.preflight(cfg, ad)
    assert not report.ok and len(report.problems) == 2
    tier, score = report.problems
    # the CRM shows "Tier 1" but stores tier_1: the value the API needs
    assert "'Tier 1' is the label of the value 'tier_1'" in tier
    assert "companies.icp_fit_score does not exist" in score


def test_hubspot_default_tier_target_and_created_properties(hs, mm_home):
    push = [{"object": "account", "fields": [{"source": "fit_score", "crm_field": "icp_fit_score"}]},
            {"object": "contact", "fields": [{"source": "persona_tier", "crm_field": "persona_tier",
                                              "picklist": {"P1": "Tier 1", "P2": "Tier 2", "P3": "Tier 3"}}]}]  # fmt: skip
    cfg = client_cfg("hubspot", push=push)
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": "pat-na1-t"}, settings=FAST)
    report = crm.preflight(cfg, ad, create_missing=True)
    assert report.ok, report.problems
    assert report.created == ["account.icp_fit_score (number)", "contact.persona_tier (enumeration)"]
    assert [o["value"] for o in hs.properties["contacts"]["persona_tier"]["options"]] == [
        "Tier 1",
        "Tier 2",
        "Tier 3",
    ]
    # no tier mapping given: the built-in Ideal Customer Profile Tier is checked (and pushed)
    assert "companies.hs_ideal_customer_profile" in report.checked
    again = crm.preflight(cfg, ad)
    assert again.ok and again.created == []


def test_csv_preflight_checks_sources_only(mm_home):
    cfg = client_cfg(
        "csv", push=[{"object": "account", "fields": [{"source": "tierz", "crm_field": "Account_Tier__c"}]}]
    )
    report = crm.preflight(cfg, crm.adapter_for(cfg))
    assert report.problems == [
        "push[0] (account) → Account_Tier__c: unknown source 'tierz' (expected a score output such as tier, "
        "fit_score, valuation, white_space, persona_tier, persona_score, a rubric's tier_field, "
        "'<product>.<name>', or a column of the accounts table)"
    ]


def test_hubspot_connection_from_airflow(hs, mm_home, monkeypatch):
    """adapter_for reads the Airflow connection named in crm.conn_id (no token in the config)."""
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_ACME_CRM", json.dumps({"conn_type": "http", "host": hs.url, "password": "pat-na1-t"})
    )
    cfg = client_cfg("hubspot")
    ad = crm.adapter_for(cfg, settings=FAST)
    hs.add("companies", {"name": "A", "domain": "a.com"})
    assert ad.count("account") == 1
