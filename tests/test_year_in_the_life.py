"""A year in the life of a client, run through the real maintenance DAGs with dag.test().

Fifteen months of "Acme" (launch 2026-01-15, timezone America/Chicago) are simulated in
the warehouse: new accounts every month, deals closing twice a month at steady win rates
by tier, a duplicate contact in May, a runaway enrichment in July, T3 out-winning T1 in
July-August, won values drifting to ~45% of the valuations from May, and rep r4 leaving in
October. The monthly, quarterly, drift (1st and 15th), valuation and territories DAGs run
on their schedule dates (plus two manual runs with apply_valuation / approve_rebalance),
Slack is a local server (one 429 on the way), and the test asserts which alert fires,
updates or resolves on which date, that each fires once, that quiet periods send nothing,
and that every message goes to the right channel of the right client.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import yaml
from servers.slack import TOKEN, SlackServer
from sqlalchemy import delete, select, update

from marketmap.config import load_client
from marketmap.warehouse import get_engine, upsert
from marketmap.warehouse import schema as t

TZ = ZoneInfo("America/Chicago")
START, END = dt.date(2026, 2, 1), dt.date(2027, 4, 1)
CHANNELS = {"revops": "#acme-revops", "leadership": "#acme-lead", "architect": "#mm-architects"}
BETA = {"revops": "#beta-revops", "leadership": "#beta-lead", "architect": "#mm-architects"}

ACME = {
    "client_id": "acme", "name": "Acme Corp", "timezone": "America/Chicago", "launch_date": "2026-01-15",
    "crm": {"kind": "csv"},
    "icp": {"version": "v1", "rubrics": [{"vectors": [
        {"name": "size", "kind": "bands", "field": "employees", "weight": 100,
         "bands": [{"min": 1000, "points": 100}, {"min": 200, "max": 1000, "points": 60},
                   {"min": 50, "max": 200, "points": 30}]}]}]},
    "valuation": {"methods": ["headcount"], "seat_price": 100, "penetration": 0.1},
    "enrichment": {"monthly_credit_budget": 1000},
    "territories": {"reps": [{"id": f"r{i}", "name": f"Rep {i}"} for i in range(1, 5)]},
    "schedules": {"drift": "0 7 1,15 * *"},
    "slack": {"conn_id": "slack_yil", "channels": CHANNELS},
}  # fmt: skip
BETA_CFG = {**ACME, "client_id": "beta", "name": "Beta GmbH", "timezone": "Europe/Berlin",
            "slack": {"conn_id": "slack_yil", "channels": BETA}}  # fmt: skip

# Won deals per batch (two batches a month: the 5th and the 20th), out of 5 T1, 4 T2 and 4 T3 deals.
NORMAL = {"T1": (3, 2), "T2": (1, 2), "T3": (0, 1)}
DRIFT = {"T1": (1, 1), "T2": (0, 1), "T3": (3, 3)}  # July-August 2026: T3 out-wins T1
SIZES = {"T1": 1500, "T2": 500, "T3": 100}
PER_BATCH = {"T1": 5, "T2": 4, "T3": 4}


class World:
    """The client's CRM history, applied to the warehouse as simulated time passes."""

    def __init__(self, engine):
        self.engine = engine
        self.applied: set[str] = set()
        self.events: list[tuple[dt.date, str, object]] = []
        self._accounts()
        self._deals()
        self.events.append((dt.date(2026, 5, 10), "dup_contact", True))
        self.events.append((dt.date(2026, 6, 10), "dup_contact", False))
        self.events.append((dt.date(2026, 7, 12), "ledger", None))
        self.events.append((dt.date(2026, 10, 15), "rep_left", "r4"))
        self.events.sort(key=lambda e: (e[0], e[1]))
        with engine.begin() as conn:
            upsert(conn, t.reps, [{"client_id": "acme", "rep_id": f"r{i}", "name": f"Rep {i}", "active": True}
                                  for i in range(1, 5)])  # fmt: skip

    def _accounts(self) -> None:
        n = 0
        day = dt.date(2025, 12, 1)
        # 60 accounts at launch (20 per tier), then 3 a month (one per tier), owners round robin
        for tier in ("T1", "T2", "T3"):
            for _ in range(20):
                self.events.append((day, "account", (n, tier)))
                n += 1
        month = dt.date(2026, 2, 10)
        while month < END:
            for tier in ("T1", "T2", "T3"):
                self.events.append((month, "account", (n, tier)))
                n += 1
            month = (month.replace(day=1) + dt.timedelta(days=32)).replace(day=10)

    def _deals(self) -> None:
        d, batch = dt.date(2026, 1, 20), 0
        while d < END:
            drift = dt.date(2026, 7, 1) <= d < dt.date(2026, 9, 1)
            value_drift = d >= dt.date(2026, 5, 1)
            wins = DRIFT if drift else NORMAL
            for tier, n in PER_BATCH.items():
                k = wins[tier][batch % 2]
                for i in range(n):
                    self.events.append((d, "deal", (d, tier, i, i < k, value_drift)))
            batch += 1
            d = d.replace(day=20) if d.day == 5 else (d.replace(day=1) + dt.timedelta(days=32)).replace(day=5)

    def advance(self, until: dt.date) -> None:
        """Apply every event dated before ``until``."""
        accounts, opps = [], []
        for i, (day, kind, data) in enumerate(self.events):
            if day >= until or f"{i}" in self.applied:
                continue
            self.applied.add(f"{i}")
            if kind == "account":
                n, tier = data
                owners = [f"r{k}" for k in range(1, 5)] if day < dt.date(2026, 10, 15) else ["r1", "r2", "r3"]
                accounts.append({"client_id": "acme", "account_key": f"acct{n:04d}", "crm_id": f"001{n:015d}",
                                 "name": f"Account {n}", "domain": f"acct{n:04d}.com",
                                 "employees": float(SIZES[tier] + (n % 7) * 10), "owner_id": owners[n % len(owners)],
                                 "crm_created": dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)})  # fmt: skip
                self._contact(n)
            elif kind == "deal":
                close, tier, i_, won, value_drift = data
                key = self._account_for(tier, close, i_)
                valuation = (SIZES[tier] + (int(key[4:]) % 7) * 10) * 10.0
                factor = (0.4, 0.45, 0.5)[i_ % 3] if value_drift else (0.9, 1.0, 1.1)[i_ % 3]
                opps.append({"client_id": "acme", "crm_id": f"006{close:%Y%m%d}{tier}{i_}", "account_key": key,
                             "name": "deal", "stage": "Closed Won" if won else "Closed Lost",
                             "amount": valuation * factor if won else valuation, "is_closed": True, "is_won": won,
                             "created_date": dt.datetime.combine(close - dt.timedelta(days={"T1": 35, "T2": 50, "T3": 70}[tier] + i_), dt.time(), tzinfo=dt.UTC),
                             "close_date": close})  # fmt: skip
            elif kind == "dup_contact":
                with self.engine.begin() as conn:
                    if data:
                        conn.execute(t.contacts.insert(), [{"client_id": "acme", "contact_key": "dup1", "account_key": "acct0001",
                                                            "first_name": "Dup", "last_name": "Licate", "title": "Analyst",
                                                            "email": "person0000@acct0000.com"}])  # fmt: skip
                    else:
                        conn.execute(delete(t.contacts).where(t.contacts.c.contact_key == "dup1"))
            elif kind == "ledger":
                at = dt.datetime(2026, 7, 12, tzinfo=dt.UTC)
                rows = [{"client_id": "acme", "provider": "apollo", "credits": 3.0, "account_key": f"acct{k % 60:04d}",
                         "run_id": "manual__enrich_july", "outcome": "hit", "month": "2026-07", "recorded_at": at}
                        for k in range(400)]  # 1,200 credits: over the 1,000 budget, accounts paid twice  # fmt: skip
                with self.engine.begin() as conn:
                    conn.execute(t.credit_ledger.insert(), rows)
            elif kind == "rep_left":
                with self.engine.begin() as conn:
                    conn.execute(update(t.reps).where(t.reps.c.rep_id == data).values(active=False))
        with self.engine.begin() as conn:
            upsert(conn, t.accounts, accounts)
            upsert(conn, t.opportunities, opps)

    def _account_for(self, tier: str, close: dt.date, i: int) -> str:
        base = {"T1": 0, "T2": 20, "T3": 40}[tier]
        return f"acct{base + (close.toordinal() + i) % 20:04d}"

    def _contact(self, n: int) -> None:
        with self.engine.begin() as conn:
            upsert(conn, t.contacts, [{"client_id": "acme", "contact_key": f"c{n:04d}", "account_key": f"acct{n:04d}",
                                       "first_name": "Pat", "last_name": f"Person{n}", "title": "Analyst",
                                       "email": f"person{n:04d}@acct{n:04d}.com"}])  # fmt: skip


