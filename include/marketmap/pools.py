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
    return pools
