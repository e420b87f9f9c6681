"""Canonical record fields and the column presets of Salesforce and HubSpot exports.

A CRM export is mapped onto canonical field names (``employees``, ``website`` …) by the
format's preset, overridden or extended per client in ``crm.export.*_columns``.
Each canonical field has a type that the reader checks row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# HubSpot exports saved from the web app (Export in a companies/contacts/deals view) head their
# columns with property *labels*, not internal names. Where HubSpot has used more than one label
# (or the export holds an association column in two spellings), the first one present wins.
# The primary company first: "Associated Company IDs" lists every associated company.
PRIMARY_COMPANY = ("Associated Company IDs (Primary)", "Primary Associated Company ID", "Associated Company IDs",
                   "Associated Company ID")  # fmt: skip
HUBSPOT_UI: dict[str, dict[str, tuple[str, ...]]] = {
    "accounts": {
        "crm_id": ("Record ID", "Company ID"),
        "name": ("Company name", "Name"),
        "website": ("Company Domain Name", "Website URL"),
        "industry": ("Industry",),
        "employees": ("Number of Employees",),
        "annual_revenue": ("Annual Revenue",),
        "country": ("Country/Region", "Country"),
        "state": ("State/Region", "State"),
        "city": ("City",),
        "owner_id": ("Company owner",),
        "account_type": ("Type",),
        "crm_created": ("Create Date",),
        "crm_last_modified": ("Last Modified Date",),
    },
    "contacts": {
        "crm_id": ("Record ID", "Contact ID"),
        "account_crm_id": PRIMARY_COMPANY,
        "first_name": ("First Name",),
        "last_name": ("Last Name",),
        "title": ("Job Title",),
        "email": ("Email",),
        "country": ("Country/Region", "Country"),
        "owner_id": ("Contact owner",),
        "linkedin_url": ("LinkedIn URL",),
        "crm_last_modified": ("Last Modified Date",),
    },
    "opportunities": {
        "crm_id": ("Record ID", "Deal ID"),
        "account_crm_id": PRIMARY_COMPANY,
        "name": ("Deal Name",),
        "stage": ("Deal Stage",),
        "amount": ("Amount",),
        "is_closed": ("Is Closed",),
        "is_won": ("Is Closed Won",),
        "created_date": ("Create Date",),
        "close_date": ("Close Date",),
        "owner_id": ("Deal owner",),
        "opp_type": ("Deal Type",),
        "crm_last_modified": ("Last Modified Date",),
    },
}  # fmt: skip
# Fields whose HubSpot web-app export may hold several ids in one cell ("123;456"): the first is used.
MULTI_ID_FIELDS = ("account_crm_id",)


def is_hubspot_ui(obj: str, header: list[str]) -> bool:
    """A HubSpot file with web-app labels (``Record ID``), not internal names (``hs_object_id``)."""
    return PRESETS["hubspot"][obj]["crm_id"] not in header and any(
        c in header for c in HUBSPOT_UI[obj]["crm_id"]
    )


def column_map(fmt: str, obj: str, overrides: dict[str, str], header: list[str] | None = None) -> dict[str, str]:
    """canonical -> export column for one object: the preset with the client's overrides on top.

    With the file's ``header``, a HubSpot export saved from the web app is recognised by its labels.
    """
    if fmt == "hubspot" and header is not None and is_hubspot_ui(obj, header):
        present = set(header)
        mapping = {
            f: next((c for c in labels if c in present), labels[0]) for f, labels in HUBSPOT_UI[obj].items()
        }
    else:
        mapping = dict(PRESETS[fmt][obj])
    mapping.update(overrides)
    return mapping


# --------------------------------------------------------------------------- custom fields and ranges

# Custom field type (config) -> how the reader parses it.
CUSTOM_TYPES: dict[str, FieldType | str] = {
    "text": "str",
    "number": "float",
    "date": "date",
    "boolean": "bool",
    "list": "list",
}
# Built-in fields that also accept bands (``20 - 49``, ``10,000+``, ``$1M-$5M``): the range is stored
# in ``<field>_low`` / ``<field>_high``; the field itself keeps the representative value
# (see ingest/bands.py for the rule).
RANGE_FIELDS = {
    "employees": ("employees_low", "employees_high"),
    "annual_revenue": ("annual_revenue_low", "annual_revenue_high"),
}
RANGE_COLUMNS = [c for pair in RANGE_FIELDS.values() for c in pair]
# Names a custom field may not take: the warehouse's own columns of each object.
RESERVED = {
    "accounts": {*ACCOUNT_FIELDS, *RANGE_COLUMNS, "client_id", "account_key", "name_norm", "domain", "custom",
                 "source_file", "source_row", "first_seen_run", "last_seen_run", "updated_at", "source_hash"},
    "contacts": {*CONTACT_FIELDS, "client_id", "contact_key", "account_key", "custom", "source_row",
                 "last_seen_run", "updated_at", "source_hash"},
    "opportunities": {*OPPORTUNITY_FIELDS, "client_id", "account_key", "custom", "source_row", "last_seen_run",
                      "updated_at", "source_hash"},
}  # fmt: skip


# Columns the reader uses but does not load: the currency of a row's amounts (multi-currency
# Salesforce orgs export CurrencyIsoCode; HubSpot deals deal_currency_code). Override with
# ``currency`` in ``crm.export.*_columns``.
AUX_FIELDS = ("currency",)
CURRENCY_COLUMNS = {"salesforce": "CurrencyIsoCode", "hubspot": "deal_currency_code"}


@dataclass(frozen=True)
class CustomSpec:
    """A custom field as the reader needs it: its name, type and the column that holds it."""

    name: str
    type: str  # text | number | date | boolean | list
    column: str
    separator: str = ";"
