"""Benchmark: push 100,000 account updates to the local HubSpot (190 requests / 10 s) and
Salesforce servers through the real client libraries; then push again with nothing changed.

    .venv/bin/python bench/bench_crm_push.py [--rows N] [--skip-peer] [--only hubspot|salesforce]

HubSpot: Market Map's push (client-side rolling window at the portal's limit, 100-record
batch updates) against the lower bound the limit allows, and a peer in the same run: the
same push without the client-side rolling window, only reacting to the rate-limit headers
and to 429 + Retry-After.
Salesforce: sObject Collections (200 records per call) and Bulk API 2.0 (10,000-record
jobs) on the same data. Each push is followed by a re-run with no changes (write calls
should be 0). Setup (seeding the servers, the extract that fills the warehouse) runs
unthrottled and is reported separately. Numbers go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local vendor servers live with the tests
os.environ.setdefault("MARKETMAP_HOME", tempfile.mkdtemp(prefix="bench-crm-"))

from servers.hubspot import HubSpotServer  # noqa: E402
from servers.salesforce import SalesforceServer  # noqa: E402
from servers.world import client_cfg, hubspot_custom_properties, salesforce_custom_fields  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from marketmap import crm  # noqa: E402
from marketmap.crm.base import CrmSettings  # noqa: E402
from marketmap.warehouse import dispose_engines, get_engine  # noqa: E402
from marketmap.warehouse import schema as t  # noqa: E402

HS_LIMIT = (190, 10.0)
WRITE_PATHS = r"/batch/(update|create|upsert)$"
ACCOUNT_ONLY = {"hubspot": 0, "salesforce": 0}  # index of the account push in the test configs


def seed_scores(engine, cid: str, keys: list[str], tier: str, score: float) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [
        {"client_id": cid, "account_key": k, "product": "core", "rubric_version": "v1", "score": score + i % 7,
         "tier": tier, "valuation": 10_000.0 + i, "scored_at": now}
        for i, k in enumerate(keys)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(t.account_scores.delete().where(t.account_scores.c.client_id == cid))
        for i in range(0, len(rows), 10_000):
            conn.execute(insert(t.account_scores), rows[i : i + 10_000])


def lower_bounds(calls: int) -> tuple[float, float]:
    """(steady-rate bound calls / (190/10 s), rolling-window bound with a full first burst)."""
    limit, window = HS_LIMIT
    return calls * window / limit, (math.ceil(calls / limit) - 1) * window


def write_calls(server) -> int:
    """Requests that change CRM data: HubSpot batch writes; Salesforce Collections calls and
    Bulk API 2.0 job create / upload / close (queries and polls excluded)."""
    with server.lock:
        log = list(server.log)
    if isinstance(server, HubSpotServer):
        return sum(1 for m, p, _ in log if m == "POST" and re.search(WRITE_PATHS, p))
    return sum(1 for m, p, _ in log if m in ("POST", "PATCH", "PUT") and "/query" not in p)


def push(cfg, engine, run_id: str, adapter, server) -> dict:
    before = write_calls(server)
    total_before = len(server.log)
    t0 = time.monotonic()
    plan = crm.plan_push(cfg, engine, run_id, adapter, cfg.push[0])
    t1 = time.monotonic()
    result = crm.execute_push(cfg, engine, run_id, adapter, plan)
    t2 = time.monotonic()
    writes = write_calls(server) - before
    return {
        "plan_s": t1 - t0,
        "push_s": t2 - t1,
        "updates": result.updated,
        "failed": result.failed,
        "status": result.status,
        "requests": len(server.log) - total_before,
        "write_calls": writes,
        "throttled": result.calls.get("throttled_429", 0),
    }


def fresh_warehouse(name: str) -> None:
    """One SQLite warehouse per CRM: the two benchmarks must not see each other's sync state."""
    dispose_engines()
    os.environ["MARKETMAP_HOME"] = tempfile.mkdtemp(prefix=f"bench-crm-{name}-")


