"""Benchmark: push 100,000 account updates to the local HubSpot (190 requests / 10 s) and
Salesforce servers through the real client libraries; then push again with nothing changed.

    .venv/bin/python bench/bench_crm_push.py [--rows N] [--skip-peer] [--only hubspot|salesforce]
    .venv/bin/python bench/bench_crm_push.py --faults [--rows N] [--fault-rate 0.02] [--only …]

``--faults``: N records (2% net-new creates) pushed with a share of the write requests
failing, spread evenly over every documented fault (HubSpot: 429 with / without Retry-After,
502 HTML, 503 JSON, timeout before applied, applied-then-timed-out, 2xx with one result moved
to a per-input INTERNAL_ERROR; Salesforce: 503 HTML, 500 JSON, timeout before / after applied,
UNABLE_TO_LOCK_ROW on single rows), run after run until a plan has nothing to write. Reports
runs to converge, calls vs the rate-limit bound, duplicates, lost and wrong records.

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
from servers.world import (  # noqa: E402
    client_cfg,
    hubspot_custom_properties,
    salesforce_custom_fields,
    scored_version,
)
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
        {"client_id": cid, "account_key": k, "product": "core", "rubric_version": scored_version(), "score": score + i % 7,
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


# --------------------------------------------------------------------------- fault injection


class Dice:
    """A seeded coin per fault kind: each write request fails with ``rate / kinds`` per kind."""

    def __init__(self, rate: float, kinds: int, seed: int = 16):
        import random

        self.rng = random.Random(seed)
        self.p = rate / kinds
        self.enabled = True
        self.fired = 0

    def __call__(self, req) -> bool:
        hit = self.enabled and self.rng.random() < self.p
        self.fired += hit
        return hit


def _partial_207(body):
    """A 2xx batch answer whose first result became a per-input error (HubSpot 207 shape);
    the write itself was applied: the retry must not duplicate a create."""
    if not isinstance(body, dict) or not body.get("results"):
        return body
    first, rest = body["results"][0], body["results"][1:]
    ctx = (
        {"objectWriteTraceId": [first["objectWriteTraceId"]]}
        if first.get("objectWriteTraceId")
        else {"ids": [first["id"]]}
    )
    err = {
        "status": "error",
        "category": "INTERNAL_ERROR",
        "message": "An internal error occurred",
        "context": ctx,
    }
    return {**body, "status": "COMPLETE", "results": rest, "errors": [*(body.get("errors") or []), err],
            "numErrors": len(body.get("errors") or []) + 1}  # fmt: skip


HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


def hubspot_faults(server, rate: float) -> Dice:
    kinds = 7
    dice = Dice(rate, kinds)
    w = WRITE_PATHS
    server.inject("status", method="POST", path=w, when=dice, times=None, status=429, headers={"Retry-After": "1"},
                  body={"status": "error", "category": "RATE_LIMITS", "message": "You have reached your secondly limit."})  # fmt: skip
    server.inject("status", method="POST", path=w, when=dice, times=None, status=429,
                  body={"status": "error", "category": "RATE_LIMITS", "message": "You have reached your secondly limit."})  # fmt: skip
    server.inject("status", method="POST", path=w, when=dice, times=None, status=502, body=HTML_502)
    server.inject("status", method="POST", path=w, when=dice, times=None, status=503,
                  body={"status": "error", "category": "SERVICE_UNAVAILABLE", "message": "Service unavailable"})  # fmt: skip
    server.inject("timeout", method="POST", path=w, when=dice, times=None, delay=2.5)  # before applied
    server.inject(
        "timeout", method="POST", path=w, when=dice, times=None, delay=2.5, after=True
    )  # applied, lost
    server.inject("malformed", method="POST", path=w, when=dice, times=None, body=_partial_207)
    return dice


SF_TIMEOUT = 15.0  # the fake's SOQL over 100k records needs more than HubSpot's 2 s on 2 shared cores


def salesforce_faults(server, rate: float, rows: list[str]) -> Dice:
    import random

    kinds = 5
    dice = Dice(rate, kinds)
    w = r"composite/sobjects"
    server.inject("status", path=w, when=dice, times=None, status=503, body=HTML_502.replace("502 Bad Gateway", "503 Service Unavailable"))  # fmt: skip
    server.inject("status", path=w, when=dice, times=None, status=500,
                  body=[{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred."}])  # fmt: skip
    server.inject("timeout", path=w, when=dice, times=None, delay=SF_TIMEOUT + 0.5)
    server.inject("timeout", path=w, when=dice, times=None, delay=SF_TIMEOUT + 0.5, after=True)
    # the fifth kind: single rows locked by another transaction (a per-row error in a 200 answer)
    rng = random.Random(17)
    for rid in rows:
        if rng.random() < dice.p:
            server.locked_rows[rid] = 1
    return dice


def add_net_new(engine, cid: str, keys: list[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(t.accounts), [
            {"client_id": cid, "account_key": k, "name": f"New {k}", "name_norm": f"new {k}", "domain": k,
             "website": k, "updated_at": now} for k in keys
        ])  # fmt: skip


def converge(cfg, engine, adapter, server, label: str, max_runs: int = 8) -> dict:
    runs = []
    t0 = time.monotonic()
    requests0 = len(server.log)
    for n in range(max_runs):
        plan = crm.plan_push(cfg, engine, f"{label}-{n}", adapter, cfg.push[0])
        res = crm.execute_push(cfg, engine, f"{label}-{n}", adapter, plan)
        runs.append({"run": n + 1, "status": res.status, "created": res.created, "updated": res.updated,
                     "failed": res.failed, "retried_records": res.retried_records,
                     "calls": res.calls.get("total_calls", 0), "throttled": res.calls.get("throttled_429", 0),
                     "seconds": round(res.elapsed_s, 1)})  # fmt: skip
        print(f"  {label} run {n + 1}: {runs[-1]}", flush=True)
        if res.status == "nothing_to_do":
            break
    return {"runs": runs, "requests": len(server.log) - requests0, "seconds": time.monotonic() - t0}


def check_hubspot(server, engine, cid: str, keys: list[str]) -> dict:
    expected = _expected(engine, cid)
    by_domain: dict[str, list[dict]] = {}
    for rec in server.objects["companies"].values():
        by_domain.setdefault(rec["properties"].get("domain"), []).append(rec["properties"])
    dupes = sum(1 for v in by_domain.values() if len(v) > 1)
    lost = sum(1 for k in keys if k not in by_domain)
    wrong = 0
    for k in keys:
        for p in by_domain.get(k, [])[:1]:
            tier, score = expected[k]
            want = {"T1": "tier_1", "T2": "tier_2", "T3": "tier_3"}[tier]
            wrong += (
                p.get("hs_ideal_customer_profile") != want or float(p.get("icp_fit_score") or -1) != score
            )
    return {"duplicates": dupes, "lost": lost, "wrong": wrong}


def check_salesforce(server, engine, cid: str, keys: list[str]) -> dict:
    from servers.salesforce import _domain

    expected = _expected(engine, cid)
    by_domain: dict[str, list[dict]] = {}
    for rec in server.records["Account"].values():
        by_domain.setdefault(_domain(rec.get("Website")), []).append(rec)
    dupes = sum(1 for v in by_domain.values() if len(v) > 1)
    lost = sum(1 for k in keys if k not in by_domain)
    wrong = 0
    for k in keys:
        for r in by_domain.get(k, [])[:1]:
            tier, score = expected[k]
            want = {"T1": "Tier 1", "T2": "Tier 2", "T3": "Tier 3"}[tier]
            wrong += r.get("Account_Tier__c") != want or float(r.get("ICP_Fit_Score__c") or -1) != score
    return {"duplicates": dupes, "lost": lost, "wrong": wrong}


def _expected(engine, cid: str) -> dict[str, tuple[str, float]]:
    from sqlalchemy import select

    s = t.account_scores.c
    with engine.connect() as conn:
        rows = conn.execute(select(s.account_key, s.tier, s.score).where(s.client_id == cid)).all()
    return {k: (tier, score) for k, tier, score in rows}


def bench_faults(rows: int, rate: float, only: str | None) -> list[dict]:
    out = []
    new = max(1, rows // 50)  # 2% net-new: creates, where an applied-then-lost write risks a duplicate
    existing = rows - new
    keys = [f"co{i:06d}.com" for i in range(rows)]
    settings = CrmSettings(rate_limit=HS_LIMIT, search_per_second=0, read_timeout_s=2.0, backoff_base_s=0.5,
                           backoff_max_s=4.0, max_retry_after_s=5.0, bulk_threshold=10**9)  # fmt: skip
    if only != "salesforce":
        fresh_warehouse("hubspot-faults")
        server = HubSpotServer(token="pat-na1-bench", rate_limit=None)
        hubspot_custom_properties(server)
        with server:
            for i in range(existing):
                server.add("companies", {"name": f"Company {i:06d}", "domain": keys[i]})
            cfg = client_cfg("hubspot")
            engine = get_engine()
            setup = crm.adapter_for(cfg, {"host": server.url, "password": server.token},
                                    settings=CrmSettings(rate_limit=None, search_per_second=0))  # fmt: skip
            crm.extract(cfg, engine, "bench-extract", setup, objects=("account",))
            add_net_new(engine, cfg.client_id, keys[existing:])
            seed_scores(engine, cfg.client_id, keys, "T1", 80)
            server.rate_limit = HS_LIMIT
            dice = hubspot_faults(server, rate)
            ad = crm.adapter_for(cfg, {"host": server.url, "password": server.token}, settings=settings)
            writes0 = write_calls(server)
            r = converge(cfg, engine, ad, server, "hs-faults")
            dice.enabled = False
            r.update(check_hubspot(server, engine, cfg.client_id, keys), crm="HubSpot", rows=rows, faults=dice.fired,
                     write_calls=write_calls(server) - writes0, server_429=server.throttled)  # fmt: skip
            steady, _ = lower_bounds(r["requests"])
            r["bound_s"] = steady
            print(f"HubSpot with faults: {r}", flush=True)
            out.append(r)
    if only != "hubspot":
        fresh_warehouse("salesforce-faults")
        server = SalesforceServer(page_size=2000, daily_limit=10_000_000)
        salesforce_custom_fields(server)
        with server:
            ids = [server.add("Account", {"Name": f"Company {i:06d}", "Website": f"https://www.{keys[i]}/"})
                   for i in range(existing)]  # fmt: skip
            cfg = client_cfg("salesforce", push=[{**client_cfg("salesforce").push[0].model_dump(), "mode": "upsert",
                                                  "external_id_field": None}])  # fmt: skip
            engine = get_engine()
            setup = crm.adapter_for(cfg, {"host": server.instance_url, "password": server.token},
                                    settings=CrmSettings(bulk_poll_s=0.05), mounts=server.mounts())  # fmt: skip
            crm.extract(cfg, engine, "bench-sf-extract", setup, objects=("account",))
            add_net_new(engine, cfg.client_id, keys[existing:])
            seed_scores(engine, cfg.client_id, keys, "T1", 80)
            dice = salesforce_faults(server, rate, ids)
            ad = crm.adapter_for(cfg, {"host": server.instance_url, "password": server.token},
                                 settings=dataclasses.replace(settings, bulk_poll_s=0.05, read_timeout_s=SF_TIMEOUT),
                                 mounts=server.mounts())  # fmt: skip
            writes0 = write_calls(server)
            locked = sum(1 for v in server.locked_rows.values() if v)
            r = converge(cfg, engine, ad, server, "sf-faults")
            dice.enabled = False
            r.update(check_salesforce(server, engine, cfg.client_id, keys), crm="Salesforce", rows=rows,
                     faults=dice.fired + locked, write_calls=write_calls(server) - writes0)  # fmt: skip
            print(f"Salesforce with faults: {r}", flush=True)
            out.append(r)
    return out


def fault_table(results: list[dict]) -> str:
    lines = [
        "| CRM | records | faults injected | runs to converge | created / updated (all runs) | API requests | write calls | push time | steady-rate bound | duplicates | lost | wrong |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in results:
        created = sum(x["created"] for x in r["runs"])
        updated = sum(x["updated"] for x in r["runs"])
        bound = f"{r['bound_s']:.0f} s" if "bound_s" in r else "—"
        lines.append(
            f"| {r['crm']} | {r['rows']:,} | {r['faults']:,} | {len(r['runs'])} | {created:,} / {updated:,} | "
            f"{r['requests']:,} | {r['write_calls']:,} | {r['seconds']:.0f} s | {bound} | {r['duplicates']} | "
            f"{r['lost']} | {r['wrong']} |"
        )
    return "\n".join(lines)


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
    ap.add_argument(
        "--faults", action="store_true", help="inject every documented fault; run until converged"
    )
    ap.add_argument("--fault-rate", type=float, default=0.02)
    args = ap.parse_args()
    if args.faults:
        results = bench_faults(args.rows, args.fault_rate, args.only)
        print()
        print(fault_table(results))
        return
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
