"""Airflow pools: rate limits for paid providers and CRMs, a queue for the SQLite warehouse (parse-time safe).

A rate-limit pool stands for one API account, so it is keyed by the Airflow connection that holds the
account's credentials: ``mm_conn_<conn_id>``. Two clients sharing an Apollo account (one
connection) take turns in one pool; two clients with their own accounts never wait for each
other. A provider without a connection gets a pool of its own per client
(``mm_<client>_<provider>``); ``pool:`` in the config overrides either. One slot by default
(``options.pool_slots``): tasks that call the same account take turns, and the in-process rate
limiter is the whole rate limit. Free local providers (export files, simulations) and CSV "CRMs"
need no pool. ``marketmap pools --apply`` creates or updates them in Airflow.
"""

from __future__ import annotations

import os

from marketmap.config import ClientConfig

FREE_KINDS = ("export_file", "simulated")


def conn_pool(conn_id: str) -> str:
    """The pool of the API account behind an Airflow connection."""
    return f"mm_conn_{conn_id}"


def provider_pool(cfg: ClientConfig, provider) -> str | None:
    """The pool a provider's calls run in (None for free local providers)."""
    if provider.kind in FREE_KINDS:
        return None
    if provider.pool:
        return provider.pool
    if provider.conn_id:
        return conn_pool(provider.conn_id)
    return f"mm_{cfg.client_id}_{provider.name}"


def pools_for(cfg: ClientConfig) -> dict[str, int]:
    """Airflow pool name -> slots, one per paid provider account of the client."""
    pools: dict[str, int] = {}
    for p in cfg.enrichment.providers:
        name = provider_pool(cfg, p)
        if name:
            pools[name] = int(p.options.get("pool_slots", 1))
    return pools


def task_pool(cfg: ClientConfig) -> str | None:
    """The pool the enrichment tasks run in: the first paid provider's (None: no pool).

    An Airflow task holds one pool; the waterfall calls providers one after another, so
    the first paid provider's pool (the one called most) gates the task.
    """
    pools = list(pools_for(cfg))
    return pools[0] if pools else None


def crm_pool(cfg: ClientConfig) -> str | None:
    """The pool of the client's CRM API account: ``crm.pool``, else its connection's
    (``mm_conn_<crm.conn_id>``); none for a CSV "CRM" unless set."""
    if cfg.crm.pool:
        return cfg.crm.pool
    if cfg.crm.kind == "csv":
        return None
    return conn_pool(cfg.crm.conn_id) if cfg.crm.conn_id else f"mm_{cfg.client_id}_crm"


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
    """Every pool the clients' DAGs use, with its slots (a pool shared by clients that ask for
    different slot counts gets the smallest: the account's rate limit is the tightest one)."""
    pools: dict[str, int] = {}
    for cfg in configs.values():
        if warehouse_pool(cfg):
            pools[SQLITE_WAREHOUSE_POOL] = 1
        wanted = dict(pools_for(cfg))
        if crm_pool(cfg):
            wanted.setdefault(crm_pool(cfg), 1)
        for name, slots in wanted.items():
            pools[name] = min(slots, pools.get(name, slots))
    if heavy_pool_slots() and any(heavy_pool(cfg) for cfg in configs.values()):
        pools[HEAVY_POOL] = heavy_pool_slots()
    return pools


# The heavy pool (issue 15): tasks that hold a client's whole table in memory (ingest, dedupe,
# load, scoring, valuation, contact scoring) take a slot each, so a worker never runs more of
# them at once than its memory holds. Opt-in: set MARKETMAP_HEAVY_POOL_SLOTS (e.g. worker
# memory / 2 GB, the per-task peak bench/bench_build_1m.py measures) on the scheduler, the
# DAG processor and the workers, then `marketmap pools --apply` creates it.
HEAVY_POOL = "marketmap_heavy"


def heavy_pool_slots() -> int | None:
    """Slots of :data:`HEAVY_POOL` from ``MARKETMAP_HEAVY_POOL_SLOTS`` (None: no heavy pool)."""
    import os

    raw = os.environ.get("MARKETMAP_HEAVY_POOL_SLOTS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"MARKETMAP_HEAVY_POOL_SLOTS must be a whole number ≥ 1 (worker memory / 2 GB), got {raw!r}"
        )
    return int(raw)


def heavy_pool(cfg: ClientConfig) -> str | None:
    """The pool of a client's memory-heavy tasks, or None when no heavy pool is configured.

    A client on the embedded SQLite warehouse keeps its one-writer queue
    (:func:`warehouse_pool`) instead: a task holds one pool.
    """
    return HEAVY_POOL if heavy_pool_slots() and not warehouse_pool(cfg) else None