def bench_hubspot(rows: int, peer: bool) -> list[dict]:
    fresh_warehouse("hubspot")
    out = []
    server = HubSpotServer(token="pat-na1-bench", rate_limit=None)
    hubspot_custom_properties(server)
    with server:
        t0 = time.monotonic()
        for i in range(rows):
            server.add("companies", {"name": f"Company {i:06d}", "domain": f"co{i:06d}.com"})
        cfg = client_cfg("hubspot")
        engine = get_engine()
        fast = CrmSettings(rate_limit=None, search_per_second=0)
        setup = crm.adapter_for(cfg, {"host": server.url, "password": server.token}, settings=fast)
        ext = crm.extract(cfg, engine, "bench-extract", setup, objects=("account",))
        keys = [f"co{i:06d}.com" for i in range(rows)]
        seed_scores(engine, cfg.client_id, keys, "T1", 80)
        print(f"hubspot setup: {rows:,} companies seeded and extracted in {time.monotonic() - t0:.1f} s "
              f"({ext['objects']['account']['records']:,} records, {setup.stats.total:,} unthrottled reads)", flush=True)  # fmt: skip

        variants = [
            (
                "Market Map (client throttle 190/10 s + 429 Retry-After)",
                CrmSettings(rate_limit=HS_LIMIT, search_per_second=0),
            )
        ]
        if peer:
            variants.append(("peer: no client-side window (reacts to X-HubSpot-RateLimit-Remaining and 429 Retry-After)", CrmSettings(rate_limit=None, search_per_second=0, max_attempts=20)))  # fmt: skip
        for n, (label, settings) in enumerate(variants):
            if n:  # fresh values to push for the peer: the tier changes everywhere
                seed_scores(engine, cfg.client_id, keys, "T2", 60)
                time.sleep(HS_LIMIT[1])  # let the portal's window drain
            server.rate_limit = HS_LIMIT
            ad = crm.adapter_for(cfg, {"host": server.url, "password": server.token}, settings=settings)
            throttled0 = server.throttled
            r = push(cfg, engine, f"bench-{n}", ad, server)
            r["server_429"] = server.throttled - throttled0
            steady, burst = lower_bounds(r["requests"])
            r.update(label=label, crm="HubSpot", bound_steady_s=steady, bound_burst_s=burst, rows=rows)
            print(f"  {label}: {r}", flush=True)
            out.append(r)
            again = push(cfg, engine, f"bench-{n}-again", ad, server)
            again.update(label=f"{label} — re-run, no changes", crm="HubSpot", rows=rows)
            print(f"  re-run: {again}", flush=True)
            out.append(again)
    return out


def bench_salesforce(rows: int) -> list[dict]:
    fresh_warehouse("salesforce")
    out = []
    server = SalesforceServer(page_size=2000, daily_limit=10_000_000)
    salesforce_custom_fields(server)
    with server:
        t0 = time.monotonic()
        for i in range(rows):
            server.add("Account", {"Name": f"Company {i:06d}", "Website": f"https://www.co{i:06d}.com/"})
        cfg = client_cfg("salesforce")
        engine = get_engine()
        fast = CrmSettings(bulk_poll_s=0.05)
        setup = crm.adapter_for(
            cfg,
            {"host": server.instance_url, "password": server.token},
            settings=fast,
            mounts=server.mounts(),
        )
        ext = crm.extract(cfg, engine, "bench-sf-extract", setup, objects=("account",))
        keys = [f"co{i:06d}.com" for i in range(rows)]
        print(f"salesforce setup: {rows:,} accounts seeded and extracted in {time.monotonic() - t0:.1f} s "
              f"({ext['objects']['account']['records']:,} records; Bulk API 2.0 query jobs: {server.calls('POST', r'/jobs/query$')})",
              flush=True)  # fmt: skip
        variants = [
            ("sObject Collections (200 per call)", dataclasses.replace(fast, bulk_threshold=10**9)),
            (
                "Bulk API 2.0 (10,000-record jobs)",
                dataclasses.replace(fast, bulk_threshold=10_000, bulk_job_size=10_000),
            ),
        ]
        for n, (label, settings) in enumerate(variants):
            seed_scores(engine, cfg.client_id, keys, "T1" if n == 0 else "T2", 80 - 20 * n)
            ad = crm.adapter_for(
                cfg,
                {"host": server.instance_url, "password": server.token},
                settings=settings,
                mounts=server.mounts(),
            )
            r = push(cfg, engine, f"bench-sf-{n}", ad, server)
            r.update(label=label, crm="Salesforce", rows=rows)
            print(f"  {label}: {r}", flush=True)
            out.append(r)
            again = push(cfg, engine, f"bench-sf-{n}-again", ad, server)
            again.update(label=f"{label} — re-run, no changes", crm="Salesforce", rows=rows)
            print(f"  re-run: {again}", flush=True)
            out.append(again)
    return out


def table(results: list[dict]) -> str:
    lines = [
        "| CRM | push | records updated | API requests | requests / record | write calls | 429s | push time | lower bound (steady / burst) | plan time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        per = r["requests"] / r["rows"] if r["rows"] else 0
        bound = f"{r['bound_steady_s']:.1f} s / {r['bound_burst_s']:.0f} s" if "bound_steady_s" in r else "—"
        lines.append(
            f"| {r['crm']} | {r['label']} | {r['updates']:,} | {r['requests']:,} | {per:.4f} | {r['write_calls']:,} | "
            f"{r.get('server_429', r['throttled'])} | {r['push_s']:.1f} s | {bound} | {r['plan_s']:.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument(
        "--skip-peer", action="store_true", help="HubSpot: skip the peer push without the client-side window"
    )
    ap.add_argument("--only", choices=["hubspot", "salesforce"])
    args = ap.parse_args()
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        "warehouse: SQLite, a fresh file per CRM"
    )
    results = []
    if args.only != "salesforce":
        results += bench_hubspot(args.rows, not args.skip_peer)
    if args.only != "hubspot":
        results += bench_salesforce(args.rows)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
