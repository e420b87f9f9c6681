"""The warehouse: where every task reads and writes, scoped by client_id.

SQLite (a file under ``$MARKETMAP_HOME``) is the embedded default; PostgreSQL is used in
production. The URL comes from, in order: an explicit argument, the Airflow connection
named in the client config (resolved by the DAG layer), ``MARKETMAP_WAREHOUSE_URL``,
then the default SQLite file.

The schema is migrated at deploy time (``marketmap migrate``: the ``airflow-init`` service of
docker-compose, ``make migrate``, ``make demo``, ``make ui``), never by a task: a task's engine
only checks that the schema is at the migrations' head and fails with what to run otherwise
(:class:`SchemaNotAtHead`). ``MARKETMAP_MIGRATE_ON_CONNECT=1`` migrates on first use instead —
for tests and throw-away setups, never for a deployment with several workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy import (
    JSON,
    Engine,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from marketmap.settings import marketmap_home

# From this many rows on, an upsert on PostgreSQL (psycopg 3) COPYs into a staging table and
# merges with one INSERT … SELECT … ON CONFLICT: half the wall time and a third of the client CPU
# of executemany, from 2,000 rows (bench/RESULTS.md).
COPY_MIN_ROWS = 1000
_ENGINES: dict[str, Engine] = {}
# Not Airflow's alembic_version: the warehouse and Airflow's metadata may share a database.
VERSION_TABLE = "marketmap_alembic_version"


def default_url() -> str:
    url = os.environ.get("MARKETMAP_WAREHOUSE_URL")
    if url:
        return url
    home = marketmap_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'warehouse.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the UI, reports) don't block a running task
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class SchemaNotAtHead(RuntimeError):
    """The warehouse schema is not the one this code needs: migrate at deploy time."""


def migrate_on_connect() -> bool:
    return os.environ.get("MARKETMAP_MIGRATE_ON_CONNECT", "").strip().lower() in ("1", "true", "yes")


def get_engine(url: str | None = None, *, migrate_schema: bool | None = None) -> Engine:
    """A cached engine for ``url``; on first use the schema is checked to be at head.

    ``migrate_schema=True`` migrates it to head instead (what ``marketmap migrate`` does);
    ``None`` follows ``MARKETMAP_MIGRATE_ON_CONNECT``. Raises :class:`SchemaNotAtHead`.
    """
    url = url or default_url()
    if url not in _ENGINES:
        eng = create_engine(url, future=True, pool_pre_ping=True)
        if eng.dialect.name == "sqlite":
            event.listen(eng, "connect", _sqlite_pragmas)
        if migrate_schema if migrate_schema is not None else migrate_on_connect():
            migrate(eng)
        else:
            check_schema(eng)
        _ENGINES[url] = eng
    return _ENGINES[url]


def client_url(cfg) -> str | None:
    """The warehouse URL of a client: its ``warehouse_conn_id`` connection, or None for the default."""
    if not cfg.warehouse_conn_id:
        return None
    from marketmap.connections import get_connection

    uri = get_connection(cfg.warehouse_conn_id).get_uri()
    # Airflow renders postgres connections as postgres://; SQLAlchemy wants a driver name.
    for prefix in ("postgres://", "postgresql://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix) :]
    return uri


def client_engine(cfg) -> Engine:
    """The cached engine of a client's warehouse."""
    return get_engine(client_url(cfg))


