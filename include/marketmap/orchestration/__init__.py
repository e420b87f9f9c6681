"""The only part of marketmap that imports Airflow: DAG building, task callables, callbacks.

Importing it installs Airflow's connection lookup (metadata database, secrets backends) for
:mod:`marketmap.connections`, so domain code reads credentials without importing Airflow, and
Airflow's ``ObjectStoragePath`` for :mod:`marketmap.storage` when ``MARKETMAP_STORAGE_CONN_ID``
names the Airflow connection holding the object store's credentials.
"""

import os

from marketmap import connections, storage


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


def _storage_path(url: str):
    """Object-store paths bound to the storage connection (``MARKETMAP_STORAGE_CONN_ID``), else None:
    marketmap.storage's own universal-pathlib paths (credentials from the backend's environment)."""
    conn_id = os.environ.get("MARKETMAP_STORAGE_CONN_ID", "").strip()
    if not conn_id:
        return None
    from airflow.sdk import ObjectStoragePath

    made = ObjectStoragePath(url, conn_id=conn_id)
    # Airflow makes one filesystem per connection (the amazon provider's S3FileSystem), with fsspec's
    # listing cache on; other processes write under the root all the time, so it is turned off here
    # as it is for marketmap.storage's own paths (STORAGE_OPTIONS; the provider passes storage
    # options to botocore, not to the filesystem, so they cannot carry it).
    fs = made.__wrapped__.fs  # the filesystem its I/O goes through (the connection's, when Airflow has one)
    if fs.dircache.use_listings_cache:
        fs.dircache.use_listings_cache = False
        fs.dircache.clear()
    return made


storage.register_factory(_storage_path)
