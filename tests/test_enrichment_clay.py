"""Clay end to end: rows go to a Clay table's webhook (local fake), Clay's HTTP API column
calls Market Map's callback app (served by uvicorn on a local port), the wait sees which
rows are back, the timeout reports the rest, and the next waterfall pass applies Clay's
answers for free and moves the missing rows on to the next provider."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from enrichment_support import (
    NOW,
    RUN_DATE,
    account,
    apollo_cfg,
    conn_getter,
    ledger_rows,
    make_cfg,
    seed,
    sources,
)
from servers.apollo import ApolloServer
from servers.clay import ClayServer

from marketmap.enrichment import (
    clay_rows_status,
    close_clay_batch,
    plan_account_enrichment,
    providers_for,
    run_account_enrichment,
)
from marketmap.enrichment.clay_callback import create_app
from marketmap.enrichment.providers import Credentials
from marketmap.warehouse import get_engine

SECRET = "callback-s3cret"


class Served:
    """A FastAPI app on 127.0.0.1:<random port> in a thread."""

    def __init__(self, app):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


def _clay_cfg(**options):
    return {
        "name": "clay",
        "kind": "clay",
        "conn_id": "clay",
        "cost_per_call": 3,
        "fields": ["industry", "employees", "tech_stack"],
        "rate_limit_per_minute": 60000,
        "options": {"retry_backoff": 0.01, "columns": {"employees": "Headcount"}, **options},
    }


@pytest.fixture()
def engine(mm_home):
    eng = get_engine()
    seed(eng)
    return eng


def test_clay_rows_round_trip_wait_timeout_and_resume(engine):
    app = create_app(engine_getter=lambda cid: engine, secret_getter=lambda cid: SECRET)
    with ClayServer() as clay, ApolloServer() as apollo, Served(app) as callback:
        clay.enriched = {
            "good.com": {"industry": "Software", "Headcount": "1,500", "tech_stack": "Salesforce;Gong"},
            "mid.co.uk": {"industry": None, "Headcount": None},  # Clay found nothing
        }
        clay.never_return = {"north.ca"}
        apollo.add_org("north.ca", tech=["HubSpot"])
        cfg = make_cfg([_clay_cfg(), apollo_cfg(fields=["tech_stack"], bulk=False)])
        getter = conn_getter(
            clay=Credentials(host=clay.webhook_url, password=clay.token),
            apollo=Credentials(host=apollo.url, password=apollo.api_key),
        )

        plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
        first = run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg, getter), now=NOW)
        assert len(clay.rows) == 3 and all(r["marketmap_client_id"] == "demo" for r in clay.rows)
        assert {r["domain"] for r in clay.rows} == {"good.com", "mid.co.uk", "north.ca"}
        assert clay.requests[0].headers["x-clay-webhook-auth"] == clay.token
        assert apollo.requests == []  # waiting accounts do not go down the waterfall yet
        [(batch, n)] = first.clay_batches.items()
        assert n == 3
        assert first.summary()["stopped_early"] == {"waiting for clay": 3}
        assert {r["outcome"] for r in ledger_rows(engine)} == {"reserved"}  # held until the callback

        done, missing = clay_rows_status(engine, "demo", batch)
        assert not done and missing == ["good.com", "mid.co.uk", "north.ca"]

        # a retried task sends nothing twice
        run_account_enrichment(
            cfg,
            engine,
            "run-1",
            plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW),
            providers_for(cfg, getter),
            now=NOW,
        )
        assert len(clay.rows) == 3

        # Clay's HTTP API column calls back
        assert clay.deliver(f"{callback.url}/clay/demo/rows", SECRET) == [200, 200]
        done, missing = clay_rows_status(engine, "demo", batch)
        assert not done and missing == ["north.ca"]

        # the sensor times out: report and settle the missing row
        closed = close_clay_batch(engine, "demo", batch, now=NOW)
        assert closed["missing"] == ["north.ca"] and closed["received"] == 2
        assert clay_rows_status(engine, "demo", batch) == (True, [])
        outcomes = {r["account_key"]: (r["outcome"], r["credits"]) for r in ledger_rows(engine)}
        assert outcomes == {
            "good.com": ("hit", 3.0),
            "mid.co.uk": ("miss", 3.0),
            "north.ca": ("no_response", 3.0),
        }

        # the next pass applies Clay's answers from the cache and sends north.ca on to Apollo
        plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
        resumed = run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg, getter), now=NOW)
        assert len(clay.rows) == 3
        good = account(engine, "good.com")
        assert (good["industry"], good["employees"], good["tech_stack"]) == (
            "Software",
            1500,
            "Salesforce;Gong",
        )
        assert account(engine, "north.ca")["tech_stack"] == "HubSpot"
        assert sources(engine)[("good.com", "employees")] == "clay"
        assert sources(engine)[("north.ca", "tech_stack")] == "apollo"
        # Apollo's lookups only (north.ca, and mid.co.uk that Clay could not fill): Clay's
        # answers were paid already and came from the cache
        assert resumed.credits_spent == 2
        assert sorted(r.query["domain"][0] for r in apollo.requests) == ["mid.co.uk", "north.ca"]


def test_callback_authentication_and_bad_rows(engine):
    secrets = {"demo": SECRET}
    row = {
        "marketmap_client_id": "demo",
        "marketmap_batch_id": "b1",
        "marketmap_row_id": "r1",
        "industry": "Software",
    }
    app = create_app(engine_getter=lambda cid: engine, secret_getter=secrets.get)
    with Served(app) as served, httpx.Client(base_url=served.url, trust_env=False) as client:
        assert client.post("/clay/demo/rows", json=row).status_code == 401
        assert (
            client.post("/clay/demo/rows", json=row, headers={"X-Marketmap-Secret": "wrong"}).status_code
            == 401
        )
        # a client without a configured secret refuses everything (fail closed)
        assert (
            client.post("/clay/other/rows", json=row, headers={"X-Marketmap-Secret": SECRET}).status_code
            == 503
        )
        assert (
            client.post("/clay/Bad-Id/rows", json=row, headers={"X-Marketmap-Secret": SECRET}).status_code
            == 404
        )
        ok = client.post(
            "/clay/demo/rows",
            json={"rows": [row, {"no": "ids"}]},
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert ok.status_code == 200 and ok.json() == {"received": 0, "unknown": 2, "duplicates": 0}
        too_many = client.post("/clay/demo/rows", json=[row] * 1001, headers={"X-Marketmap-Secret": SECRET})
        assert too_many.status_code == 413


def test_repeated_callback_changes_nothing_twice(engine):
    from marketmap.enrichment.clay_callback import store_clay_rows

    with ClayServer(token=None) as clay:
        cfg = make_cfg([_clay_cfg()])
        getter = conn_getter(clay=Credentials(host=clay.webhook_url))
        plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
        result = run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg, getter), now=NOW)
        [batch] = result.clay_batches
        back = [r | {"industry": "Software"} for r in clay.rows]
    assert store_clay_rows(engine, "demo", back)["received"] == 3
    twice = store_clay_rows(engine, "demo", back)
    assert twice == {"received": 3, "unknown": 0, "duplicates": 3}
    assert sum(r["credits"] for r in ledger_rows(engine)) == 9
    assert clay_rows_status(engine, "demo", batch) == (True, [])


def test_wait_for_clay_defers_to_a_trigger_that_fires_when_the_rows_are_back(engine):
    """The build's wait is deferrable: it checks once, hands a serialisable trigger to the
    triggerer, and the trigger (polling clay_rows) fires only when every row is back."""
    import asyncio

    from airflow.sdk.exceptions import TaskDeferred

    from marketmap.orchestration.clay_wait import ClayRowsTrigger, ClayWaitOperator
    from marketmap.orchestration.factory import build_client_dags

    app = create_app(engine_getter=lambda cid: engine, secret_getter=lambda cid: SECRET)
    with ClayServer() as clay, Served(app) as callback:
        cfg = make_cfg([_clay_cfg()])
        getter = conn_getter(clay=Credentials(host=clay.webhook_url, password=clay.token))
        plan = plan_account_enrichment(cfg, engine, RUN_DATE, now=NOW)
        sent = run_account_enrichment(cfg, engine, "run-1", plan, providers_for(cfg, getter), now=NOW)
        enriched = {"clay_batches": sent.clay_batches}
        assert sum(sent.clay_batches.values()) == 3

        op = ClayWaitOperator(task_id="wait_for_clay", client_id="demo", enriched=enriched, poll_interval=0.05)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute({})
        trigger = deferred.value.trigger
        assert deferred.value.method_name == "execute_complete"
        classpath, kwargs = trigger.serialize()
        assert classpath == "marketmap.orchestration.clay_wait.ClayRowsTrigger"
        assert kwargs == {"client_id": "demo", "batches": sorted(sent.clay_batches), "poll_interval": 0.05}
        trigger = ClayRowsTrigger(**kwargs)  # as the triggerer rebuilds it

        async def wait_then_deliver():
            events = trigger.run()
            first = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.3)
            assert not first.done()  # rows still out: the trigger keeps polling
            assert await asyncio.to_thread(clay.deliver, f"{callback.url}/clay/demo/rows", SECRET) == [200] * 3
            return await asyncio.wait_for(first, 30)

        event = asyncio.run(wait_then_deliver())
        assert event.payload == {"client_id": "demo", "batches": sorted(sent.clay_batches), "missing": {}}
        assert op.execute_complete({}, event.payload)["missing"] == {}
        assert op.execute({})["missing"] == {}  # a retry after the rows came back does not defer

    build = build_client_dags(cfg, only="demo__build")["demo__build"]
    wait = build.get_task("wait_for_clay")
    assert isinstance(wait, ClayWaitOperator)
    assert wait.upstream_task_ids == {"enrich_accounts"} and wait.downstream_task_ids == {"close_clay"}
