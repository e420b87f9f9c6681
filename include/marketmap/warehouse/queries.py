"""Warehouse reads, in one place: every reader names its columns and filters on the client.

The scoring steps, the analyses, the reports and the CRM push read accounts, contacts,
deals and scores through these functions, so no layer reaches into another for its data
(``tests/test_layering.py`` checks there is no import cycle between packages).

* Readers select explicit columns (never ``SELECT *``): by default a table's columns
  without ``client_id``, and callers that need a few columns name them, which bounds a
  task's memory by what it uses.
* :func:`iter_frames` walks a large read in chunks (server-side cursor on PostgreSQL).
* Counts, group-bys and report aggregates run in the database: hand-written statements live
  in ``sql/<domain>/<verb>_<object>.sql`` (one statement per file, named parameters
  ``:client_id`` …) and run through :func:`sql` / :func:`sql_frame`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, Table, select, text

from marketmap.warehouse import copyread
from marketmap.warehouse import schema as t
from marketmap.warehouse.custom import expand

# Where and when a row was last seen: nothing computes with these.
BOOKKEEPING = ("source_file", "source_row", "first_seen_run", "last_seen_run", "updated_at", "source_hash")


def columns_of(table: Table, *, without: Iterable[str] = ()) -> list[str]:
    """The column names of ``table`` except ``client_id`` and ``without``."""
    skip = {"client_id", *without}
    return [c.name for c in table.columns if c.name not in skip]


def _select(table: Table, client_id: str, columns: Iterable[str] | None):
    names = list(columns) if columns is not None else columns_of(table)
    unknown = [c for c in names if c not in table.c]
    if unknown:
        raise KeyError(f"{table.name} has no column(s) {unknown}; columns: {columns_of(table)}")
    return select(*[table.c[c] for c in names]).where(table.c.client_id == client_id)


def read_frame(engine: Engine, query) -> pd.DataFrame:
    """A query's rows as a DataFrame (on PostgreSQL by ``COPY``: :mod:`~marketmap.warehouse.copyread`)."""
    plan = copyread.plan(engine, query)
    with engine.connect() as conn:
        if plan is not None:
            return next(copyread.frames(conn, plan))
        return pd.read_sql(query, conn)


# A lookup of a few keys (a monthly re-read's) sends this many keys per query.
KEYS_PER_QUERY = 5_000


def read_columns(conn, query, key=None, keys: list | None = None) -> dict[str, list]:
    """A query's rows as ``{column: values}``: every row (on PostgreSQL by ``COPY``, ~5x less CPU
    than a row per key), or with ``key`` (a column) and ``keys`` only the rows of those keys,
    looked up by the index ``KEYS_PER_QUERY`` keys at a time."""
    if keys is None:
        return copyread.read_columns(conn, query)
    names = [c.name for c in query.selected_columns]
    rows = [r for start in range(0, len(keys), KEYS_PER_QUERY)
            for r in conn.execute(query.where(key.in_(keys[start : start + KEYS_PER_QUERY])))]  # fmt: skip
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def iter_frames(engine: Engine, query, chunk: int = 50_000) -> Iterator[pd.DataFrame]:
    """A query's rows in DataFrames of at most ``chunk`` rows.

    On PostgreSQL a ``COPY … TO STDOUT`` (or, for a query it cannot take, a server-side cursor)
    streams them (memory: one chunk), while the caller may write through other connections.
    SQLite (the small embedded default) reads the rows first: an open read there would hold its
    lock against the caller's writes.
    """
    if engine.dialect.name == "sqlite":
        frame = read_frame(engine, query)
        for i in range(0, max(len(frame), 1), chunk):
            part = frame.iloc[i : i + chunk]
            if len(part):
                yield part
        return
    plan = copyread.plan(engine, query)
    with engine.connect() as conn:
        if plan is not None:
            yield from copyread.frames(conn, plan, chunk)
            return
        conn = conn.execution_options(stream_results=True, yield_per=chunk)
        yield from pd.read_sql(query, conn, chunksize=chunk)


