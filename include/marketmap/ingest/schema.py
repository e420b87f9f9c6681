"""Canonical record fields and the column presets of Salesforce and HubSpot exports.

A CRM export is mapped onto canonical field names (``employees``, ``website`` …) by the
format's preset, overridden or extended per client in ``crm.export.*_columns``.
Each canonical field has a type that the reader checks row by row.
"""

from __future__ import annotations

from typing import Literal

FieldType = Literal["str", "int", "float", "date", "datetime", "bool"]

# canonical field -> type
ACCOUNT_FIELDS: dict[str, FieldType] = {
    "crm_id": "str",
    "name": "str",
    "website": "str",
    "industry": "str",
    "employees": "int",
    "annual_revenue": "float",
    "country": "str",
    "state": "str",
    "city": "str",
    "owner_id": "str",
    "account_type": "str",
    "tech_stack": "str",
    "funding_stage": "str",
    "last_funding_date": "date",
    "current_arr": "float",
    "is_partner": "bool",
    "prevent_override": "bool",
    "intent_score": "float",
    "crm_created": "datetime",
    "crm_last_modified": "datetime",
}

CONTACT_FIELDS: dict[str, FieldType] = {
    "crm_id": "str",
    "account_crm_id": "str",
    "first_name": "str",
    "last_name": "str",
    "title": "str",
    "department": "str",
    "email": "str",
    "linkedin_url": "str",
    "country": "str",
    "role_start_date": "date",
    "owner_id": "str",
    "opted_in": "bool",
    "crm_last_modified": "datetime",
}

OPPORTUNITY_FIELDS: dict[str, FieldType] = {
    "crm_id": "str",
    "account_crm_id": "str",
    "name": "str",
    "stage": "str",
    "amount": "float",
    "is_closed": "bool",
    "is_won": "bool",
    "created_date": "datetime",
    "close_date": "date",
    "owner_id": "str",
    "opp_type": "str",
    "crm_last_modified": "datetime",
}

FIELDS = {"accounts": ACCOUNT_FIELDS, "contacts": CONTACT_FIELDS, "opportunities": OPPORTUNITY_FIELDS}

# Fields a row must have; a row without them is rejected.
REQUIRED = {
    "accounts": ("crm_id", "name"),
    "contacts": ("crm_id",),
    "opportunities": ("crm_id", "account_crm_id"),
}

# canonical field -> export column, per export format and object
PRESETS: dict[str, dict[str, dict[str, str]]] = {
    "salesforce": {
        "accounts": {
            "crm_id": "Id",
            "name": "Name",
            "website": "Website",
            "industry": "Industry",
            "employees": "NumberOfEmployees",
            "annual_revenue": "AnnualRevenue",
            "country": "BillingCountry",
            "state": "BillingState",
            "city": "BillingCity",
            "owner_id": "OwnerId",
            "account_type": "Type",
            "crm_created": "CreatedDate",
            "crm_last_modified": "LastModifiedDate",
        },
        "contacts": {
            "crm_id": "Id",
            "account_crm_id": "AccountId",
            "first_name": "FirstName",
            "last_name": "LastName",
            "title": "Title",
            "department": "Department",
            "email": "Email",
            "country": "MailingCountry",
            "owner_id": "OwnerId",
            "crm_last_modified": "LastModifiedDate",
        },
        "opportunities": {
            "crm_id": "Id",
            "account_crm_id": "AccountId",
            "name": "Name",
            "stage": "StageName",
            "amount": "Amount",
            "is_closed": "IsClosed",
            "is_won": "IsWon",
            "created_date": "CreatedDate",
            "close_date": "CloseDate",
            "owner_id": "OwnerId",
            "opp_type": "Type",
            "crm_last_modified": "LastModifiedDate",
        },
    },
    "hubspot": {
        "accounts": {
            "crm_id": "hs_object_id",
            "name": "name",
            "website": "domain",
            "industry": "industry",
            "employees": "numberofemployees",
            "annual_revenue": "annualrevenue",
            "country": "country",
            "state": "state",
            "city": "city",
            "owner_id": "hubspot_owner_id",
            "account_type": "type",
            "crm_created": "createdate",
            "crm_last_modified": "hs_lastmodifieddate",
        },
        "contacts": {
            "crm_id": "hs_object_id",
            "account_crm_id": "associatedcompanyid",
            "first_name": "firstname",
            "last_name": "lastname",
            "title": "jobtitle",
            "email": "email",
            "country": "country",
            "owner_id": "hubspot_owner_id",
            "linkedin_url": "hs_linkedin_url",
            "crm_last_modified": "lastmodifieddate",
        },
        "opportunities": {
            "crm_id": "hs_object_id",
            "account_crm_id": "associatedcompanyid",
            "name": "dealname",
            "stage": "dealstage",
            "amount": "amount",
            "is_closed": "hs_is_closed",
            "is_won": "hs_is_closed_won",
            "created_date": "createdate",
            "close_date": "closedate",
            "owner_id": "hubspot_owner_id",
            "opp_type": "dealtype",
            "crm_last_modified": "hs_lastmodifieddate",
        },
    },
}


def column_map(fmt: str, obj: str, overrides: dict[str, str]) -> dict[str, str]:
    """canonical -> export column for one object: the preset with the client's overrides on top."""
    mapping = dict(PRESETS[fmt][obj])
    mapping.update(overrides)
    return mapping


# Columns the reader uses but does not load: the currency of a row's amounts (multi-currency
# Salesforce orgs export CurrencyIsoCode; HubSpot deals deal_currency_code). Override with
# ``currency`` in ``crm.export.*_columns``.
AUX_FIELDS = ("currency",)
CURRENCY_COLUMNS = {"salesforce": "CurrencyIsoCode", "hubspot": "deal_currency_code"}
