"""Faults on the wire, through the real hubspot-api-client against the local HubSpot:
429 with Retry-After, the rolling rate limit, 5xx, timeouts, malformed responses, partial
and rejected batches, canary and error-rate halts — and creates never duplicated."""

from __future__ import annotations

import dataclasses
import time

import pytest
from servers.world import FAST, HS_TOKEN, client_cfg, engine, seed_accounts
from sqlalchemy import func, select

from marketmap import crm
from marketmap.crm.execute import _canary_order
from marketmap.crm.plan import plan_push
from marketmap.warehouse import schema as t

TOKEN = HS_TOKEN
N = 120  # accounts already in HubSpot


def setup(hs, n: int = N, new: int = 0, settings=FAST):
    """n scored accounts that exist in HubSpot (tier blank there) and ``new`` net-new ones."""
    cfg = client_cfg("hubspot")
    eng = engine()
    rows, ids = [], {}
    for i in range(n):
        d = f"co{i:04d}.com"
        ids[d] = hs.add("companies", {"name": f"Company {i:04d}", "domain": d})
        rows.append(
            {
                "key": d,
                "crm_id": ids[d],
                "name": f"Company {i:04d}",
                "domain": d,
                "tier": "T1",
                "score": 70 + i % 30,
            }
        )
    for i in range(new):
        d = f"new{i:04d}.io"
        rows.append({"key": d, "name": f"Newbie {i:04d}", "domain": d, "tier": "T2", "score": 55})
    seed_accounts(eng, rows)
    ad = crm.adapter_for(cfg, {"host": hs.url, "password": TOKEN}, settings=settings)
    return cfg, eng, ad, ids


def tiers(hs) -> dict[str, str]:
    return {
        r["properties"]["domain"]: r["properties"].get("hs_ideal_customer_profile")
        for r in hs.objects["companies"].values()
    }


def test_429_retry_after_is_honoured(hs, mm_home):
    cfg, eng, ad, ids = setup(hs)
    hs.inject("status", method="POST", path="batch/update", status=429, headers={"Retry-After": "0.3"},
              body={"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING", "category": "RATE_LIMITS"})  # fmt: skip
    start = time.monotonic()
    result = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert result.status == "success" and result.updated == N
    assert result.calls["throttled_429"] == 1 and result.calls["retries"] >= 1
    assert time.monotonic() - start >= 0.3  # waited as told, not the tiny test backoff
    assert set(tiers(hs).values()) == {"tier_1"}


def test_server_rate_limit_with_and_without_client_throttle(hs, mm_home):
    hs.rate_limit = (4, 0.5)
    cfg, eng, ad, ids = setup(hs, n=500, settings=dataclasses.replace(FAST, max_attempts=8))
    r = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]), canary=False)
    assert r.status == "success" and r.updated == 500
    assert hs.throttled > 0 and ad.stats.throttled == hs.throttled  # every 429 seen and waited out
    # with a client-side rolling window inside the portal's limit: no 429 at all (one request of
    # margin, so scheduling jitter on a loaded machine cannot push a call over the server's window)
    with hs.lock:
        hs._window.clear()  # a fresh portal window, without waiting for it to drain
    hs.throttled = 0
    for rec in hs.objects["companies"].values():
        rec["properties"]["hs_ideal_customer_profile"] = None
    ad2 = crm.adapter_for(
        cfg, {"host": hs.url, "password": TOKEN}, settings=dataclasses.replace(FAST, rate_limit=(3, 0.5))
    )
    plan = plan_push(
        cfg, eng, "r2", ad2, cfg.push[0], refresh=True
    )  # re-read: HubSpot changed behind our back
    r2 = crm.execute_push(cfg, eng, "r2", ad2, plan, canary=False)
    assert r2.status == "success" and r2.updated == 500 and hs.throttled == 0


def test_5xx_and_timeouts_are_retried_for_updates(hs, mm_home):
    # four faults in a row hit the same call: allow enough attempts to outlast them
    cfg, eng, ad, ids = setup(hs, settings=dataclasses.replace(FAST, max_attempts=6))
    hs.inject("status", method="POST", path="batch/update", status=502, times=2)
    hs.inject("timeout", method="POST", path="batch/update", delay=1.0, after=True)  # applied, answer lost
    hs.inject("disconnect", method="POST", path="batch/update")
    result = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert result.status == "success" and result.updated == N
    assert result.calls["retries"] >= 3
    assert set(tiers(hs).values()) == {"tier_1"}


def test_malformed_responses(hs, mm_home):
    cfg, eng, ad, ids = setup(hs)
    # truncated JSON, then a body missing fields the API documents as required
    hs.inject("malformed", method="POST", path="batch/update")
    hs.inject(
        "malformed",
        method="POST",
        path="batch/update",
        body=lambda b: {k: v for k, v in b.items() if k != "completedAt"},
    )
    result = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert result.status == "success" and result.updated == N and result.calls["retries"] >= 2


