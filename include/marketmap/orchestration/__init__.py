"""The only part of marketmap that imports Airflow: DAG building, task callables, callbacks.

Importing it installs Airflow's connection lookup (metadata database, secrets backends) for
:mod:`marketmap.connections`, so domain code reads credentials without importing Airflow.
"""

from marketmap import connections


def _airflow_connection(conn_id: str) -> connections.Connection:
    from airflow.sdk import BaseHook

    c = BaseHook.get_connection(conn_id)
    return connections.Connection(
        conn_id=conn_id,
        conn_type=c.conn_type,
        host=c.host,
        login=c.login,
        password=c.password,
        schema=c.schema,
        port=c.port,
        extra=c.extra_dejson or {},
    )


connections.register(_airflow_connection)
