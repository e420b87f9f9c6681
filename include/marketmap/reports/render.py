"""Report model, HTML rendering (Jinja2) and storage.

A report is a list of sections; each section leads with its charts, then its findings
and tables. :func:`write_report` renders one self-contained HTML file (inline CSS and
SVG, no scripts, no network) and one CSV per table next to it:

``<storage root>/reports/<client>/<run_id>/<report>.html`` and ``<report>__<table>.csv``
(:mod:`marketmap.storage`: ``file://$MARKETMAP_HOME`` by default, an object store in production),
so the api-server serves what any worker wrote.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketmap import csvsafe, storage
from marketmap.reports.charts import FORMATS

TEMPLATES = Path(__file__).parent / "templates"
NO_DATA = "No data yet"


@dataclass
class Table:
    """A table shown in the report (first ``max_rows`` rows) and written in full as CSV.

    ``formats`` maps a column to ``money``, ``pct`` or ``count`` for display; the CSV keeps
    machine-readable values without float noise (see :func:`csv_value`).
    """

    slug: str
    title: str
    frame: pd.DataFrame
    formats: dict[str, str] = field(default_factory=dict)
    max_rows: int = 50
    csv_name: str = ""  # set by write_report

    def header(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def rows(self) -> list[list[str]]:
        out = []
        for rec in self.frame.head(self.max_rows).itertuples(index=False, name=None):
            out.append(
                [_cell(v, self.formats.get(str(c))) for c, v in zip(self.frame.columns, rec, strict=True)]
            )
        return out

    @property
    def hidden(self) -> int:
        return max(len(self.frame) - self.max_rows, 0)


@dataclass
class Finding:
    """One checked statement: ``status`` is pass, fail, warn or info."""

    text: str
    status: str = "info"


@dataclass
class Section:
    title: str
    lead: str = ""
    charts: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    empty: str | None = None  # set when there is no data: shown instead of charts and tables
    anchor: str = ""
    collapsed: bool = False  # long per-entity sections (a rep's accounts): a <details> closed by default


@dataclass
class Report:
    kind: str
    title: str
    client_id: str
    client_name: str
    run_id: str
    subtitle: str = ""
    kpis: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def _cell(v: Any, fmt: str | None) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if fmt in FORMATS and isinstance(v, int | float):
        return FORMATS[fmt](float(v))
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def csv_value(v: Any, fmt: str | None = None) -> Any:
    """A value as people read it, still machine-readable: whole numbers without ``.0``
    (``68911.0`` -> ``68911``), money rounded to cents, shares to 4 decimals, other floats
    to 6 significant decimals; missing values empty."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            return ""
        f = round(f, 2 if fmt == "money" else 4 if fmt == "pct" else 6)
        if fmt == "count" or f.is_integer():
            return int(round(f))
        return f
    return v


def empty_section(title: str, what: str) -> Section:
    """A section for data that is not in the warehouse yet: says so instead of failing."""
    return Section(title=title, empty=f"{NO_DATA}: {what}")


def safe_name(text: str) -> str:
    """A file-system safe version of a run id or report name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def report_dir(client_id: str, run_id: str):
    """Where a run's reports live: ``<storage root>/reports/<client>/<run_id>/``."""
    return storage.reports_root(client_id) / safe_name(run_id)


def report_url(client_id: str, run_id: str, kind: str) -> str:
    """The report's address in the Airflow UI's portfolio app (for run summaries and Slack).

    The base is Airflow's ``[api] base_url`` (``AIRFLOW__API__BASE_URL``), else localhost:8080.
    """
    return file_url(client_id, run_id, f"{safe_name(kind)}.html")


def file_url(client_id: str, run_id: str, filename: str) -> str:
    """The address of any file of a run's report folder (HTML, CSV, JSON) in the portfolio app."""
    base = os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080").rstrip("/")
    return f"{base}/marketmap/clients/{client_id}/reports/{safe_name(run_id)}/{safe_name(filename)}"


def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = FORMATS["money"]
    env.filters["pct"] = FORMATS["pct"]
    env.filters["count"] = FORMATS["count"]
    return env


def render_template(name: str, **context: Any) -> str:
    """Render one of ``reports/templates`` (also used by the portfolio pages)."""
    return _env().get_template(name).render(**context)


def render(report: Report) -> str:
    """The report as one self-contained HTML page."""
    for i, s in enumerate(report.sections):
        s.anchor = s.anchor or f"s{i + 1}"
    return render_template("report.html.j2", report=report)


def write_report(report: Report, directory: Path | None = None):
    """Write ``<kind>.html`` and one ``<kind>__<table>.csv`` per table; return the HTML path.

    Re-running overwrites the same files (a task retry leaves one copy).
    """
    out = storage.path(directory) if directory else report_dir(report.client_id, report.run_id)
    out.mkdir(parents=True, exist_ok=True)
    kind = safe_name(report.kind)
    for s in report.sections:
        for tbl in s.tables:
            tbl.csv_name = f"{kind}__{safe_name(tbl.slug)}.csv"
            with (out / tbl.csv_name).open("w", newline="", encoding="utf-8") as fh:
                w = csvsafe.writer(fh)
                w.writerow(tbl.header())
                for rec in tbl.frame.itertuples(index=False, name=None):
                    w.writerow(
                        [
                            csv_value(v, tbl.formats.get(str(c)))
                            for c, v in zip(tbl.frame.columns, rec, strict=True)
                        ]
                    )
    path = out / f"{kind}.html"
    html = render(report)
    # Readers (the portfolio app) never see a half-written page.
    storage.replace_atomically(path, lambda target: target.write_text(html, encoding="utf-8"))
    return path


def list_reports(client_id: str) -> list[dict]:
    """Every stored report of a client, newest first: ``{"run_id", "kind", "path", "modified"}``."""
    base = storage.reports_root(client_id)
    if not base.is_dir():
        return []
    found = []
    for html in base.glob("*/*.html"):
        found.append(
            {
                "run_id": html.parent.name,
                "kind": html.stem,
                "path": html,
                "modified": dt.datetime.fromtimestamp(html.stat().st_mtime, dt.UTC),
            }
        )
    return sorted(found, key=lambda r: (r["modified"], r["kind"]), reverse=True)
