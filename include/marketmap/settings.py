"""Where Market Map keeps its files: ``$MARKETMAP_HOME`` (default ``$AIRFLOW_HOME/marketmap``)."""

from __future__ import annotations

import os
from pathlib import Path


def marketmap_home() -> Path:
    home = os.environ.get("MARKETMAP_HOME")
    if home:
        return Path(home)
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(airflow_home) / "marketmap"


def inbox_dir(client_id: str) -> Path:
    """Where a client's CRM export files are dropped."""
    return marketmap_home() / "inbox" / client_id


def run_dir(client_id: str, run_id: str) -> Path:
    """Outputs of one run (summary, rejected rows, previews, reports)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return marketmap_home() / "runs" / client_id / safe
