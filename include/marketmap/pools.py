"""Airflow pools: rate limits for paid providers and CRMs, a queue for the SQLite warehouse (parse-time safe).

One slot per provider pool: tasks that call the same provider (other DAG runs, other
clients sharing an API account) take turns, and the in-process rate limiter is the whole
rate limit. Free local providers (export files, simulations) and CSV "CRMs" need no pool.
``marketmap pools`` creates or updates them in Airflow.
"""

from __future__ import annotations

import os

from marketmap.config import ClientConfig


def pools_for(cfg: ClientConfig) -> dict[str, int]:
    """Airflow pool name -> slots, one per paid provider (``provider.pool`` or ``enrichment_<provider>``)."""
    pools: dict[str, int] = {}
    for p in cfg.enrichment.providers:
        if p.kind in ("export_file", "simulated"):
            continue
        pools[p.pool or f"enrichment_{p.name}"] = int(p.options.get("pool_slots", 1))
    return pools


def task_pool(cfg: ClientConfig) -> str | None:
    """The pool the enrichment tasks run in: the first paid provider's (None: no pool).

    An Airflow task holds one pool; the waterfall calls providers one after another, so
    the first paid provider's pool (the one called most) gates the task.
    """
    pools = list(pools_for(cfg))
    return pools[0] if pools else None


def crm_pool(cfg: ClientConfig) -> str | None:
    """The pool of the client's CRM API: ``crm.pool``, else ``crm_<client>``; none for CSV unless set."""
    if cfg.crm.pool:
        return cfg.crm.pool
    return None if cfg.crm.kind == "csv" else f"crm_{cfg.client_id}"


SQLITE_WAREHOUSE_POOL = "marketmap_sqlite_warehouse"


def warehouse_pool(cfg: ClientConfig) -> str | None:
    """The pool every task of a client on the embedded SQLite warehouse runs in (one slot).

    SQLite has one writer at a time: two DAGs scoring at once would wait on each other's lock
    and fail after the busy timeout. In one pool they queue instead (tasks that already hold a
    provider or CRM pool keep theirs; their writes are short). PostgreSQL needs no such pool.
    """
    if cfg.warehouse_conn_id:
        return None
    url = os.environ.get("MARKETMAP_WAREHOUSE_URL", "")
    return SQLITE_WAREHOUSE_POOL if not url or url.startswith("sqlite") else None


def all_pools(configs: dict[str, ClientConfig]) -> dict[str, int]:
    """Every pool the clients' DAGs use, with its slots."""
    pools: dict[str, int] = {}
    for cfg in configs.values():
        if warehouse_pool(cfg):
            pools[SQLITE_WAREHOUSE_POOL] = 1
        pools.update(pools_for(cfg))
        if crm_pool(cfg):
            pools[crm_pool(cfg)] = 1
    return pools
