"""Resolve the warehouse and other resources inside a running task (never at parse time)."""

from __future__ import annotations

from marketmap.config import ClientConfig


def warehouse_url(cfg: ClientConfig) -> str | None:
    """The warehouse URL from the client's Airflow connection, or None for the default."""
    if not cfg.warehouse_conn_id:
        return None
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(cfg.warehouse_conn_id)
    uri = conn.get_uri()
    # Airflow renders postgres connections as postgres://; SQLAlchemy wants a driver name.
    for prefix in ("postgres://", "postgresql://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix) :]
    return uri


def warehouse(cfg: ClientConfig):
    from marketmap.warehouse import get_engine

    return get_engine(warehouse_url(cfg))
