"""Resolve the warehouse and other resources inside a running task (never at parse time)."""

from __future__ import annotations

import datetime as dt

from marketmap.config import ClientConfig


def warehouse_url(cfg: ClientConfig) -> str | None:
    from marketmap.warehouse import client_url

    return client_url(cfg)


def warehouse(cfg: ClientConfig):
    from marketmap.warehouse import client_engine

    return client_engine(cfg)


def _plain(value) -> dt.datetime:
    """A stdlib UTC datetime from whatever Airflow passed (pendulum DateTime, datetime)."""
    return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC)


def run_clock(ctx) -> tuple[dt.datetime, dt.datetime]:
    """``(start, end)`` of the run's data interval as stdlib UTC datetimes.

    Every run has a clock, however it was started: a scheduled run has its data interval; a
    run triggered through the REST API or the UI without a logical date (Airflow 3's
    default) has neither ``logical_date`` nor a data interval, so its clock is the time it
    was queued to run (``dag_run.run_after``), fixed for the life of the run, so a retry
    computes the same as the first try.
    """
    end = ctx.get("data_interval_end") or ctx.get("logical_date")
    if end is None:
        end = getattr(ctx.get("dag_run"), "run_after", None) or dt.datetime.now(dt.UTC)
    start = ctx.get("data_interval_start") or end
    return _plain(start), _plain(end)


def run_date(ctx, cfg: ClientConfig) -> dt.date:
    """The day the run stands for, in the client's timezone (never now(): re-runs must agree)."""
    return run_clock(ctx)[1].astimezone(cfg.tz).date()


def load_effective(client_id: str) -> ClientConfig:
    """The client's config as every task must see it: the YAML with the last applied valuation
    calibration on top (a stored overlay; see ``analysis.valuation_drift.effective_config``).

    Scores are stored under a version hash of the rubric and valuation, so build, maintenance,
    push, reports and the portfolio must all read through this one loader to agree.
    """
    from marketmap.analysis.valuation_drift import effective_config
    from marketmap.config import load_client

    cfg = load_client(client_id)
    return effective_config(cfg, warehouse(cfg))