@pytest.mark.parametrize("fault", ["timeout", "malformed", "status"])
def test_ambiguous_create_is_verified_not_duplicated(hs, mm_home, fault):
    """The CRM created the records but the answer was lost: look them up, never re-create."""
    cfg, eng, ad, ids = setup(hs, n=0, new=30)
    hs.inject(fault, method="POST", path="batch/create", after=True, status=503, delay=1.0)
    result = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert result.status == "success" and result.created == 30, result.first_errors
    domains = [r["properties"]["domain"] for r in hs.objects["companies"].values()]
    assert len(domains) == 30 and len(set(domains)) == 30
    with eng.connect() as conn:
        ids_ = [
            r[0] for r in conn.execute(select(t.push_log.c.crm_id).where(t.push_log.c.status == "success"))
        ]
    assert len(ids_) == 30 and set(ids_) == set(hs.objects["companies"])


def test_create_not_applied_is_resent(hs, mm_home):
    cfg, eng, ad, ids = setup(hs, n=0, new=30)
    hs.inject("status", method="POST", path="batch/create", status=500)  # failed before creating anything
    result = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert result.created == 30 and len(hs.objects["companies"]) == 30


def test_rejected_batch_is_split_to_isolate_bad_records(hs, mm_home):
    cfg, eng, ad, ids = setup(hs)
    bad = {ids["co0007.com"], ids["co0042.com"], ids["co0099.com"]}
    hs.inject("status", method="POST", path="batch/update", status=400, times=None,
              when=lambda r: any(i["id"] in bad for i in r.body["inputs"]),
              body={"status": "error", "category": "VALIDATION_ERROR", "correlationId": "c",
                    "message": "Property values were not valid: [{\"error\":\"INVALID_OPTION\"}]"})  # fmt: skip
    plan = plan_push(cfg, eng, "r1", ad, cfg.push[0])
    # and someone deleted a record between plan and push: a 207 partial result for it
    del hs.objects["companies"][ids["co0050.com"]]
    result = crm.execute_push(cfg, eng, "r1", ad, plan, canary=False)
    assert result.failed == 4 and result.updated == N - 4
    assert result.status == "completed_with_errors"  # 3.3% < 5%: not halted
    with eng.connect() as conn:
        rows = conn.execute(
            select(t.push_log.c.record_key, t.push_log.c.error).where(t.push_log.c.status == "failed")
        ).all()
    errors = dict(rows)
    assert set(errors) == {"co0007.com", "co0042.com", "co0099.com", "co0050.com"}
    assert "VALIDATION_ERROR" in errors["co0007.com"] and "OBJECT_NOT_FOUND" in errors["co0050.com"]
    assert sum(1 for v in tiers(hs).values() if v == "tier_1") == N - 4


def test_canary_failure_stops_the_push(hs, mm_home):
    cfg, eng, ad, ids = setup(hs)
    sizes = []

    def record(req):
        sizes.append(len(req.body["inputs"]))
        return True

    hs.inject("status", method="POST", path="batch/update", status=400, times=None, when=record,
              body={"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid", "correlationId": "c"})  # fmt: skip
    result = crm.execute_push(cfg, eng, "r1", ad, plan_push(cfg, eng, "r1", ad, cfg.push[0]))
    assert result.status == "halted" and "canary failed" in result.halted_reason
    assert result.canary == {"size": 15, "failed": 15, "succeeded": 0}
    assert max(sizes) == 15  # the full push never started
    assert result.not_attempted == N - 15
    with eng.connect() as conn:
        statuses = dict(
            conn.execute(select(t.push_log.c.status, func.count()).group_by(t.push_log.c.status)).all()
        )
    assert statuses == {"failed": 15, "not_attempted": N - 15}
    with pytest.raises(crm.PushHalted):
        result.raise_if_halted()


def test_error_rate_above_threshold_halts(hs, mm_home):
    cfg, eng, ad, ids = setup(hs, n=400)
    plan = plan_push(cfg, eng, "r1", ad, cfg.push[0])
    canary = {i.key for i in sorted(plan.writes, key=lambda i: _canary_order(i.key))[:15]}
    # 10% of the records outside the canary are rejected by HubSpot
    bad = {ids[k] for k in sorted(ids)[::10] if k not in canary}
    hs.inject("status", method="POST", path="batch/update", status=400, times=None,
              when=lambda r: any(i["id"] in bad for i in r.body["inputs"]),
              body={"status": "error", "category": "VALIDATION_ERROR", "message": "bad", "correlationId": "c"})  # fmt: skip
    result = crm.execute_push(cfg, eng, "r1", ad, plan)
    assert result.canary["failed"] == 0
    assert result.status == "halted" and "error rate" in result.halted_reason
    assert result.not_attempted > 0 and result.attempted + result.not_attempted == 400
    assert result.error_rate > 0.05
