"""The ingest steps of a build run: extract → normalise and dedupe → load → summary.

Each step reads what the previous one wrote to the warehouse (staged records of this
run) and replaces its own output for the run, so a retried step changes nothing twice.
The load step writes every table in one transaction: a failed load leaves the
warehouse as it was.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Date, Engine, delete, func, select, update

from marketmap import csvsafe
from marketmap.config import ClientConfig
from marketmap.frames import isin
from marketmap.ingest import reread
from marketmap.ingest.dedupe import dedupe_accounts
from marketmap.ingest.reader import IngestError, ReadOptions, ReadResult, Rejected, read_export
from marketmap.ingest.review import decided
from marketmap.ingest.schema import ACCOUNT_FIELDS, FIELDS, RANGE_COLUMNS, column_map
from marketmap.settings import inbox_dir, run_dir
from marketmap.warehouse import copy_frame, safe_url, staging, upsert
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import analyze_changed, read_columns, read_frame

OBJECTS = ("accounts", "contacts", "opportunities")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def typed(df: pd.DataFrame, obj: str) -> pd.DataFrame:
    """A staged frame of a canonical object with every field present and of its type (a column
    that was blank in every row comes back untyped from Parquet)."""
    for field, kind in FIELDS[obj].items():
        if field not in df:
            df[field] = None
        if kind in ("date", "datetime"):
            df[field] = pd.to_datetime(df[field], utc=True, errors="coerce")
            if kind == "date":
                df[field] = df[field].dt.tz_convert(None)
        elif kind in ("int", "float"):
            df[field] = pd.to_numeric(df[field], errors="coerce")
    for field in RANGE_COLUMNS if obj == "accounts" else ():
        df[field] = pd.to_numeric(df[field], errors="coerce") if field in df else np.nan
    return df


def _py(value):
    """A warehouse-ready Python value (pandas' NaN/NaT become None)."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _column(s: pd.Series) -> list:
    """A column as warehouse-ready Python values, converted column-wise (NaN/NaT/NA → None)."""
    if s.dtype == object:
        return [_py(v) for v in s.tolist()]  # mixed values: one by one
    na = s.isna().to_numpy()
    if s.dtype.kind == "M" or isinstance(s.dtype, pd.DatetimeTZDtype):
        values = list(s.dt.to_pydatetime())
    else:
        values = s.to_numpy(dtype=object, na_value=None).tolist()
    return [None if m else v for v, m in zip(values, na, strict=True)] if na.any() else values


def _rows(df: pd.DataFrame, columns: list[str], **extra) -> list[dict]:
    # column-wise: 4x faster than a _py() call per value over itertuples (bench_build_1m.py)
    values = [_column(df[c]) for c in columns]
    return [{**dict(zip(columns, rec, strict=True)), **extra} for rec in zip(*values, strict=True)]


def _staged(bind, client_id: str, run_id: str, obj: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The run's staged frame ``obj`` (empty when nothing was staged)."""
    frame = staging.read(bind, client_id, run_id, obj, columns)
    if frame is None:
        return pd.DataFrame(columns=columns or [])
    for col in columns or ():
        if col not in frame:
            frame[col] = None
    return frame


def export_paths(cfg: ClientConfig, inbox: Path | None = None) -> dict[str, Path]:
    """The export file of each object, resolved against the client's inbox."""
    base = inbox or inbox_dir(cfg.client_id)
    exp = cfg.crm.export
    files = {"accounts": exp.accounts, "contacts": exp.contacts, "opportunities": exp.opportunities}
    return {obj: (Path(f) if Path(f).is_absolute() else base / f) for obj, f in files.items() if f}


def start_run(
    engine: Engine, client_id: str, run_id: str, pipeline: str, logical_date: dt.datetime | None
) -> None:
    with engine.begin() as conn:
        upsert(
            conn,
            t.runs,
            [
                {
                    "client_id": client_id,
                    "run_id": run_id,
                    "pipeline": pipeline,
                    "logical_date": logical_date,
                    "started_at": _now(),
                    "status": "running",
                }
            ],
        )


def close_failed_run(engine: Engine, client_id: str, run_id: str) -> int:
    """Record a run that failed as failed (``start_run`` wrote 'running'; a failed run never reaches
    the summary that closes it). Returns the rows changed (0 when already closed or never started)."""
    r = t.runs.c
    with engine.begin() as conn:
        return conn.execute(
            t.runs.update()
            .where(r.client_id == client_id, r.run_id == run_id, r.status == "running")
            .values(status="failed", finished_at=_now())
        ).rowcount


def extract_exports(
    cfg: ClientConfig, run_id: str, engine: Engine, inbox: Path | None = None, *, reread_changed: bool = False
) -> dict:
    """Read the client's CRM export files into this run's staged records; record rejected rows.

    Every file is read before anything is staged, so one unreadable file stops the run
    with nothing written. Each account record is staged with its ``record_hash``;
    ``reread_changed`` (the monthly re-read) stages only the account records that changed and
    those deduplication must see with them (``ingest/reread.py``), the others' ids for the
    fuzzy-name review, and the ids that left the export.
    """
    exp = cfg.crm.export
    overrides = {
        "accounts": exp.account_columns,
        "contacts": exp.contact_columns,
        "opportunities": exp.opportunity_columns,
    }
    results: dict[str, ReadResult] = {}
    problems = []
    options = read_options(cfg)
    staged: dict[str, int] = {}
    encoded: dict[str, list] = {}  # Parquet parts: a few % of the frame's memory, so one frame at a time
    reread_summary: dict[str, dict] = {}
    account_ids = None  # a re-read: the account records read again or gone
    for obj, path in export_paths(cfg, inbox).items():
        try:
            custom = cfg.custom_fields.specs(obj, overrides[obj])
            results[obj] = res = read_export(path, obj, exp.format, overrides[obj], exp.encoding, options, custom)
        except IngestError as e:
            problems.append(str(e))
            continue
        if obj == "accounts":
            res.frame["record_hash"] = reread.record_hashes(res.frame, exp.not_company_hosts)
            if reread_changed:
                with engine.connect() as conn:
                    picked = reread.select_records(conn, cfg.client_id, res.frame,
                                                   _same_pairs(decided(engine, cfg.client_id)),
                                                   exp.not_company_hosts)  # fmt: skip
                res.frame, reread_summary[obj] = picked.records, picked.summary
                encoded["accounts_others"] = staging.encode(picked.others)
                encoded["account_records_gone"] = staging.encode(pd.DataFrame({"crm_id": picked.gone}, dtype=object))
                # contacts and deals of these account records are staged again
                account_ids = set(picked.records["crm_id"]) | set(picked.gone)
        elif len(res.frame):
            res.frame["record_hash"] = reread.record_hashes(res.frame)
            if reread_changed and account_ids is not None:
                table, key = (t.contacts, "contact_key") if obj == "contacts" else (t.opportunities, "crm_id")
                with engine.connect() as conn:
                    res.frame, reread_summary[obj] = reread.select_rows(conn, cfg.client_id, table, key, res.frame,
                                                                        account_ids)  # fmt: skip
        encoded[obj] = staging.encode(res.frame)
        res.frame = pd.DataFrame(columns=res.frame.columns)  # the rows live on as Parquet only (a slice would keep them)
        pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed pages otherwise
        staged[obj] = sum(rows for rows, _ in encoded[obj])
    if problems:
        raise IngestError("\n".join(problems))

    with engine.begin() as conn:
        if not reread_changed:  # a whole read: no trace of an earlier attempt's re-read
            for obj in ("accounts_others", "account_records_gone"):
                staging.clear(conn, cfg.client_id, run_id, obj)
        for obj, parts in encoded.items():
            staging.put(conn, cfg.client_id, run_id, obj, parts)
        conn.execute(
            delete(t.rejected_rows).where(
                t.rejected_rows.c.client_id == cfg.client_id, t.rejected_rows.c.run_id == run_id
            )
        )
        rejected = [
            {"client_id": cfg.client_id, "run_id": run_id, **r.__dict__}
            for res in results.values()
            for r in res.rejected
        ]
        if rejected:
            conn.execute(t.rejected_rows.insert(), rejected)
        save_warnings(
            conn, cfg.client_id, run_id, "extract", [w for res in results.values() for w in res.warnings]
        )
    return {
        obj: {
            "file": res.file,
            "rows": res.rows_read,
            "staged": staged[obj],
            "rejected": len(res.rejected),
            "warnings": len(res.warnings),
            **({"blank_rows_skipped": res.blank_rows} if res.blank_rows else {}),
            **({"date_order": res.date_order} if res.date_order else {}),
            **({"reread": reread_summary[obj]} if obj in reread_summary else {}),
        }
        for obj, res in results.items()
    }


def _same_pairs(decisions: dict) -> list[tuple[str, str]]:
    """The (left_key, right_key) of every pair a person decided is one company (``review.decided``)."""
    return [(left, right) for (_, left, right), status in decisions.items() if status == "same"]


def read_options(cfg: ClientConfig) -> ReadOptions:
    exp = cfg.crm.export
    return ReadOptions(
        currency=exp.currency.upper(),
        fx_rates=dict(exp.fx_rates),
        date_order=exp.date_order,
        delimiter=exp.delimiter,
        decimal=exp.decimal,
    )


def save_warnings(conn, client_id: str, run_id: str, step: str, warnings: list) -> None:
    """Replace one step's warnings of the run (a retried step writes them once)."""
    w = t.ingest_warnings
    conn.execute(delete(w).where(w.c.client_id == client_id, w.c.run_id == run_id, w.c.step == step))
    rows = [{"client_id": client_id, "run_id": run_id, "step": step, **x.__dict__} for x in warnings]
    if rows:
        conn.execute(w.insert(), rows)


def normalise_and_dedupe(cfg: ClientConfig, run_id: str, engine: Engine) -> dict:
    """Normalise domains, merge duplicates by domain and queue fuzzy-name pairs for review."""
    decisions = decided(engine, cfg.client_id)  # a person's answers: merge ("same") or keep apart
    merge_pairs = _same_pairs(decisions)
    records = staging.rows(engine, cfg.client_id, run_id, "accounts")
    staged = [_staged_accounts(engine, cfg.client_id, run_id)]
    hashes = staged[0].pop("record_hash").array if "record_hash" in staged[0] else None
    others = _other_accounts(engine, cfg.client_id, run_id)
    # The staged frame is handed over, not kept here: dedupe frees it once the survivors are
    # copied out (at 1M accounts that is ~0.5 GB less at the step's peak).
    result = dedupe_accounts(
        staged.pop(),
        not_company_hosts=cfg.crm.export.not_company_hosts,
        merge_pairs=merge_pairs,
        owned=True,
        others=others,
        record_hashes=hashes,
    )
    del others, hashes
    # a record whose website gave a warning is read again next time (the warning is given again)
    if result.warnings is not None and len(result.warnings):
        result.crm_ids.loc[result.crm_ids["crm_id"].isin(result.warnings["crm_id"]), "record_hash"] = pd.NA
    # A decided pair is never asked again (a kept-apart pair is found again, and dropped here).
    asked = [(k, lk, rk) not in decisions for k, lk, rk in
             zip(result.review["kind"], result.review["left_key"], result.review["right_key"], strict=True)]  # fmt: skip
    result.review = result.review[asked] if len(result.review) else result.review
    absorbed = sorted((result.absorbed or {}).items())
    staged = {
        "accounts_deduped": staging.encode(result.accounts),
        "absorbed_accounts": staging.encode(pd.DataFrame(absorbed, columns=["account_key", "into"])),
        "account_crm_ids": staging.encode(result.crm_ids),
    }
    cid = cfg.client_id
    with engine.begin() as conn:
        for obj, parts in staged.items():
            staging.put(conn, cid, run_id, obj, parts)
        conn.execute(
            delete(t.account_merges).where(
                t.account_merges.c.client_id == cid, t.account_merges.c.run_id == run_id
            )
        )
        if len(result.merges):
            conn.execute(
                t.account_merges.insert(),
                _rows(result.merges, list(result.merges.columns), client_id=cid, run_id=run_id),
            )
        # A pair already in the queue keeps its review status; new pairs open.
        upsert(
            conn,
            t.review_queue,
            _rows(result.review, list(result.review.columns), client_id=cid, run_id=run_id),
        )
        save_warnings(conn, cid, run_id, "dedupe", _domain_warnings(cfg, result.warnings))
    return {
        "records": records,
        "accounts": len(result.accounts),
        "duplicates_merged": int((~result.merges["reason"].str.startswith("review decision")).sum())
        if len(result.merges) else 0,
        "without_domain": int(result.accounts["domain"].isna().sum()),
        "review_pairs": len(result.review),
        "shared_domain_held_for_review": int((result.review["kind"] == "account_domain").sum()),
        "not_company_domains": 0 if result.warnings is None else len(result.warnings),
        "merged_by_review_decision": len(result.absorbed or {}),
    }


def _other_accounts(engine: Engine, client_id: str, run_id: str) -> pd.DataFrame | None:
    """On a monthly re-read: the accounts of the export's records that are not read again
    (account_key, name, name_norm, domain, source_row), for the fuzzy-name review; else None."""
    others = staging.read(engine, client_id, run_id, "accounts_others", ["crm_id", "source_row"])
    if others is None:
        return None
    a, ids = t.accounts.c, t.account_crm_ids.c
    accounts = read_frame(
        engine,
        select(ids.crm_id, a.account_key, a.name, a.name_norm)
        .join(t.accounts, (a.client_id == ids.client_id) & (a.account_key == ids.account_key))
        .where(ids.client_id == client_id),
    )
    accounts = accounts.merge(others.astype({"crm_id": object}), on="crm_id")
    # an account of several records: the earliest row; "id:" keys are the accounts without a domain
    accounts = accounts.sort_values("source_row", kind="stable").drop_duplicates("account_key")
    key = accounts["account_key"].astype(object)
    accounts["domain"] = key.where(~key.str.startswith("id:"), None)
    return accounts.drop(columns="crm_id").reset_index(drop=True)


def _staged_accounts(engine: Engine, client_id: str, run_id: str) -> pd.DataFrame:
    frame = typed(_staged(engine, client_id, run_id, "accounts"), "accounts")
    if "source_row" not in frame:
        frame["source_row"] = None
    return frame


def _domain_warnings(cfg: ClientConfig, warnings: pd.DataFrame | None) -> list[Rejected]:
    if warnings is None or warnings.empty:
        return []
    exp = cfg.crm.export
    file = Path(exp.accounts).name if exp.accounts else "accounts"
    col = column_map(exp.format, "accounts", exp.account_columns, _header_of(cfg)).get("website", "website")
    return [
        Rejected(file, int(r.source_row) if pd.notna(r.source_row) else 0, col, str(r.website)[:200],
                 f"{col} {str(r.website)[:80]!r}: {r.reason}; the account is kept without a domain")
        for r in warnings.itertuples()
    ]  # fmt: skip


def _header_of(cfg: ClientConfig) -> list[str] | None:
    """The account export's header (a HubSpot web-app export names its columns by label), if readable."""
    import csv

    path = export_paths(cfg).get("accounts")
    if cfg.crm.kind != "csv" or path is None or not path.exists():
        return None
    try:
        with path.open(encoding=cfg.crm.export.encoding, newline="") as fh:  # the inbox is in storage
            return [h.strip().lstrip("\ufeff") for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


# What ingest owns in the accounts table: the export's fields plus the dedupe results.
ACCOUNT_COLUMNS = ["account_key", *ACCOUNT_FIELDS, *RANGE_COLUMNS, "custom", "name_norm", "domain", "source_row",
                   "last_seen_run"]  # fmt: skip
# A blank in the export never erases a value the warehouse already has (e.g. one filled by
# enrichment); a changed value does overwrite it.
KEEP_WHEN_BLANK = [f for f in ACCOUNT_FIELDS if f not in ("crm_id", "name")] + [*RANGE_COLUMNS, "custom"]


# Columns that record where and when a row was last seen: a change in them alone is not a change.
BOOKKEEPING = ("source_file", "source_row", "first_seen_run", "last_seen_run", "updated_at", "run_id")


# Rows turned into dicts for one upsert at a time: bounds the load's memory whatever the part size.
WRITE_ROWS = 50_000


def _stored_hashes(conn, table, key: str, client_id: str, only: list | None = None) -> pd.Series:
    """``source_hash`` of the client's stored rows, by key (NA: loaded before hashes existed): every
    row, or the rows of the keys ``only`` (a monthly re-read's, not the whole table)."""
    query = select(table.c[key], table.c.source_hash).where(table.c.client_id == client_id)
    cols = read_columns(conn, query, table.c[key], only)
    return pd.Series(pd.array(cols["source_hash"], dtype="Int64"), index=pd.Index(cols[key], dtype=object))


def _staged_keys(conn, client_id: str, run_id: str, obj: str, column: str, reread_run: bool) -> list | None:
    """On a monthly re-read, the distinct ``column`` values of the staged frame ``obj``; else None."""
    if not reread_run:
        return None
    return list(dict.fromkeys(_staged(conn, client_id, run_id, obj, [column])[column].dropna().tolist()))


def _hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A 64-bit hash per row of the values the load writes (pandas' fixed-key hash: stable across runs)."""
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy().view(np.int64)


def _classify(frame: pd.DataFrame, key: str, stored: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(known, unchanged) masks: the key is stored, and with the same ``source_hash``."""
    keys = pd.Index(frame[key].to_numpy(dtype=object), dtype=object)
    same = (stored.reindex(keys).array == pd.array(frame["source_hash"].to_numpy(), dtype="Int64"))
    return isin(keys, stored.index), same.fillna(False).to_numpy(dtype=bool)


def _write(conn, table, frame: pd.DataFrame, columns: list[str], *, new: bool = False, **kw) -> None:
    """Upsert ``frame[columns]`` (plus the ``extra`` constants) into ``table``; rows with keys the
    table does not hold yet (``new``) go by one Arrow-written COPY on PostgreSQL."""
    extra = kw.pop("extra", {})
    if not len(frame):
        return
    if new:
        keys = [c.name for c in table.primary_key.columns if c.name in columns]
        rows = frame[columns].assign(**extra).drop_duplicates(keys, keep="last")  # as upsert: the last wins
        if copy_frame(conn, table, rows):
            return
    dates = [c for c in columns if isinstance(table.c[c].type, Date) and frame[c].dtype.kind == "M"]
    for start in range(0, len(frame), WRITE_ROWS):
        part = frame.iloc[start : start + WRITE_ROWS]
        if dates:  # a Date column takes dates, not midnight date-times (SQLite would store the time)
            part = part.assign(**{c: part[c].dt.date.where(part[c].notna(), None) for c in dates})
        upsert(conn, table, _rows(part, columns, **extra), **kw)


def _load_rows(conn, table, key: str, frame: pd.DataFrame, stored: pd.Series, extra: dict) -> np.ndarray:
    """Load one part of contacts or deals: new keys inserted, changed rows updated, rows whose
    ``source_hash`` is unchanged not sent. Returns the unchanged mask.

    Only the columns an export carries are written: columns other steps own (enrichment, CRM
    sync) stay as they are.
    """
    cols = [c.name for c in table.columns if c.name in frame and c.name != "client_id"]
    frame["source_hash"] = _hashes(frame, [c for c in cols if c not in BOOKKEEPING])
    known, same = _classify(frame, key, stored)
    cols.append("source_hash")
    _write(conn, table, frame[~known], cols, new=True, extra=extra)
    _write(conn, table, frame[known & ~same], cols, extra=extra, skip_unchanged=BOOKKEEPING)
    return same


def _write_crm_ids(conn, client_id: str, run_id: str, crm_ids: pd.DataFrame, stored: pd.DataFrame) -> None:
    """Every CRM id's account: new ids inserted, changed ones updated, the rest (a monthly
    re-load: nearly all) not sent at all."""
    cols = reread.CRM_ID_COLUMNS
    rows = crm_ids.reindex(columns=cols).drop_duplicates("crm_id", keep="last")
    rows = rows.assign(is_survivor=rows["is_survivor"].astype(bool), crm_id=rows["crm_id"].astype(object),
                       record_hash=pd.array(rows["record_hash"], dtype="Int64"),
                       record_domain=rows["record_domain"].astype(object))  # fmt: skip
    both = rows.merge(stored, on="crm_id", how="left", suffixes=("", "_stored"), indicator=True)
    new = (both["_merge"] == "left_only").to_numpy()

    def same(col: str) -> np.ndarray:  # equal, or both blank
        a, b = both[col].astype(object), both[col + "_stored"].astype(object)
        return ((a == b) | (a.isna() & b.isna())).to_numpy(dtype=bool)

    changed = ~new & ~(same("account_key") & same("record_hash") & same("record_domain")
                       & (both["is_survivor"] == both["is_survivor_stored"].astype(bool)).to_numpy())  # fmt: skip
    extra = {"client_id": client_id, "run_id": run_id}
    _write(conn, t.account_crm_ids, rows[new], cols, new=True, extra=extra)
    _write(conn, t.account_crm_ids, rows[changed], cols, extra=extra, skip_unchanged=("run_id",))


def _forget_gone(conn, client_id: str, run_id: str, crm_ids: pd.DataFrame, stored: pd.DataFrame | None,
                 reread_run: bool) -> None:
    """Records that left the export lose their hash: their accounts were loaded without them, and
    a re-read need not look at them again. A re-read staged them; after a whole export's read they
    are the stored ids with a hash that it did not hold."""
    c = t.account_crm_ids.c
    if reread_run:
        gone = _staged(conn, client_id, run_id, "account_records_gone", ["crm_id"])["crm_id"].tolist()
    elif stored is not None and crm_ids["record_hash"].notna().any():  # an export's records, hashed
        held = stored["record_hash"].notna().to_numpy() & ~isin(stored["crm_id"], crm_ids["crm_id"])
        gone = stored["crm_id"][held].tolist()
    else:
        return
    for part in range(0, len(gone), 500):
        conn.execute(update(t.account_crm_ids).where(c.client_id == client_id, c.crm_id.in_(gone[part : part + 500]))
                     .values(record_hash=None))  # fmt: skip


def _reread_keys(stored: pd.DataFrame, key_of: pd.Series, others: pd.Series) -> pd.Series:
    """A monthly re-read: the records not read again map to their stored accounts (for contacts and deals)."""
    stored = pd.Series(stored["account_key"].to_numpy(dtype=object), index=pd.Index(stored["crm_id"], dtype=object))
    kept = stored.reindex(pd.Index(others.to_numpy(dtype=object), dtype=object)).dropna()
    both = pd.concat([kept, key_of])
    return both[~both.index.duplicated(keep="last")]


def load_warehouse(cfg: ClientConfig, run_id: str, engine: Engine) -> dict:
    """Upsert accounts, their CRM ids, contacts, opportunities and reps in one transaction.

    The staged frames are walked part by part (``staging.PART_ROWS`` rows), so the step's memory
    does not grow with the client's size. A row whose export values hash as when it was last
    loaded is not sent at all (a monthly re-load of a 1%-changed export writes ~1% of the rows);
    bookkeeping alone (source row, run ids, timestamps) is no change.
    """
    cid = cfg.client_id
    now = _now()
    rep_rows = [
        {"client_id": cid, "rep_id": r.id, "name": r.name, "email": r.email, "territory": r.territory,
         "active": r.active}
        for r in cfg.territories.reps
    ]  # fmt: skip
    n = dict.fromkeys(("accounts", "new", "unchanged", "contacts", "contacts_unchanged", "without_account",
                       "opps", "opps_unchanged", "closed", "won"), 0)  # fmt: skip
    hashed = [c for c in ACCOUNT_COLUMNS if c not in BOOKKEEPING]
    with engine.begin() as conn:
        crm_ids = _staged(conn, cid, run_id, "account_crm_ids", reread.CRM_ID_COLUMNS)
        key_of = pd.Series(crm_ids["account_key"].to_numpy(dtype=object), index=crm_ids["crm_id"].to_numpy(dtype=object))
        key_of = key_of[~key_of.index.duplicated(keep="last")]
        absorbed = _staged(conn, cid, run_id, "absorbed_accounts", ["account_key"])["account_key"].tolist()
        others = staging.read(conn, cid, run_id, "accounts_others", ["crm_id"])  # a monthly re-read: not None
        reread_run = others is not None
        stored = _stored_hashes(conn, t.accounts, "account_key", cid,
                                _staged_keys(conn, cid, run_id, "accounts_deduped", "account_key", reread_run))
        for part in staging.parts(conn, cid, run_id, "accounts_deduped"):
            accounts = typed(part, "accounts")
            for col in ACCOUNT_COLUMNS:
                if col not in accounts:
                    accounts[col] = None
            accounts["source_hash"] = _hashes(accounts, hashed)
            accounts["last_seen_run"] = run_id
            known, same = _classify(accounts, "account_key", stored)
            cols = [*ACCOUNT_COLUMNS, "source_hash"]
            extra = {"client_id": cid, "updated_at": now}
            _write(conn, t.accounts, accounts[~known], cols, new=True, extra={**extra, "first_seen_run": run_id})
            # A blank in the export never erases a stored value; a changed value overwrites it.
            _write(conn, t.accounts, accounts[known & ~same], cols, extra=extra,
                   keep_when_null=KEEP_WHEN_BLANK, skip_unchanged=BOOKKEEPING)  # fmt: skip
            n["accounts"] += len(accounts)
            n["new"] += int((~known).sum())
            n["unchanged"] += int(same.sum())
        del stored
        if reread_run:  # the ids written again, and those the staged contacts and deals belong to
            wanted = {*crm_ids["crm_id"].dropna()}
            for obj in ("contacts", "opportunities"):
                wanted.update(_staged_keys(conn, cid, run_id, obj, "account_crm_id", True))
            stored = reread.stored_crm_ids(conn, cid, sorted(wanted))
        else:
            stored = reread.stored_crm_ids(conn, cid) if len(crm_ids) else None
        n["crm_ids"] = len(crm_ids)
        if len(crm_ids):
            _write_crm_ids(conn, cid, run_id, crm_ids, stored)
        _forget_gone(conn, cid, run_id, crm_ids, stored, reread_run)
        del crm_ids
        if others is not None:  # the ids read again are in key_of; the others' accounts did not change
            # (stored holds the ids the staged contacts and deals name: only those are looked up)
            key_of = _reread_keys(stored, key_of, others["crm_id"])
        del others, stored
        stored = _stored_hashes(conn, t.contacts, "contact_key", cid,
                                _staged_keys(conn, cid, run_id, "contacts", "crm_id", reread_run))
        for part in staging.parts(conn, cid, run_id, "contacts"):
            contacts = typed(part, "contacts")
            contacts["account_key"] = contacts["account_crm_id"].map(key_of)
            contacts["contact_key"] = contacts["crm_id"]
            same = _load_rows(conn, t.contacts, "contact_key", contacts, stored,
                              {"client_id": cid, "last_seen_run": run_id, "updated_at": now})  # fmt: skip
            n["contacts"] += len(contacts)
            n["contacts_unchanged"] += int(same.sum())
            n["without_account"] += int(contacts["account_key"].isna().sum())
        stored = _stored_hashes(conn, t.opportunities, "crm_id", cid,
                                _staged_keys(conn, cid, run_id, "opportunities", "crm_id", reread_run))
        for part in staging.parts(conn, cid, run_id, "opportunities"):
            opps = typed(part, "opportunities")
            opps["account_key"] = opps["account_crm_id"].map(key_of)
            stage = opps["stage"].fillna("").str.lower()
            opps["is_closed"] = opps["is_closed"].fillna(False).astype(bool) | stage.str.startswith("closed")
            opps["is_won"] = opps["is_won"].fillna(False).astype(bool) | (stage == "closed won")
            same = _load_rows(conn, t.opportunities, "crm_id", opps, stored,
                              {"client_id": cid, "last_seen_run": run_id, "updated_at": now})  # fmt: skip
            n["opps"] += len(opps)
            n["opps_unchanged"] += int(same.sum())
            n["closed"] += int(opps["is_closed"].sum())
            n["won"] += int(opps["is_won"].sum())
        del stored
        upsert(conn, t.reps, rep_rows)
        # Accounts a review decision merged into another are retired with their scores: their
        # CRM ids, contacts and deals now point at the account they joined.
        for part in range(0, len(absorbed), 500):
            keys = absorbed[part : part + 500]
            for table in (t.account_scores, t.accounts):
                conn.execute(delete(table).where(table.c.client_id == cid, table.c.account_key.in_(keys)))
        staging.clear(conn, cid, run_id)  # staged frames are only needed until the load succeeds
    # the next steps join on these tables: plan them for what was just loaded (autovacuum may be off)
    analyze_changed(engine, cid, {t.accounts: n["accounts"] - n["unchanged"], t.account_crm_ids: n["crm_ids"],
                                  t.contacts: n["contacts"] - n["contacts_unchanged"],
                                  t.opportunities: n["opps"] - n["opps_unchanged"]})  # fmt: skip
    return {
        "accounts_loaded": n["accounts"],
        "accounts_new": n["new"],
        "accounts_updated": n["accounts"] - n["new"] - n["unchanged"],
        "accounts_unchanged": n["unchanged"],
        "contacts_loaded": n["contacts"],
        "contacts_unchanged": n["contacts_unchanged"],
        "contacts_without_account": n["without_account"],
        "opportunities_loaded": n["opps"],
        "opportunities_unchanged": n["opps_unchanged"],
        "opportunities_closed": n["closed"],
        "opportunities_won": n["won"],
        "reps": len(rep_rows),
        "accounts_retired_by_merge": len(absorbed),
    }


def _count(conn, table, **where) -> int:
    q = select(func.count()).select_from(table).where(table.c.client_id == where.pop("client_id"))
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    return int(conn.execute(q).scalar_one())


def summarise(cfg: ClientConfig, run_id: str, engine: Engine, steps: dict | None = None) -> dict:
    """Write the run summary (JSON) and the rejected rows (CSV) under the run folder; close the run."""
    cid = cfg.client_id
    out = run_dir(cid, run_id)
    out.mkdir(parents=True, exist_ok=True)
    with engine.begin() as conn:
        rejected = conn.execute(
            select(
                t.rejected_rows.c.file, t.rejected_rows.c.row_number, t.rejected_rows.c.field,
                t.rejected_rows.c.value, t.rejected_rows.c.reason,
            )
            .where(t.rejected_rows.c.client_id == cid, t.rejected_rows.c.run_id == run_id)
            .order_by(t.rejected_rows.c.file, t.rejected_rows.c.row_number)
        ).all()  # fmt: skip
        warnings = conn.execute(
            select(
                t.ingest_warnings.c.file, t.ingest_warnings.c.row_number, t.ingest_warnings.c.field,
                t.ingest_warnings.c.value, t.ingest_warnings.c.reason,
            )
            .where(t.ingest_warnings.c.client_id == cid, t.ingest_warnings.c.run_id == run_id)
            .order_by(t.ingest_warnings.c.file, t.ingest_warnings.c.row_number)
        ).all()  # fmt: skip
        totals = {
            "accounts": _count(conn, t.accounts, client_id=cid),
            "contacts": _count(conn, t.contacts, client_id=cid),
            "opportunities": _count(conn, t.opportunities, client_id=cid),
            "open_review_pairs": _count(conn, t.review_queue, client_id=cid, status="open"),
        }
        summary = {
            "client_id": cid,
            "run_id": run_id,
            "steps": steps or {},
            "warehouse_totals": totals,
            "rows_rejected": len(rejected),
            "rejected_examples": [
                {"file": r.file, "row": r.row_number, "reason": r.reason} for r in rejected[:10]
            ],
            "rows_warned": len({(r.file, r.row_number) for r in warnings}),
            "warnings": len(warnings),
            "warning_examples": [
                {"file": r.file, "row": r.row_number, "field": r.field, "reason": r.reason}
                for r in warnings[:10]
            ],
            "warehouse": safe_url(engine),
            "outputs": str(out),
        }
        conn.execute(
            t.runs.update()
            .where(t.runs.c.client_id == cid, t.runs.c.run_id == run_id)
            .values(finished_at=_now(), status="success", summary=summary)
        )
    for name, rows in (("rejected_rows.csv", rejected), ("warnings.csv", warnings)):
        with (out / name).open("w", newline="", encoding="utf-8") as fh:
            w = csvsafe.writer(fh)  # values straight from the export: never formulas
            w.writerow(["file", "row", "field", "value", "reason"])
            w.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary
