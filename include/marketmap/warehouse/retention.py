"""Retention: the monthly prune of history that only grows.

``prune`` deletes, for one client:

* ``push_log`` rows older than ``retention.push_log_days``, except those of a record whose last
  push failed (the parking rule reads its recent attempts);
* superseded score versions: ``account_scores`` / ``contact_scores`` rows whose ``rubric_version``
  is not among the newest ``retention.score_versions_kept`` versions (by latest ``scored_at``)
  and is not the version the current config computes;
* ``enrichment_cache`` entries fetched more than ``retention.cache_days`` (default
  ``enrichment.refresh_days``) ago: a refresh would refetch them anyway;
* ``alert_events`` older than ``retention.alert_events_days``;
* staged frames of runs that ended more than a day ago without loading them (a failed build's
  staged rows; a successful load deletes its own).

Returns the number of rows deleted per table.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.engine import Engine

from marketmap.config import ClientConfig
from marketmap.versions import persona_version, rubric_version
from marketmap.warehouse import schema as t


def _kept_versions(conn, table, client_id: str, n: int, current: str) -> set[str]:
    c = table.c
    newest = conn.execute(
        select(c.rubric_version)
        .where(c.client_id == client_id)
        .group_by(c.rubric_version)
        .order_by(func.max(c.scored_at).desc().nulls_last(), c.rubric_version.desc())
        .limit(n)
    ).scalars()
    return {*newest, current}


def prune(engine: Engine, cfg: ClientConfig, now: dt.datetime) -> dict[str, int]:
    if now.tzinfo is None:
        raise ValueError("prune needs an aware datetime")
    now = dt.datetime.fromtimestamp(now.timestamp(), dt.UTC)  # a plain UTC datetime (pendulum in)
    r, cid = cfg.retention, cfg.client_id
    cache_days = r.cache_days or cfg.enrichment.refresh_days
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        pl, cs = t.push_log.c, t.crm_sync.c
        still_failing = exists().where(
            and_(
                cs.client_id == pl.client_id,
                cs.object == pl.object,
                cs.record_key == pl.record_key,
                cs.failed.is_(True),
            )
        )
        counts["push_log"] = conn.execute(
            delete(t.push_log).where(
                pl.client_id == cid, pl.at < now - dt.timedelta(days=r.push_log_days), ~still_failing
            )
        ).rowcount
        for table, current in (
            (t.account_scores, rubric_version(cfg)),
            (t.contact_scores, persona_version(cfg)),
        ):
            keep = _kept_versions(conn, table, cid, r.score_versions_kept, current)
            c = table.c
            counts[table.name] = conn.execute(
                delete(table).where(c.client_id == cid, c.rubric_version.not_in(sorted(keep)))
            ).rowcount
        ec = t.enrichment_cache.c
        counts["enrichment_cache"] = conn.execute(
            delete(t.enrichment_cache).where(
                ec.client_id == cid, ec.fetched_at < now - dt.timedelta(days=cache_days)
            )
        ).rowcount
        sf, runs = t.staged_frames.c, t.runs.c
        ended = select(runs.run_id).where(
            runs.client_id == cid, runs.status != "running", runs.finished_at < now - dt.timedelta(days=1)
        )
        counts["staged_frames"] = conn.execute(
            delete(t.staged_frames).where(sf.client_id == cid, sf.run_id.in_(ended))
        ).rowcount
        ae = t.alert_events.c
        counts["alert_events"] = conn.execute(
            delete(t.alert_events).where(
                ae.client_id == cid, ae.at < now - dt.timedelta(days=r.alert_events_days)
            )
        ).rowcount
    return counts