def dispose_engines() -> None:
    for eng in _ENGINES.values():
        eng.dispose()
    _ENGINES.clear()


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the warehouse schema with Alembic (never drops a client's data)."""
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def head_revisions() -> set[str]:
    """The revision(s) the code's migrations end at."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(_alembic_config()).get_heads())


def schema_revisions(engine: Engine) -> set[str]:
    """The revision(s) the warehouse is at (empty for a database never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return set(ctx.get_current_heads())


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaNotAtHead` unless the warehouse schema is at the migrations' head."""
    current, head = schema_revisions(engine), head_revisions()
    if current == head:
        return
    at = ", ".join(sorted(current)) if current else "no Market Map schema (never migrated)"
    raise SchemaNotAtHead(
        f"warehouse {safe_url(engine)} is at {at}; this code needs revision {', '.join(sorted(head))}. "
        "Migrate it at deploy time: run `marketmap migrate` (the airflow-init service of "
        "docker-compose, `make migrate`) and retry the task"
    )


def safe_url(engine_or_url: Engine | str) -> str:
    """The URL with any password hidden, for logs and summaries."""
    from sqlalchemy.engine import make_url

    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.render_as_string(hide_password=True)


def upsert(
    conn: Connection,
    table: Table,
    rows: Iterable[Mapping],
    *,
    chunk: int = 5000,
    keep_when_null: Iterable[str] = (),
    skip_unchanged: Iterable[str] | None = None,
    update_only: Iterable[str] | None = None,
    merge_json: Iterable[str] = (),
    copy: bool | None = None,
) -> int:
    """INSERT … ON CONFLICT (primary key) DO UPDATE, on SQLite and PostgreSQL alike.

    Small batches: one statement per table, executed for many rows at once (``executemany``):
    it compiles once and is cached, instead of a fresh multi-VALUES statement per chunk (13x the
    CPU). Large batches on PostgreSQL (``COPY_MIN_ROWS`` and more, psycopg 3): the rows are
    ``COPY``'d into a temporary staging table and merged by one ``INSERT … SELECT … ON CONFLICT
    … DO UPDATE … WHERE <changed>``, in the caller's transaction.

    Args:
        keep_when_null: columns that keep their stored value when the new one is NULL.
        skip_unchanged: when given, a row whose values equal the stored ones — ignoring these
            bookkeeping columns (run ids, timestamps, source rows) — is not rewritten at all.
        update_only: when given, a row whose key is stored updates only these columns (the
            others are only written for a new key).
        merge_json: JSON object columns whose stored object is merged with the new one, key by
            key (the new value of a key wins), in SQL: nothing is read back first.
        copy: force (True) or forbid (False) the COPY path; default: by size and dialect.
    Returns: the number of rows given (inserted, updated or found unchanged).
    """
    rows = list(rows)
    if not rows:
        return 0
    cols = list(rows[0].keys())
    keys = _keys(table, cols)
    if copy is None:
        copy = len(rows) >= COPY_MIN_ROWS
    copy = copy and _copies(conn)
    staging = _copy_to_staging(conn, table, cols, keys, rows) if copy else None
    stmt = _upsert_statement(conn, table, cols, keys, staging, keep_when_null, skip_unchanged, update_only, merge_json)
    if staging is not None:
        conn.execute(stmt)
        conn.exec_driver_sql(f'DROP TABLE "{staging.name}"')
        return len(rows)
    for i in range(0, len(rows), chunk):
        conn.execute(stmt, rows[i : i + chunk])
    return len(rows)


def upsert_frame(conn: Connection, table: Table, frame, **kw) -> bool:
    """:func:`upsert` of a pandas frame's rows (the last row per key wins), on PostgreSQL with
    psycopg 3 and ``COPY_MIN_ROWS`` rows or more: the frame is ``COPY``'d into the staging table
    column by column (Arrow writes the CSV), with no dict or tuple per row (score_accounts at 1M:
    13.4 -> 7.2 s of CPU). ``kw`` as for :func:`upsert` (not ``copy``, ``chunk``).

    Returns False, writing nothing, when that does not apply or Arrow cannot type a column (the
    caller upserts the rows instead)."""
    import pyarrow as pa

    if not (_copies(conn) and len(frame) >= COPY_MIN_ROWS):
        return False
    cols = list(frame.columns)
    keys = _keys(table, cols)
    frame = frame.drop_duplicates(keys, keep="last")  # ON CONFLICT cannot touch one row twice
    try:
        body = _csv_body(cols, _frame_arrays(conn, table, frame))
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return False
    staging = _staging_table(conn, table, cols)
    _send_csv(conn, staging.name, cols, body)
    conn.execute(_upsert_statement(conn, table, cols, keys, staging, **kw))
    conn.exec_driver_sql(f'DROP TABLE "{staging.name}"')
    return True


def _copies(conn: Connection) -> bool:
    """Can ``conn`` take rows by COPY (PostgreSQL with psycopg 3)?"""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def _keys(table: Table, cols: list[str]) -> list[str]:
    keys = [c.name for c in table.primary_key.columns]
    missing = [k for k in keys if k not in cols]
    if missing:
        raise ValueError(f"upsert into {table.name}: rows lack the key column(s) {missing}")
    return keys


def _upsert_statement(
    conn: Connection,
    table: Table,
    cols: list[str],
    keys: list[str],
    staging: Table | None,
    keep_when_null: Iterable[str] = (),
    skip_unchanged: Iterable[str] | None = None,
    update_only: Iterable[str] | None = None,
    merge_json: Iterable[str] = (),
):
    """INSERT … ON CONFLICT … DO UPDATE of ``cols``: of bound rows, or (``staging``) of a staging table's."""
    keep, merge = set(keep_when_null), set(merge_json)
    pg = conn.dialect.name == "postgresql"
    insert = pg_insert if pg else sqlite_insert
    stmt = insert(table)
    if staging is not None:
        stmt = stmt.from_select(cols, select(*[staging.c[c] for c in cols]))
    only = set(cols if update_only is None else update_only)

    def new_value(c: str):
        if c in keep:
            return func.coalesce(stmt.excluded[c], table.c[c])
        if c in merge:
            return _merged(table.c[c], stmt.excluded[c], pg)
        return stmt.excluded[c]

    update = {c: new_value(c) for c in cols if c not in keys and c in only}
    if not update:
        stmt = stmt.on_conflict_do_nothing()
    else:
        where = None
        if skip_unchanged is not None:
            ignored = set(skip_unchanged)
            changed = [_distinct(table.c[c], v, pg) for c, v in update.items() if c not in ignored]
            where = or_(*changed) if changed else None
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update, where=where)
    return stmt


def _merged(column, value, pg: bool):
    """The stored JSON object ``column`` with ``value``'s keys set (a NULL stored value is {})."""
    if pg:  # json has no operators: merge as jsonb (||: the right side's keys win)
        stored = func.coalesce(column.cast(JSONB), literal_column("'{}'::jsonb"))
        return (stored.op("||")(value.cast(JSONB))).cast(column.type)
    # SQLite's JSON1 merge patch; a key set to null there is removed, which every reader of
    # these columns takes as the same thing (a missing value)
    return func.json_patch(func.coalesce(column, "{}"), value)


def _distinct(column, value, pg: bool):
    # PostgreSQL's json type has no equality operator: compare as jsonb, so the same value is the
    # same however it was spelled (COPY's orjson text has no spaces; a bound json.dumps has).
    if pg and isinstance(column.type, JSON):
        return column.cast(JSONB).is_distinct_from(value.cast(JSONB))
    return column.is_distinct_from(value)


def _bound(conn: Connection, table: Table, cols: list[str], rows: Iterable[Mapping]) -> Iterable[tuple]:
    """Each row's values as the driver gets them (the columns' bind processors applied: JSON …)."""
    dialect = conn.dialect
    procs = [(i, table.c[c].type.dialect_impl(dialect).bind_processor(dialect)) for i, c in enumerate(cols)]
    procs = [(i, p) for i, p in procs if p is not None]
    for r in rows:  # only the columns with a processor (JSON) are touched: ~3x less CPU per row
        values = [r[c] for c in cols]
        for i, p in procs:
            values[i] = p(values[i])
        yield values


def _copy(conn: Connection, table: Table, name: str, cols: list[str], rows: list[Mapping]) -> None:
    """COPY ``rows`` (mappings with ``cols``, typed as ``table``'s columns) into table ``name``.

    The rows are written as CSV by Arrow, column by column (~4x less CPU than psycopg's
    row-by-row ``write_row``); rows Arrow cannot type or write as text (a column of mixed kinds
    of value, bytes) go row by row, as the driver binds them.
    """
    import pyarrow as pa

    try:
        body = _csv_body(cols, _row_arrays(conn, table, cols, rows))
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        quoted = ", ".join(f'"{c}"' for c in cols)
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({quoted}) FROM STDIN') as cp:
            for v in _bound(conn, table, cols, rows):
                cp.write_row(v)
        return
    _send_csv(conn, name, cols, body)


def _row_arrays(conn: Connection, table: Table, cols: list[str], rows: list[Mapping]) -> list:
    """One Arrow array per column of ``rows``; JSON serialised as the column's bind would."""
    import pyarrow as pa
    from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, LargeBinary

    arrays = []
    for c in cols:
        kind = table.c[c].type
        values = [r[c] for r in rows]
        if isinstance(kind, LargeBinary):
            raise TypeError(f"{table.name}.{c} holds bytes: COPY them row by row")
        if isinstance(kind, JSON):
            arrays.append(_json_array(conn, kind, values))
        elif isinstance(kind, DateTime):
            arrays.append(pa.array(values, type=pa.timestamp("us", tz="UTC")))
        elif isinstance(kind, Date):
            arrays.append(pa.array(values, type=pa.date32()))
        elif isinstance(kind, Boolean):
            arrays.append(pa.array(values, type=pa.bool_()))
        elif isinstance(kind, Integer | BigInteger):
            arrays.append(pa.array(values, type=pa.int64()))
        else:
            arrays.append(pa.array(values))
    return arrays


def _json_array(conn: Connection, kind: JSON, values: list):
    """JSON column values as text, serialised as the column's bind would: a Python None is JSON
    null unless the column says SQL NULL."""
    import pyarrow as pa

    dumps = getattr(conn.dialect, "_json_serializer", None) or _dumps
    null = None if kind.none_as_null else "null"
    return pa.array([null if v is None else dumps(v) for v in values], type=pa.string())


def _dumps(value) -> str:
    """JSON text of ``value``, by orjson: ~7x less CPU than ``json.dumps`` per row (a build's push
    books three JSON values per record). The text is compact where ``json.dumps`` puts spaces,
    which PostgreSQL compares as jsonb (``_distinct``). A value orjson refuses (a dict with
    non-string keys, an int beyond 64 bits) raises TypeError: the batch goes row by row."""
    import orjson

    return orjson.dumps(value).decode()


def _csv_body(cols: list[str], arrays: list):
    """Arrow arrays as CSV text for ``COPY … (FORMAT csv)``. Every non-null value is quoted, so an
    empty string stays an empty string and only a null is NULL."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    pacsv.write_csv(
        pa.table(arrays, names=list(cols)),
        buf,
        pacsv.WriteOptions(include_header=False, quoting_style="all_valid"),
    )
    return buf.getbuffer()


def _send_csv(conn: Connection, name: str, cols: list[str], body) -> None:
    quoted = ", ".join(f'"{c}"' for c in cols)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({quoted}) FROM STDIN (FORMAT csv)') as cp:
        for start in range(0, len(body), 1 << 22):
            cp.write(body[start : start + (1 << 22)])


def among(conn: Connection, column, values: Iterable):
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``: one parameter however many
    values, so the statement is compiled once and psycopg never parses thousands of placeholders."""
    values = list(values)
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def insert_rows(conn: Connection, table: Table, rows: Iterable[Mapping], *, chunk: int = 5000) -> int:
    """Plain INSERT of new rows (no conflict handling): ``COPY`` on PostgreSQL (psycopg 3),
    ``executemany`` elsewhere. Every row must have the first row's keys."""
    rows = list(rows)
    if not rows:
        return 0
    cols = list(rows[0].keys())
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(rows) >= COPY_MIN_ROWS:
        _copy(conn, table, table.name, cols, rows)
        return len(rows)
    for i in range(0, len(rows), chunk):
        conn.execute(table.insert(), rows[i : i + chunk])
    return len(rows)


def _copy_to_staging(
    conn: Connection, table: Table, cols: list[str], keys: list[str], rows: list[Mapping]
) -> Table:
    """COPY ``rows`` into a temporary table shaped like ``table``'s ``cols``; the last row per key wins."""
    # INSERT … ON CONFLICT cannot touch one row twice in a statement; executemany lets the
    # last of several rows with one key win, and so does this.
    last = {tuple(r[k] for k in keys): r for r in rows}
    staging = _staging_table(conn, table, cols)
    _copy(conn, table, staging.name, cols, list(last.values()))
    return staging


def _staging_table(conn: Connection, table: Table, cols: list[str]) -> Table:
    """An empty temporary table shaped like ``table``'s ``cols`` (dropped at commit at the latest)."""
    from sqlalchemy import Column, MetaData

    name = f"_mm_stage_{table.name}"
    quoted = ", ".join(f'"{c}"' for c in cols)
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    conn.exec_driver_sql(
        f'CREATE TEMPORARY TABLE "{name}" ON COMMIT DROP AS SELECT {quoted} FROM "{table.name}" WITH NO DATA'
    )
    return Table(name, MetaData(), *[Column(c, table.c[c].type) for c in cols])


def copy_frame(conn: Connection, table: Table, frame) -> bool:
    """INSERT the rows of a pandas frame (new keys only) by one ``COPY … (FORMAT csv)`` whose text
    Arrow writes column by column — PostgreSQL with psycopg 3 and ``COPY_MIN_ROWS`` rows or more.

    Returns False, writing nothing, when that does not apply (the caller upserts instead). Every
    non-null value is quoted, so an empty string stays an empty string and only a null is NULL.
    At 1M accounts this is ~6x less client CPU than building a dict and a tuple per row.
    """
    if not (_copies(conn) and len(frame) >= COPY_MIN_ROWS):
        return False
    _send_csv(conn, table.name, list(frame.columns), _csv_body(list(frame.columns), _frame_arrays(conn, table, frame)))
    return True


def _frame_arrays(conn: Connection, table: Table, frame) -> list:
    """One Arrow array per column of ``frame``, typed as ``table``'s column (NaN and None: null;
    JSON serialised as the column's bind would)."""
    import pyarrow as pa
    from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer

    arrays = []
    for name in frame.columns:
        kind = table.c[name].type
        values = frame[name]
        if isinstance(kind, JSON):
            arr = _json_array(conn, kind, values.tolist())
        elif isinstance(kind, Date) and values.dtype.kind == "M":
            arr = pa.array(values.dt.date, from_pandas=True, type=pa.date32())
        elif isinstance(kind, DateTime):
            arr = pa.array(values, from_pandas=True).cast(pa.timestamp("us", tz="UTC"), safe=False)
        elif isinstance(kind, Integer | BigInteger):
            arr = pa.array(values, from_pandas=True).cast(pa.int64())
        elif isinstance(kind, Boolean):
            arr = pa.array(values, from_pandas=True, type=pa.bool_())
        else:
            arr = pa.array(values, from_pandas=True)
        arrays.append(arr)
    return arrays
