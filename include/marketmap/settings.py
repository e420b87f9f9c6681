"""Where Market Map keeps its files.

``$MARKETMAP_HOME`` (default ``$AIRFLOW_HOME/marketmap``) holds what stays on one machine (CLI
logs, the embedded default's SQLite warehouse). Everything tasks share — inbox, run outputs,
reports, outbox — lives under the storage root (:mod:`marketmap.storage`,
``MARKETMAP_STORAGE_URL``, default ``file://$MARKETMAP_HOME``).
"""

from __future__ import annotations

import os
from pathlib import Path


def marketmap_home() -> Path:
    home = os.environ.get("MARKETMAP_HOME")
    if home:
        return Path(home)
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(airflow_home) / "marketmap"


def inbox_dir(client_id: str):
    """Where a client's CRM export files are dropped (a storage path, see :mod:`marketmap.storage`)."""
    from marketmap import storage

    return storage.inbox_dir(client_id)


def run_dir(client_id: str, run_id: str):
    """Outputs of one run (summary, rejected rows, previews, CRM import files), in storage."""
    from marketmap import storage

    return storage.run_dir(client_id, run_id)


# Airflow's own metadata database in the embedded default is SQLite, shared by the api-server,
# scheduler, dag-processor, triggerer and the tasks. sqlite3 gives up after 5 s on a lock, which
# under overlapping runs kills the scheduler ("database is locked"); wait up to a minute instead.
# Used through AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS (Makefile, `marketmap`), SQLite only.
AIRFLOW_SQLITE_CONNECT_ARGS = (
    {"timeout": 60} if os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith("sqlite") else {}
)


def airflow_sqlite_wal(airflow_home: str | os.PathLike) -> bool:
    """Put Airflow's SQLite metadata database in WAL mode (readers never block the writer; the
    mode is stored in the file, so once is enough). False when there is no SQLite database."""
    import sqlite3

    path = Path(airflow_home) / "airflow.db"
    if not path.exists():
        return False
    with sqlite3.connect(path, timeout=60) as conn:
        return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal"
