"""A small, known warehouse for the report, preview and portfolio tests (and the browser test).

Two clients (``acme``, ``globex``; configs in tests/fixtures/report_clients) with accounts,
contacts, opportunities, reps, a finished build run with a summary, rejected rows, credits
and alerts. Scores come from the real scoring steps, so the reports see what a build writes.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from marketmap.config import load_client
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert

CLIENTS_DIR = Path(__file__).parent / "fixtures" / "report_clients"
CANDIDATE = Path(__file__).parent / "fixtures" / "candidate_rubric.yaml"
RUN_ID = "manual__2026-03-02T10:00:00+00:00"
RUN_DATE = dt.date(2026, 3, 2)
INDUSTRIES = ["Software", "Finance", "Retail", "Healthcare"]
COUNTRIES = ["US", "US", "CA", "DE"]
TITLES = ["VP Sales", "Sales Director", "Sales Manager", "Intern", "Engineer"]


def seed_client(engine, client_id: str, *, n_accounts: int = 120, seed: int = 1, alerts: bool = True) -> dict:
    """Write a deterministic dataset for ``client_id`` and score it; return what was written."""
    from marketmap.scoring.pipeline import score_accounts, score_contacts, value_accounts

    cfg = load_client(client_id, CLIENTS_DIR)
    rnd = random.Random(seed)
    now = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    rep_ids = [r.id for r in cfg.territories.reps]
    accounts, contacts, opps = [], [], []
    for i in range(n_accounts):
        key = f"{client_id}-a{i:04d}"
        employees = rnd.choice([10, 30, 120, 300, 800, 2500])
        accounts.append(
            {
                "client_id": client_id, "account_key": key, "crm_id": f"001{i:05d}", "name": f"{client_id.title()} Customer {i}",
                "domain": f"c{i}.{client_id}.example", "industry": rnd.choice(INDUSTRIES), "employees": float(employees),
                "country": rnd.choice(COUNTRIES), "owner_id": rep_ids[i % len(rep_ids)],
                "current_arr": float(employees * 10 * rnd.uniform(0.8, 1.2)) if i % 9 == 0 else None,
                "last_seen_run": RUN_ID, "updated_at": now,
            }
        )  # fmt: skip
        for j in range(i % 4):
            contacts.append(
                {
                    "client_id": client_id, "contact_key": f"{key}-c{j}", "crm_id": f"003{i:05d}{j}", "account_key": key,
                    "first_name": f"Pat{j}", "last_name": f"Doe{i}", "title": TITLES[(i + j) % len(TITLES)],
                    "department": "Sales", "country": "US", "email": f"pat{j}@c{i}.example", "updated_at": now,
                }
            )  # fmt: skip
    for i in range(90):
        acc = accounts[(i * 7) % n_accounts]
        good = acc["industry"] in ("Software", "Finance") and acc["employees"] >= 120
        won = rnd.random() < (0.6 if good else 0.15)
        created = now - dt.timedelta(days=rnd.randint(60, 400))
        opps.append(
            {
                "client_id": client_id, "crm_id": f"006{i:05d}", "account_key": acc["account_key"], "name": f"Deal {i}",
                "stage": "Closed Won" if won else "Closed Lost", "amount": float(rnd.choice([5000, 12000, 30000])),
                "is_closed": True, "is_won": won, "created_date": created,
                "close_date": (created + dt.timedelta(days=rnd.randint(20, 120))).date(), "opp_type": "New Business",
                "owner_id": acc["owner_id"], "updated_at": now,
            }
        )  # fmt: skip
    reps = [
        {"client_id": client_id, "rep_id": r.id, "name": r.name, "territory": r.territory, "active": True}
        for r in cfg.territories.reps
    ]
    with engine.begin() as conn:
        upsert(conn, t.accounts, accounts)
        upsert(conn, t.contacts, contacts)
        upsert(conn, t.opportunities, opps)
        upsert(conn, t.reps, reps)
    steps = {
        "ingest": {"accounts": {"file": "Account.csv", "rows": n_accounts + 2, "rejected": 2}},
        "load": {"accounts_new": n_accounts, "accounts_updated": 0, "contacts_loaded": len(contacts),
                 "opportunities_loaded": len(opps), "opportunities_closed": len(opps), "opportunities_won": sum(o["is_won"] for o in opps), "reps": len(reps)},
        "score": score_accounts(cfg, engine, RUN_ID, RUN_DATE),
        "value": value_accounts(cfg, engine, RUN_ID),
        "contacts": score_contacts(cfg, engine, RUN_ID, RUN_DATE),
    }  # fmt: skip
    with engine.begin() as conn:
        upsert(conn, t.runs, [{"client_id": client_id, "run_id": RUN_ID, "pipeline": "build", "logical_date": now,
                               "started_at": now, "finished_at": now + dt.timedelta(minutes=3), "status": "success",
                               "summary": {"client_id": client_id, "run_id": RUN_ID, "steps": steps, "rows_rejected": 2}}])  # fmt: skip
        conn.execute(
            t.rejected_rows.insert(),
            [
                {"client_id": client_id, "run_id": RUN_ID, "file": "Account.csv", "row_number": 17, "field": "NumberOfEmployees",
                 "value": "twelve", "reason": "NumberOfEmployees 'twelve' is not a whole number"},
                {"client_id": client_id, "run_id": RUN_ID, "file": "Account.csv", "row_number": 40, "field": "Name",
                 "value": "", "reason": "Name is blank (required)"},
            ],
        )  # fmt: skip
        # The run's month (validation report) and this month (portfolio page): 60 lookups x 2 credits each.
        for month in sorted({now.strftime("%Y-%m"), dt.datetime.now(dt.UTC).strftime("%Y-%m")}):
            conn.execute(
                t.credit_ledger.insert(),
                [{"client_id": client_id, "provider": "apollo", "credits": 2.0, "account_key": a["account_key"], "run_id": RUN_ID,
                  "outcome": "hit", "month": month, "recorded_at": now} for a in accounts[:60]],
            )  # fmt: skip
        if alerts:
            upsert(conn, t.alerts, [
                {"client_id": client_id, "fingerprint": f"{client_id}-drift", "rule": "icp_drift", "severity": "critical",
                 "status": "open", "role": "leadership", "title": f"{cfg.name}: T3 wins more often than T1",
                 "numbers": {"lift": 0.8}, "first_seen": now},
                {"client_id": client_id, "fingerprint": f"{client_id}-blank", "rule": "blank_tier", "severity": "warning",
                 "status": "resolved", "role": "revops", "title": f"{cfg.name}: 6% blank tier", "numbers": {},
                 "first_seen": now - dt.timedelta(days=10), "resolved_at": now - dt.timedelta(days=2)},
            ])  # fmt: skip
    return {
        "cfg": cfg,
        "accounts": len(accounts),
        "contacts": len(contacts),
        "opportunities": len(opps),
        "steps": steps,
    }