OPEN_PROPOSAL = "<the open rebalancing proposal>"


def schedule() -> list[tuple[dt.datetime, str, dict]]:
    """(local run time, pipeline, params) of every run, in order."""
    runs = []
    d = START
    while d <= END:
        if d.day == 1:
            runs.append((dt.datetime.combine(d, dt.time(6), TZ), "monthly", {}))
        if d.day == 2 and d.month in (1, 4, 7, 10):
            runs.append((dt.datetime.combine(d, dt.time(6), TZ), "quarterly_personas", {}))
        if d.day in (1, 15):
            runs.append((dt.datetime.combine(d, dt.time(7), TZ), "drift", {}))
        if d.day == 3 and d.month in (1, 7):
            runs.append((dt.datetime.combine(d, dt.time(7), TZ), "valuation", {}))
        if d.day == 4 and d.month in (1, 7):
            runs.append((dt.datetime.combine(d, dt.time(7), TZ), "territories", {}))
        d += dt.timedelta(days=1)
    runs.append((dt.datetime(2027, 1, 8, 10, tzinfo=TZ), "valuation", {"apply_valuation": True}))
    # the approval names the proposal the territory check stored on Jan 4 (resolved at run time)
    runs.append((dt.datetime(2027, 1, 11, 10, tzinfo=TZ), "territories", {"approve_rebalance": OPEN_PROPOSAL}))
    return sorted(runs, key=lambda r: r[0])


def run(client: str, pipeline: str, when: dt.datetime, params: dict | None = None):
    from marketmap.orchestration import maintenance  # noqa: F401 - registers the pipelines
    from marketmap.orchestration.factory import PIPELINES

    dag = PIPELINES[pipeline](load_client(client))
    for task in dag.tasks:
        task.retries = 0  # dag.test() would wait out real retry delays
    dr = dag.test(logical_date=when, run_conf=params or None)
    assert str(dr.state).endswith("success"), (client, pipeline, when, dr.state)
    return dr


def events(engine) -> list[tuple[str, str, str, str]]:
    """(local date, event, rule, key) of every alert decision (one per decision, not per channel)."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.alert_events.c.at, t.alert_events.c.event, t.alert_events.c.fingerprint,
                                   t.alert_events.c.payload, t.alert_events.c.client_id)
                            .order_by(t.alert_events.c.event_id)).all()  # fmt: skip
    seen, out = set(), []
    for r in rows:
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=dt.UTC)
        k = (r.client_id, r.fingerprint, r.event, at)
        if k in seen:
            continue
        seen.add(k)
        out.append(
            (
                at.astimezone(TZ).date().isoformat(),
                r.event,
                r.fingerprint.split(":")[0],
                r.payload.get("key", ""),
            )
        )
    return out


EXPECTED = [
    ("2026-04-01", "fired", "refinement_checkin", "2026-04-15"),
    ("2026-04-02", "fired", "persona_coverage_low", ""),
    ("2026-05-01", "resolved", "refinement_checkin", "2026-04-15"),
    ("2026-06-01", "fired", "duplicates", ""),
    ("2026-07-01", "resolved", "duplicates", ""),
    ("2026-07-15", "fired", "icp_validation_review", "2026-07-16"),
    ("2026-08-01", "fired", "credit_burn_above_pace", ""),
    ("2026-08-01", "fired", "runaway_enrichment", "manual__enrich_july"),
    ("2026-08-01", "fired", "duplicate_charges", ""),
    ("2026-08-01", "resolved", "icp_validation_review", "2026-07-16"),
    # the 60-day window of Jun 16-Aug 15 shows T3 ahead (56% vs 30%) but p=0.056: holding, not sent
    ("2026-09-01", "resolved", "credit_burn_above_pace", ""),
    ("2026-09-01", "resolved", "duplicate_charges", ""),
    ("2026-09-01", "resolved", "runaway_enrichment", "manual__enrich_july"),
    ("2026-09-01", "fired", "t3_beats_t1", "T3>T1"),  # 75% vs 20% over Jul 3-Sep 1, p<0.001
    ("2026-09-15", "updated", "t3_beats_t1", "T3>T1"),  # T3 75% -> 62.5%: a material change
    ("2026-10-15", "resolved", "t3_beats_t1", "T3>T1"),
    ("2027-01-01", "fired", "icp_validation_review", "2027-01-14"),
    ("2027-01-03", "fired", "valuation_divergence", "overall"),
    ("2027-01-04", "fired", "inactive_rep_owns_accounts", "r4"),
    ("2027-01-08", "resolved", "valuation_divergence", "overall"),
    ("2027-01-11", "resolved", "inactive_rep_owns_accounts", "r4"),
    ("2027-01-15", "resolved", "icp_validation_review", "2027-01-14"),
]


@pytest.mark.slow
def test_a_year_in_the_life(airflow_db, mm_home, tmp_path, monkeypatch):
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "acme.yaml").write_text(yaml.safe_dump(ACME))
    (clients / "beta.yaml").write_text(yaml.safe_dump(BETA_CFG))
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(clients))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test:8080")
    engine = get_engine()
    world = World(engine)
    with SlackServer(channels={*CHANNELS.values(), *BETA.values()}) as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_YIL", json.dumps(
            {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": slack.base_url}}))  # fmt: skip
        slack.inject("status", path="chat.postMessage", status=429, headers={"Retry-After": "1"},
                     body={"ok": False, "error": "ratelimited"})  # the first message is rate limited once  # fmt: skip
        for when, pipeline, params in schedule():
            world.advance(when.date())
            if params.get("approve_rebalance") == OPEN_PROPOSAL:
                from marketmap.analysis.proposals import open_proposals

                [proposal] = open_proposals(engine, "acme", "rebalance")
                params = {"approve_rebalance": proposal["proposal_id"]}
            run("acme", pipeline, when, params)
            if pipeline == "drift" and when.day == 1 and when.month in (3, 9):
                run("beta", "drift", when)  # another client, no data: nothing for its channels
        log = events(engine)
        assert log == EXPECTED

        # each condition fired once
        fired = Counter((rule, key) for _, ev, rule, key in log if ev == "fired")
        assert set(fired.values()) == {1}
        # stationary periods send nothing
        assert not [e for e in log if "2026-02-01" <= e[0] < "2026-04-01"]
        assert not [e for e in log if "2026-10-16" <= e[0] < "2026-12-31"]

        # re-running an interval changes and sends nothing
        before = len(slack.all_messages())
        run("acme", "drift", dt.datetime(2026, 8, 15, 7, tzinfo=TZ))
        run("acme", "monthly", dt.datetime(2026, 8, 1, 6, tzinfo=TZ))
        assert len(slack.all_messages()) == before and events(engine) == log

        # routing: RevOps for data and credits, leadership for drift/valuation/territories, architect for all
        msgs = slack.all_messages()
        assert slack.calls("POST", "chat.postMessage", 429) == 1
        assert not slack.messages.get("#beta-revops") and not slack.messages.get("#beta-lead")
        assert all("Acme Corp" in m["text"] for m in msgs)
        revops = " ".join(m["text"] for m in slack.messages["#acme-revops"])
        lead = " ".join(m["text"] for m in slack.messages["#acme-lead"])
        assert "credits" in revops and "Duplicates" in revops and "T3" not in revops
        assert "T3 accounts are winning" in lead and "Valuations are" in lead and "r4 has left" in lead
        decisions = sum(
            1
            for e in log
            if not (e[1] == "resolved" and e[2] in ("refinement_checkin", "icp_validation_review"))
        )
        assert len(slack.messages["#mm-architects"]) == decisions
        assert len(msgs) == 2 * decisions
        t3 = next(m for m in slack.messages["#acme-lead"] if "T3 accounts are winning" in m["text"])
        blocks = json.dumps(t3["blocks"])
        assert "two-proportion z-test" in blocks and "Re-engage the ICP specialist" in blocks
        assert "http://airflow.test:8080/dags/acme__drift/runs/" in blocks

    # the applied calibration and rebalance are on record
    with engine.connect() as conn:
        cal = conn.execute(
            select(t.runs.c.summary).where(t.runs.c.pipeline == "valuation_calibration")
        ).scalar_one()
        owners = dict(conn.execute(select(t.accounts.c.account_key, t.accounts.c.owner_id)
                                   .where(t.accounts.c.client_id == "acme")).all())  # fmt: skip
    assert 0.4 <= cal["scale"] <= 0.5 and cal["coefficients"]["seat_price"] == pytest.approx(
        100 * cal["scale"]
    )
    assert "r4" not in set(owners.values())
