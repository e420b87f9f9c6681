"""A year in the life of the demo client itself, through the real DAGs, on a client that uses everything.

The demo client (``include/clients/demo.yaml``: its rubric, personas, valuation, territories)
runs on a real API CRM — the local HubSpot server through hubspot-api-client — seeded from
the demo generator's own CRM export, with its bought data file *and* a paid provider speaking
Apollo's format (1 credit per call, a budget that binds one month), a push mapping, and Slack
(local server). The build runs once, then thirteen months of maintenance run on their
schedule dates with ``dag.test(logical_date=…)`` (pendulum datetimes, as Airflow passes them)
while the CRM changes every month: new accounts, edited accounts, owners changing, deals
closing. Asserted month by month: new accounts are tiered within the month; credits are spent
only on accounts with gaps and never above the budget; only changed records are written to
the CRM, each run through preflight and validation, with zero duplicates; alerts fire once
each, to the right channels; the scores asset is emitted when scores change and the reports
DAG it schedules writes the reports; re-running a month changes and sends nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pendulum
import pytest
import yaml
from servers.apollo import ApolloServer
from servers.hubspot import HubSpotServer, _options, _prop
from servers.slack import TOKEN as SLACK_TOKEN
from servers.slack import SlackServer
from sqlalchemy import func, select

from marketmap.config import load_client
from marketmap.demo.generate import generate_demo_export
from marketmap.warehouse import get_engine
from marketmap.warehouse import schema as t

ROOT = Path(__file__).resolve().parents[1]
TZ = "America/New_York"
HS_TOKEN = "pat-na1-demo-year-test"  # not a real private-app token
APOLLO_KEY = "apollo-demo-year-key"
BUDGET = 40  # credits a month: the June wave of new accounts needs more
OWNERS = {f"005DEMO{i:09d}": str(100 + i) for i in range(1, 11)}
CHANNELS = {"revops": "#demo-revops", "leadership": "#demo-leadership", "architect": "#mm-architects"}
TIERS = {"T1": "tier_1", "T2": "tier_2", "T3": "tier_3"}
PUSHED = {"hs_ideal_customer_profile": "tier", "icp_fit_score": "fit_score"}


def demo_config() -> dict:
    """demo.yaml with a HubSpot CRM, a paid Apollo provider after its data file, and Slack."""
    cfg = yaml.safe_load((ROOT / "include" / "clients" / "demo.yaml").read_text())
    cfg["crm"] = {
        "kind": "hubspot",
        "conn_id": "demo_hubspot",
        "export": {
            "format": "hubspot",
            "account_columns": {"tech_stack": "tech_stack", "funding_stage": "funding_stage",
                                "last_funding_date": "last_funding_date", "current_arr": "current_arr",
                                "is_partner": "partner", "prevent_override": "mm_prevent_override"},
        },
    }  # fmt: skip
    cfg["enrichment"] = {
        "monthly_credit_budget": BUDGET,
        "providers": [
            cfg["enrichment"]["providers"][0],  # the bought data file: free
            {"name": "apollo", "kind": "apollo", "conn_id": "demo_apollo", "cost_per_call": 1,
             "fields": ["industry", "employees", "country", "tech_stack", "last_funding_date"],
             "options": {"bulk": False, "charge_on_miss": False, "retry_backoff": 0.01}},
        ],
    }  # fmt: skip
    cfg["push"] = [
        {
            "object": "account",
            "mode": "update_only",
            "prevent_override_field": "mm_prevent_override",
            "fields": [
                {"source": "tier", "crm_field": "hs_ideal_customer_profile", "policy": "overwrite",
                 "picklist": TIERS},
                {"source": "fit_score", "crm_field": "icp_fit_score", "policy": "overwrite"},
            ],
        }
    ]  # fmt: skip
    cfg["territories"]["reps"] = [{**r, "id": OWNERS[r["id"]]} for r in cfg["territories"]["reps"]]
    cfg["slack"] = {"conn_id": "demo_slack", "channels": CHANNELS}
    cfg["qa"] = {"accounts_per_rep_min": 10}  # 600 accounts over 10 reps: a pilot's book sizes
    return cfg


def _bool(text: str) -> str:
    """A Salesforce checkbox as HubSpot stores a boolean property."""
    return "true" if text.strip().lower() in ("1", "true") else "false"


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("+0000", "+00:00")).timestamp()


class DemoCrm:
    """The demo generator's CRM export loaded into the local HubSpot, then a year of edits."""

    def __init__(self, hs: HubSpotServer, apollo: ApolloServer, export: Path):
        self.hs, self.apollo = hs, apollo
        hs.properties["companies"].update({
            name: _prop(name, hubspotDefined=False) for name in ("tech_stack", "funding_stage", "last_funding_date")
        } | {
            "current_arr": _prop("current_arr", "number", "number", hubspotDefined=False),
            "partner": _prop("partner", "bool", "booleancheckbox", hubspotDefined=False),
            "mm_prevent_override": _prop("mm_prevent_override", "bool", "booleancheckbox", hubspotDefined=False,
                                         options=_options(("true", "Yes"), ("false", "No"))),
            "icp_fit_score": _prop("icp_fit_score", "number", "number", hubspotDefined=False),
        })  # fmt: skip
        for sf_id, oid in OWNERS.items():
            hs.add_owner(oid, f"{sf_id.lower()}@northwind.example", "Rep", sf_id[-2:])
        self.company: dict[str, str] = {}  # Salesforce account id -> HubSpot company id
        for row in self._rows(export / "Account.csv"):
            self.company[row["Id"]] = hs.add("companies", {
                "name": row["Name"], "domain": row["Website"], "industry": row["Industry"],
                "numberofemployees": row["NumberOfEmployees"], "annualrevenue": row["AnnualRevenue"],
                "country": row["BillingCountry"], "state": row["BillingState"], "city": row["BillingCity"],
                "hubspot_owner_id": OWNERS.get(row["OwnerId"]), "type": row["Type"],
                "tech_stack": row["Tech_Stack__c"], "funding_stage": row["Funding_Stage__c"],
                "last_funding_date": row["Last_Funding_Date__c"], "current_arr": row["Current_ARR__c"],
                "partner": _bool(row["Partner__c"]), "mm_prevent_override": _bool(row["Prevent_Override__c"]),
            }, modified=_epoch(row["CreatedDate"]))  # fmt: skip
        for row in self._rows(export / "Contact.csv"):
            cid = hs.add("contacts", {
                "firstname": row["FirstName"], "lastname": row["LastName"], "jobtitle": row["Title"],
                "email": row["Email"], "country": row["MailingCountry"], "hs_linkedin_url": row["LinkedIn_URL__c"],
                "hubspot_owner_id": OWNERS.get(row["OwnerId"]),
            }, modified=_epoch(row["CreatedDate"]))  # fmt: skip
            if row["AccountId"] in self.company:
                hs.associate("contacts", cid, "companies", self.company[row["AccountId"]])
        for row in self._rows(export / "Opportunity.csv"):
            stage = {"Closed Won": "closedwon", "Closed Lost": "closedlost"}.get(row["StageName"], "qualifiedtobuy")
            self._deal(row["AccountId"], row["Name"], stage, row["Amount"], row["CloseDate"],
                       _epoch(row["CreatedDate"]), row["OwnerId"])  # fmt: skip
        self.new = 0

    @staticmethod
    def _rows(path: Path) -> list[dict]:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [r for r in csv.DictReader(fh) if not r.get("IsDeleted")]

    def _deal(self, sf_account: str, name: str, stage: str, amount, close: str, at: float, owner: str) -> None:
        if sf_account not in self.company:
            return
        did = self.hs.add("deals", {"dealname": name, "dealstage": stage, "amount": amount, "closedate": close,
                                    "dealtype": "New Business", "hubspot_owner_id": OWNERS.get(owner)},
                          modified=at)  # fmt: skip
        self.hs.associate("deals", did, "companies", self.company[sf_account])

    def edit(self, oid: str, at: float, **props) -> None:
        rec = self.hs.objects["companies"][oid]
        rec["properties"].update({k: str(v) for k, v in props.items()})
        ts = dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")
        rec["properties"]["hs_lastmodifieddate"] = ts
        rec["updatedAt"] = ts

    def month(self, start: dt.datetime, new_accounts: int) -> list[str]:
        """One month of CRM life: new accounts (Apollo knows them), edits, owner changes, deals closing."""
        at = (start + dt.timedelta(days=9, hours=3)).timestamp()
        added = []
        for _ in range(new_accounts):
            n = self.new = self.new + 1
            domain = f"newco{n:03d}.com"
            self.apollo.add_org(domain, industry="Software", employees=300 + n, country="United States",
                                tech=["Salesforce"], funding_date=start.date().isoformat())  # fmt: skip
            oid = self.hs.add("companies", {"name": f"Newco {n} Inc", "domain": f"https://www.{domain}/",
                                            "hubspot_owner_id": OWNERS[f"005DEMO{1 + n % 10:09d}"]}, modified=at)  # fmt: skip
            added.append(oid)
        ids = sorted(self.hs.objects["companies"], key=int)
        k = start.month
        for oid in ids[k * 7 : k * 7 + 3]:  # a few edits: bigger headcount
            self.edit(oid, at, numberofemployees=800 + k)
        for oid in ids[200 + k * 5 : 200 + k * 5 + 2]:  # owners changing
            self.edit(oid, at, hubspot_owner_id=OWNERS[f"005DEMO{1 + k % 10:09d}"])
        sf_ids = sorted(self.company)
        for i in range(4):  # deals closing this month
            sf = sf_ids[(k * 13 + i * 31) % len(sf_ids)]
            close = (start + dt.timedelta(days=5 + i)).date().isoformat()
            self._deal(sf, f"Deal {k}-{i}", "closedwon" if i % 2 else "closedlost", 20000 + 1000 * i, close, at, "005DEMO000000001")
        return added


