"""A maintenance run: the client's config (with any applied calibration), its warehouse, the clock."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from marketmap.config import ClientConfig


@dataclass
class Outcome:
    """What a step found: a small summary for the task's result, alert candidates and their rules.

    ``report`` is the file the alerts point at (a file of the run's report folder).
    """

    result: dict[str, Any]
    alerts: list = field(default_factory=list)
    rules: set[str] = field(default_factory=set)
    report: str | None = None


@dataclass
class MaintenanceRun:
    """Every decision uses the run's clock (the end of its data interval), never ``now()``, so a
    re-run of an interval computes, writes and sends nothing new."""

    base_cfg: ClientConfig
    cfg: ClientConfig
    engine: Engine
    pipeline: str
    run_id: str
    dag_id: str
    params: dict
    start: dt.datetime
    now: dt.datetime

    @classmethod
    def open(cls, client_id: str, pipeline: str, run_id: str, dag_id: str, params: dict,
             start: dt.datetime, end: dt.datetime) -> MaintenanceRun:  # fmt: skip
        from marketmap.analysis.valuation_drift import effective_config
        from marketmap.config import load_client
        from marketmap.warehouse import client_engine

        base = load_client(client_id)
        engine = client_engine(base)
        return cls(base, effective_config(base, engine), engine, pipeline, run_id, dag_id, dict(params or {}),
                   start, end)  # fmt: skip

    @property
    def as_of(self) -> dt.date:
        """The run's date in the client's timezone."""
        return self.now.astimezone(self.cfg.tz).date()

    def report_dir(self) -> Path:
        """The run's report folder (created), which the portfolio app serves."""
        from marketmap.reports.render import report_dir

        d = report_dir(self.cfg.client_id, self.run_id)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def url(self, report: str | None) -> str | None:
        """The portfolio address of a file of this run's report folder (a URL stays as it is):
        alerts link to the page, never to a worker's file."""
        from marketmap.reports.render import file_url

        if not report or str(report).startswith(("http://", "https://")):
            return report
        return file_url(self.cfg.client_id, self.run_id, Path(report).name)

    def write_json(self, name: str, data: Any) -> str:
        path = self.report_dir() / name
        path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        return str(path)

    def primary_scores(self):
        """The current scores of the first product's rubric."""
        from marketmap.scoring.pipeline import read_scores, rubric_version

        return read_scores(self.engine, self.cfg.client_id, rubric_version(self.cfg), self.cfg.icp.rubrics[0].product)
