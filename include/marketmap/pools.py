"""Airflow pools that rate-limit calls to paid providers and CRMs (no heavy imports: used at parse time).

One slot per provider pool: tasks that call the same provider (other DAG runs, other
clients sharing an API account) take turns, and the in-process rate limiter is the whole
rate limit. Free local providers (export files, simulations) and CSV "CRMs" need no pool.
``marketmap pools`` creates or updates them in Airflow.
"""

from __future__ import annotations

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


def all_pools(configs: dict[str, ClientConfig]) -> dict[str, int]:
    """Every pool the clients' DAGs use, with its slots."""
    pools: dict[str, int] = {}
    for cfg in configs.values():
        pools.update(pools_for(cfg))
        if crm_pool(cfg):
            pools[crm_pool(cfg)] = 1
    if heavy_pool_slots():
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


def heavy_pool() -> str | None:
    """The pool of memory-heavy tasks, or None when no heavy pool is configured."""
    return HEAVY_POOL if heavy_pool_slots() else None