def run(pipeline: str, when: pendulum.DateTime, params: dict | None = None, expect: str = "success"):
    from marketmap.orchestration.factory import build_client_dags, dag_id

    dag = build_client_dags(load_client("demo"), only=dag_id("demo", pipeline))[dag_id("demo", pipeline)]
    for task in dag.tasks:
        task.retries = 0  # dag.test() would wait out real retry delays
    dr = dag.test(logical_date=when, run_conf=params or None)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state).endswith(expect), (pipeline, when, states)
    return states


def hubspot_values(hs: HubSpotServer) -> dict[str, dict]:
    return {oid: {p: rec["properties"].get(p) for p in PUSHED} for oid, rec in hs.objects["companies"].items()}


def writes(hs: HubSpotServer) -> int:
    return hs.calls("POST", r"/batch/(update|create|upsert)$")


def ledger_by_month(engine) -> dict[str, float]:
    c = t.credit_ledger.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.month, func.sum(c.credits)).where(c.client_id == "demo", c.credits > 0)
                            .group_by(c.month)).all()  # fmt: skip
    return {m: float(v) for m, v in rows}


def tiers(engine) -> dict[str, str]:
    """crm id -> stored tier of the config's rubric version."""
    from marketmap.scoring.pipeline import read_scores, rubric_version

    cfg = load_client("demo")
    scores = read_scores(engine, "demo", rubric_version(cfg), cfg.icp.rubrics[0].product)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(t.accounts.c.account_key, t.accounts.c.crm_id)
                                .where(t.accounts.c.client_id == "demo")).all())  # fmt: skip
    return {ids[k]: tier for k, tier in zip(scores["account_key"], scores["tier"], strict=True) if ids.get(k)}


