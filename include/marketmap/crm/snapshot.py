"""The CRM snapshot (table ``crm_records``): last known CRM values per CRM record.

Rows come from the extract (the CRM's truth), from look-ups made while planning, and from
successful pushes (what Market Map wrote). The plan diffs against these values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.engine import Connection

from marketmap.config import ClientConfig
from marketmap.crm.base import IN_LIST_SIZE, chunks
from marketmap.crm.mapping import effective_fields, identity_fields
from marketmap.crm.values import domains_of, is_blank, normalise_email, normalise_linkedin
from marketmap.warehouse import among, upsert
from marketmap.warehouse import schema as t


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def tracked_fields(cfg: ClientConfig, obj: str) -> list[str]:
    """CRM fields whose values the diff needs: mapped fields, prevent-override, external id."""
    out: list[str] = []
    for push in cfg.push:
        if push.object != obj:
            continue
        out += [f.crm_field for f in effective_fields(cfg, push)]
        out += [x for x in (push.prevent_override_field, push.external_id_field) if x]
    return list(dict.fromkeys(out))


def read_fields(cfg: ClientConfig, obj: str, id_field: str) -> list[str]:
    """Every CRM field the extract reads for ``obj``: identity, canonical columns, tracked fields."""
    ident = identity_fields(cfg, obj)
    fields = [id_field] + [v for k, v in ident.items() if k != "crm_id"] + tracked_fields(cfg, obj)
    return list(dict.fromkeys(fields))


def parse_ts(value: Any) -> dt.datetime | None:
    if is_blank(value):
        return None
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            return pd.Timestamp(int(value), unit="ms", tz="UTC").to_pydatetime()
        ts = pd.Timestamp(value)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
    except (ValueError, TypeError):
        return None


def snapshot_rows(
    cfg: ClientConfig,
    obj: str,
    records: list[dict[str, Any]],
    *,
    id_field: str,
    run_id: str | None,
    source: str,
) -> list[dict[str, Any]]:
    """``crm_records`` rows for raw CRM records (CRM field -> value)."""
    ident = identity_fields(cfg, obj)
    site = ident.get("website")
    doms = domains_of(r.get(site) for r in records) if obj == "account" and site else [None] * len(records)
    return [
        _row(cfg, obj, rec, ident, dom, id_field=id_field, run_id=run_id, source=source)
        for rec, dom in zip(records, doms, strict=True)
    ]


def _row(
    cfg: ClientConfig,
    obj: str,
    rec: dict[str, Any],
    ident: dict[str, str],
    domain: str | None,
    *,
    id_field: str,
    run_id: str | None,
    source: str,
) -> dict[str, Any]:

    def get(canonical: str) -> Any:
        name = ident.get(canonical)
        return rec.get(name) if name else None

    ext_fields = [p.external_id_field for p in cfg.push if p.object == obj and p.external_id_field]
    if obj == "contact":
        name = " ".join(str(x) for x in (get("first_name"), get("last_name")) if not is_blank(x)) or None
    else:
        name = get("name")
    return {
        "client_id": cfg.client_id,
        "object": obj,
        "crm_id": str(rec[id_field]),
        "name": name,
        "domain": domain,
        "email": normalise_email(get("email")) if obj == "contact" else None,
        "linkedin": normalise_linkedin(get("linkedin_url")) if obj == "contact" else None,
        "account_crm_id": None if is_blank(get("account_crm_id")) else str(get("account_crm_id")),
        "external_id": next((str(rec[f]) for f in ext_fields if not is_blank(rec.get(f))), None),
        "field_values": {f: _json(rec.get(f)) for f in tracked_fields(cfg, obj) if f in rec},
        "crm_last_modified": parse_ts(get("crm_last_modified")),
        "source": source,
        "seen_run": run_id,
        "updated_at": now(),
    }


def _json(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def save(conn: Connection, rows: Iterable[dict]) -> int:
    """Upsert snapshot rows: one cached statement per shape of row, ``COPY`` through a staging
    table on PostgreSQL for a large batch (:func:`marketmap.warehouse.upsert`)."""
    shapes: dict[frozenset, list[dict]] = {}
    for r in rows:
        shapes.setdefault(frozenset(r), []).append(r)
    return sum(upsert(conn, t.crm_records, group) for group in shapes.values())


# What a push changes of a snapshot row it already has: the values it wrote, and that it wrote them.
WRITTEN_COLUMNS = ("field_values", "source", "updated_at")


def record_written(conn: Connection, rows: Iterable[dict]) -> int:
    """After a push: each record's written values into the snapshot, merged in SQL into a stored
    row's ``field_values`` (its identity, CRM timestamp and last extract stay as they are); a
    record the snapshot lacks gets the whole row. Nothing is read back first."""
    shapes: dict[frozenset, list[dict]] = {}
    for r in rows:
        shapes.setdefault(frozenset(r), []).append(r)
    return sum(
        upsert(conn, t.crm_records, group, update_only=WRITTEN_COLUMNS, merge_json=("field_values",))
        for group in shapes.values()
    )


# What the push planner reads of a snapshot row (crm.plan): the identity columns and the values.
PLAN_COLUMNS = (
    "crm_id",
    "name",
    "domain",
    "email",
    "linkedin",
    "account_crm_id",
    "external_id",
    "field_values",
)


def load(
    engine: Engine, client_id: str, obj: str, columns: tuple[str, ...], *, where: str, values: Iterable[str]
) -> dict[str, dict]:
    """crm_id -> ``columns`` of the snapshot rows of one object whose column ``where`` holds one
    of ``values`` (``crm_id``, ``domain``, ``email`` …: what the push planner looks up for one
    chunk of records). Never the whole snapshot: at 1M records that was 4 GB."""
    c = t.crm_records.c
    cols = [c[name] for name in dict.fromkeys(("crm_id", *columns))]
    query = select(*cols).where(c.client_id == client_id, c.object == obj)
    out: dict[str, dict] = {}
    with engine.connect() as conn:
        for part in chunks(sorted({v for v in values if v}), IN_LIST_SIZE):
            rows = conn.execute(query.where(among(conn, c[where], part))).mappings().all()
            out.update((r["crm_id"], dict(r)) for r in rows)
    return out


def count(engine: Engine, client_id: str, obj: str) -> int:
    """How many CRM records of ``obj`` the snapshot knows."""
    c = t.crm_records.c
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(t.crm_records).where(c.client_id == client_id, c.object == obj)
        ).scalar_one()


def forget_unseen(conn: Connection, client_id: str, obj: str, run_id: str, started: dt.datetime) -> int:
    """After a full extract: drop records the CRM no longer has (deleted or merged there)."""
    c = t.crm_records.c
    res = conn.execute(
        delete(t.crm_records).where(
            c.client_id == client_id,
            c.object == obj,
            (c.seen_run != run_id) | c.seen_run.is_(None),
            c.updated_at < started,
        )
    )
    return res.rowcount or 0
