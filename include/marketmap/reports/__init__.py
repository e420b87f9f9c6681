"""Reports people read: self-contained HTML with charts, plus a CSV of every table.

Stored under ``$MARKETMAP_HOME/reports/<client>/<run_id>/<report>.html``. Kinds:
``validation`` (after each load), ``executive``, ``distribution``, ``cockpit`` (rep
cockpit), ``maintenance`` (back-test, drift, valuation and territory views) and
``segments`` (what wins, by segment).
Heavy imports (pandas, matplotlib) happen only when a report is generated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("validation", "executive", "distribution", "cockpit", "maintenance", "segments")


def generate(kind: str, cfg: Any, engine: Any, run_id: str, **kwargs: Any) -> Path:
    """Build the report ``kind`` from the warehouse and write it; return the HTML path."""
    import importlib

    from marketmap.reports.render import write_report

    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r} (known: {', '.join(KINDS)})")
    from marketmap import units

    module = importlib.import_module(f"marketmap.reports.{kind}")
    with units.use_currency(units.client_currency(cfg)):
        return write_report(module.build(cfg, engine, run_id, **kwargs))