def analyze(engine: Engine, *tables: Table) -> None:
    """Refresh PostgreSQL's planner statistics of ``tables`` after a step rewrote many rows.

    Autovacuum gets there eventually (and may be off); until then the next step's joins are
    planned for the table as it was (an empty table: nested loops over a million rows).
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(f'ANALYZE "{table.name}"')


def analyze_changed(engine: Engine, client_id: str, written: dict[Table, int]) -> list[str]:
    """:func:`analyze` the tables where a client's step wrote more than autovacuum's default
    threshold (50 rows + 10%) of the rows the planner already counts for that client. A build, or
    a new client on a shared table, is analyzed; a monthly re-load of 1% of a client's rows is
    not: its statistics still hold, and ANALYZE samples 30,000 rows of each table (seconds at
    1M). Returns the names of the tables analyzed."""
    if engine.dialect.name != "postgresql":
        return []
    stale = []
    with engine.connect() as conn:
        for table, n in written.items():
            plan = conn.exec_driver_sql(
                f'EXPLAIN (FORMAT JSON) SELECT 1 FROM "{table.name}" WHERE client_id = %(c)s', {"c": client_id}
            ).scalar_one()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            if n > 50 + 0.1 * plan[0]["Plan"]["Plan Rows"]:
                stale.append(table)
    analyze(engine, *stale)
    return [table.name for table in stale]


def read_accounts(engine: Engine, client_id: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A client's accounts (``columns``, default all but ``client_id``); custom fields, when the
    ``custom`` column is read, as columns of their own (:func:`marketmap.warehouse.custom.expand`)."""
    return expand(read_frame(engine, _select(t.accounts, client_id, columns)))


def read_opportunities(engine: Engine, client_id: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A client's deals; custom fields as columns of their own (like :func:`read_accounts`)."""
    return expand(read_frame(engine, _select(t.opportunities, client_id, columns)))


def read_reps(engine: Engine, client_id: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    return read_frame(engine, _select(t.reps, client_id, columns))


def read_contacts(engine: Engine, client_id: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A client's contacts; custom fields as columns of their own (like :func:`read_accounts`)."""
    return expand(read_frame(engine, _select(t.contacts, client_id, columns)))


def read_scores(
    engine: Engine,
    client_id: str,
    version: str,
    product: str | None = None,
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Account scores of one rubric version (and product, when given)."""
    q = _select(t.account_scores, client_id, columns).where(t.account_scores.c.rubric_version == version)
    if product:
        q = q.where(t.account_scores.c.product == product)
    return read_frame(engine, q)


def read_contact_scores(
    engine: Engine, client_id: str, version: str, columns: Iterable[str] | None = None
) -> pd.DataFrame:
    """Contact scores of one persona version."""
    q = _select(t.contact_scores, client_id, columns).where(t.contact_scores.c.rubric_version == version)
    return read_frame(engine, q)


# --- hand-written SQL (sql/) ---------------------------------------------------------------


def sql_dir() -> Path:
    """``$MARKETMAP_SQL_DIR``, else the project's ``sql/`` (next to ``include/``, as in the image)."""
    env = os.environ.get("MARKETMAP_SQL_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "sql"


@lru_cache(maxsize=128)
def _load(path: Path) -> str:
    body = path.read_text(encoding="utf-8").strip().rstrip(";")
    code = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
    statements = [s for s in code.split(";") if s.strip()]
    if len(statements) != 1:
        raise ValueError(f"{path}: expected exactly one SQL statement, found {len(statements)}")
    return code.strip()  # without the comment lines: text() would read ":name" in them as parameters


def sql_text(name: str):
    """The statement of ``sql/<name>.sql`` (e.g. ``reports/count_accounts_by_tier``) as ``text()``."""
    path = sql_dir() / f"{name}.sql"
    if not path.is_file():
        known = sorted(str(p.relative_to(sql_dir()).with_suffix("")) for p in sql_dir().rglob("*.sql"))
        raise FileNotFoundError(f"no SQL file {path} (known: {', '.join(known) or 'none'})")
    return text(_load(path))


def sql(engine: Engine, name: str, **params) -> list[dict]:
    """Run ``sql/<name>.sql`` with named parameters; rows as dicts."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sql_text(name), params).mappings()]


def sql_frame(engine: Engine, name: str, **params) -> pd.DataFrame:
    """Run ``sql/<name>.sql`` with named parameters; rows as a DataFrame."""
    with engine.connect() as conn:
        return pd.read_sql(sql_text(name), conn, params=params)