def alert_log(engine) -> list[tuple[str, str, str]]:
    e = t.alert_events.c
    with engine.connect() as conn:
        rows = conn.execute(select(e.at, e.event, e.fingerprint).where(e.client_id == "demo").order_by(e.event_id)).all()
    out = []
    for at, event, fp in rows:
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        item = (pendulum.instance(at).in_tz(TZ).date().isoformat(), event, fp.split(":")[0])
        if item not in out:
            out.append(item)
    return out


@pytest.mark.slow
def test_a_year_in_the_life_of_the_demo_client(airflow_db, mm_home, tmp_path, monkeypatch):
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "_defaults.yaml").write_text((ROOT / "include" / "clients" / "_defaults.yaml").read_text())
    (clients / "demo.yaml").write_text(yaml.safe_dump(demo_config(), sort_keys=False))
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(clients))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test:8080")
    export = tmp_path / "export"
    generate_demo_export(export, n_accounts=600)
    # the bought data file is the demo's: it lives in the client's inbox
    inbox = mm_home / "inbox" / "demo"
    inbox.mkdir(parents=True)
    (inbox / "demo_enrichment.csv").write_bytes((export / "demo_enrichment.csv").read_bytes())

    hs = HubSpotServer(token=HS_TOKEN, rate_limit=None)
    with hs, ApolloServer(api_key=APOLLO_KEY) as apollo, SlackServer(channels=set(CHANNELS.values())) as slack:
        monkeypatch.setenv("AIRFLOW_CONN_DEMO_HUBSPOT", json.dumps({"conn_type": "http", "host": hs.url, "password": HS_TOKEN}))
        monkeypatch.setenv("AIRFLOW_CONN_DEMO_APOLLO", json.dumps({"conn_type": "http", "host": apollo.url, "password": APOLLO_KEY}))
        monkeypatch.setenv("AIRFLOW_CONN_DEMO_SLACK", json.dumps(
            {"conn_type": "slack", "password": SLACK_TOKEN, "extra": {"base_url": slack.base_url}}))  # fmt: skip
        crm = DemoCrm(hs, apollo, export)
        engine = get_engine()
        companies_seeded = len(hs.objects["companies"])

        # --- the initial build (Jan 4th, 2027)
        states = run("build", pendulum.datetime(2027, 1, 4, 9, tz=TZ))
        assert states["crm_preflight"].endswith("success") and states["crm_validate"].endswith("success")
        assert states["publish_scores"].endswith("success")  # new scores: the reports DAG is scheduled
        built = tiers(engine)
        assert len(built) >= 550
        after_build = hubspot_values(hs)
        locked = {oid for oid, rec in hs.objects["companies"].items()
                  if rec["properties"].get("mm_prevent_override") == "true"}  # prevent-override: never written
        wrong = {oid: (after_build[oid], tier) for oid, tier in built.items()
                 if tier in TIERS and oid not in locked and after_build[oid]["hs_ideal_customer_profile"] != TIERS[tier]}  # fmt: skip
        assert not wrong, list(wrong.items())[:5]
        run("reports", pendulum.datetime(2027, 1, 4, 10, tz=TZ))

        # --- thirteen months of maintenance
        month_start = pendulum.datetime(2027, 1, 1, tz=TZ)
        history = []
        for m in range(13):
            start, end = month_start.add(months=m), month_start.add(months=m + 1)
            added = crm.month(start, new_accounts=60 if m == 5 else 5)
            before_values, before_writes = hubspot_values(hs), writes(hs)
            before_ledger = ledger_by_month(engine)
            states = run("monthly", end.add(hours=6))
            month = start.format("YYYY-MM")
            t_after = tiers(engine)
            # new accounts of the month are tiered within the month
            assert all(oid in t_after for oid in added), month
            # credits: never above the budget, and only in the month the run belongs to
            spent = ledger_by_month(engine)
            assert all(v <= BUDGET for v in spent.values()), spent
            # the CRM: only changed records written, each through preflight and validation, no duplicate
            for step in ("crm_preflight", "crm_canary", "crm_push", "crm_validate"):
                assert states[step].endswith("success"), (month, step)
            after_values = hubspot_values(hs)
            changed = {oid for oid in after_values if after_values[oid] != before_values.get(oid)}
            expected = {oid for oid, tier in t_after.items() if tier in TIERS and oid not in locked
                        and before_values[oid]["hs_ideal_customer_profile"] != TIERS[tier]}  # fmt: skip
            assert expected <= changed, month
            wrong = {oid: (after_values[oid], tier) for oid, tier in t_after.items() if tier in TIERS
                     and oid not in locked and after_values[oid]["hs_ideal_customer_profile"] != TIERS[tier]}  # fmt: skip
            assert not wrong, (month, list(wrong.items())[:5])
            assert len(hs.objects["companies"]) == companies_seeded + crm.new  # update_only: never a duplicate
            history.append({"month": month, "written": writes(hs) - before_writes, "changed": len(changed),
                            "credits": spent.get(end.format("YYYY-MM"), 0) - before_ledger.get(end.format("YYYY-MM"), 0),
                            "published": states["publish_scores"]})  # fmt: skip
            if states["publish_scores"].endswith("success"):
                run("reports", end.add(hours=7))
            # the rest of the schedule, once each: every DAG of the client succeeds on its own date
            if end.month == 4:
                q = run("quarterly_personas", end.add(days=1, hours=6))
                assert q["crm_validate"].endswith("success")
            if end.month == 7:
                run("drift", end.add(hours=7))
                v = run("valuation", end.add(days=2, hours=7))
                assert v["crm_push"].endswith("success")  # nothing applied: the group makes no call

        # the June wave (60 new accounts) hit the budget once; the next month finished the gaps
        log = alert_log(engine)
        fired = Counter(rule for _, ev, rule in log if ev == "fired")
        assert fired["credit_budget_reached"] == 1, log
        assert all(n == 1 for n in fired.values()) or fired.most_common(1)[0][1] <= 2, log

        # re-running a month changes nothing and sends nothing
        msgs, w, spent = len(slack.all_messages()), writes(hs), ledger_by_month(engine)
        run("monthly", month_start.add(months=7).add(hours=6))
        assert (len(slack.all_messages()), writes(hs), ledger_by_month(engine)) == (msgs, w, spent)

        # territories: the check stores its proposal with an id; approving that id applies exactly it.
        # The CRM rejects the first owner writes (the run fails, the warehouse already has the new
        # owners); the retry pushes exactly what is still missing and converges.
        from marketmap.analysis.proposals import open_proposals, pending_owner_pushes

        run("territories", pendulum.datetime(2028, 1, 4, 7, tz=TZ))
        [proposal] = open_proposals(engine, "demo", "rebalance")
        with engine.connect() as conn:
            moves = conn.execute(select(t.proposal_moves).where(t.proposal_moves.c.proposal_id == proposal["proposal_id"])).all()
            crm_ids = dict(conn.execute(select(t.accounts.c.account_key, t.accounts.c.crm_id)
                                        .where(t.accounts.c.client_id == "demo")).all())  # fmt: skip
        assert moves
        companies_before = len(hs.objects["companies"])
        hs.inject("status", method="POST", path=r"/companies/batch/update$", times=50, status=400,
                  body={"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR",
                        "correlationId": "00000000-0000-0000-0000-000000000000"})  # fmt: skip
        approve = {"approve_rebalance": proposal["proposal_id"]}
        failed = run("territories", pendulum.datetime(2028, 1, 10, 10, tz=TZ), approve, expect="failed")
        assert failed["apply_rebalance"].endswith("success") and not failed["crm_push"].endswith("success")
        assert pending_owner_pushes(engine, "demo")  # the warehouse moved; the CRM did not confirm
        hs.clear_faults()
        run("territories", pendulum.datetime(2028, 1, 10, 11, tz=TZ), approve)
        assert not pending_owner_pushes(engine, "demo")
        for mv in moves:  # exactly the reviewed moves, in the CRM
            assert hs.get("companies", crm_ids[mv.account_key])["hubspot_owner_id"] == mv.to_rep
        assert len(hs.objects["companies"]) == companies_before
        w = writes(hs)
        run("territories", pendulum.datetime(2028, 1, 10, 12, tz=TZ), approve)  # approving again changes nothing
        assert writes(hs) == w

        # every message went to the demo's channels, the architect got a copy of each
        assert {m["channel"] for m in slack.all_messages()} <= set(CHANNELS.values())
        assert all("Northwind Analytics" in m["text"] for m in slack.all_messages())
        assert "/var/" not in json.dumps(slack.all_messages()) and "/tmp/" not in json.dumps(slack.all_messages())
        reports = list((mm_home / "reports" / "demo").glob("*/executive.html"))
        assert len(reports) >= 2
        from marketmap.orchestration.portfolio import build_portfolio_dag

        portfolio = build_portfolio_dag()
        for task in portfolio.tasks:
            task.retries = 0
        assert str(portfolio.test(logical_date=pendulum.datetime(2028, 1, 11, 8, tz="UTC")).state).endswith("success")
        print(json.dumps(history, indent=1))
