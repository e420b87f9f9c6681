"""Large reads on PostgreSQL by ``COPY (query) TO STDOUT``, parsed by Arrow column by column.

``pd.read_sql`` makes a Python tuple per row and a Python object per value, then pandas packs
them into columns again: at 1M accounts most of a scoring step's time. Here PostgreSQL writes
the rows as CSV and Arrow's C++ reader types them straight into columns (~4x less CPU), with
the same frame ``pd.read_sql`` gives (column names, dtypes, NULLs, JSON decoded), which
``tests/test_copyread.py`` checks reader by reader.

Only queries whose every column has a plain type (text, numbers, booleans, dates, times, JSON)
and whose parameters render as SQL literals go this way; :func:`plan` returns ``None`` for the
rest and the caller reads them with ``pd.read_sql``. ``COPY`` takes no bind parameters, so the
statement is compiled with its values inlined by SQLAlchemy's own literal renderers (quotes
escaped); the values are the caller's keys and ids, never free SQL.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import CompileError

BLOCK_BYTES = 1 << 22  # Arrow parses the stream in blocks of this size


@dataclass(frozen=True)
class CopyPlan:
    sql: str
    names: list[str]
    types: dict[str, pa.DataType]
    json_columns: list[str]


def _arrow_type(kind) -> pa.DataType | None:
    if isinstance(kind, JSON):
        return pa.string()
    if isinstance(kind, DateTime):
        return pa.timestamp("us", tz="UTC") if kind.timezone else pa.timestamp("us")
    if isinstance(kind, Date):
        return pa.date32()
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, Integer | BigInteger | SmallInteger):
        return pa.int64()
    if isinstance(kind, Float | Numeric):  # read_sql turns Decimals into floats too
        return pa.float64()
    if isinstance(kind, String):  # Text, Unicode, Enum …
        return pa.string()
    return None


def plan(engine: Engine, query) -> CopyPlan | None:
    """How to read ``query`` by COPY, or None when it cannot be (the caller uses read_sql)."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return None
    columns = list(getattr(query, "selected_columns", []))
    if not columns:
        return None
    names = [c.name for c in columns]
    if len(set(names)) != len(names) or any(not n for n in names):
        return None
    types = {}
    for c in columns:
        arrow = _arrow_type(c.type)
        if arrow is None:
            return None
        types[c.name] = arrow
    try:
        sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    except (CompileError, NotImplementedError, TypeError, ValueError):
        return None
    return CopyPlan(sql, names, types, [c.name for c in columns if isinstance(c.type, JSON)])


def columns(conn: Connection, query) -> dict[str, Any] | None:
    """``query``'s columns as arrays, read by COPY: integers as pandas ``Int64`` (NULL is NA: no
    float NaN for a 64-bit hash), the rest as NumPy arrays (text as objects, NULL is None); None
    when the query cannot be (the caller reads it itself)."""
    p = plan(conn.engine, query)
    if p is None:
        return None
    with _copy_out(conn, p) as cp:
        batches = list(_reader(p, cp))
    if not batches:
        return {name: [] for name in p.names}
    table = pa.Table.from_batches(batches)
    # column by column in C: a Python list per value (to_pylist) cost ~1 s per 1M keys
    return {name: _array(table.column(name)) for name in p.names}


def read_columns(conn: Connection, query) -> dict[str, Any]:
    """``query``'s columns: by COPY on PostgreSQL (:func:`columns`), else from a plain execute as
    Python lists (SQLite: small, and no COPY)."""
    found = columns(conn, query)
    if found is None:
        result = conn.execute(query)
        names, rows = list(result.keys()), result.all()
        # built from plain columns: given Row objects, pandas probes each one (7 s for 1M ids)
        found = {name: [r[i] for r in rows] for i, name in enumerate(names)}
    return found


def _array(col: pa.ChunkedArray):
    if pa.types.is_integer(col.type):
        return pd.array(col.to_pandas(types_mapper={col.type: pd.Int64Dtype()}.get), dtype="Int64")
    return col.to_numpy(zero_copy_only=False)


class _Stream(io.RawIOBase):
    """The blocks of a ``COPY … TO STDOUT`` as a readable byte stream (for Arrow's reader)."""

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not len(self._buf):
            try:
                self._buf = memoryview(bytes(next(self._blocks)))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _frame(p: CopyPlan, batches: list) -> pd.DataFrame:
    if not batches or not sum(b.num_rows for b in batches):
        return pd.DataFrame(columns=p.names)  # as read_sql: no rows, untyped columns
    table = pa.Table.from_batches(batches)
    frame = table.to_pandas()
    for name, column in zip(p.names, table.columns, strict=True):
        if column.null_count == len(column):  # as read_sql: a column of NULLs only is None objects
            frame[name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for name in p.json_columns:  # as the JSON type's result processor: SQL NULL and JSON null are None
        frame[name] = pd.Series(
            [None if v is None or v != v else json.loads(v) for v in frame[name].tolist()],
            index=frame.index,
            dtype=object,
        )
    return frame


def frames(conn: Connection, p: CopyPlan, chunk: int | None = None) -> Iterator[pd.DataFrame]:
    """The rows of ``p``'s query in frames of at most ``chunk`` rows (all in one when None);
    nothing for no rows when ``chunk`` is given, one empty frame when it is not."""
    done = False
    try:
        with _copy_out(conn, p) as cp:
            reader = _reader(p, cp)
            pending, rows = [], 0
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                while chunk and rows >= chunk:
                    table = pa.Table.from_batches(pending)
                    yield _frame(p, table.slice(0, chunk).to_batches())
                    rest = table.slice(chunk)
                    pending, rows = rest.to_batches(), rest.num_rows
            if chunk is None or rows:
                yield _frame(p, pending)
        done = True
    finally:
        if not done:  # the caller stopped early: the connection is mid-COPY, never reuse it
            conn.invalidate()


@contextmanager
def _copy_out(conn: Connection, p: CopyPlan):
    """``COPY (query) TO STDOUT`` with dates written as ISO whatever the server's DateStyle
    (``SQL, DMY`` would write 06/12/2026); only for this transaction."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute("SET LOCAL DateStyle TO 'ISO, YMD'")
        with cur.copy(f"COPY ({p.sql}) TO STDOUT (FORMAT csv)") as cp:
            yield cp


def _reader(p: CopyPlan, cp) -> Iterator[pa.RecordBatch]:
    stream = io.BufferedReader(_Stream(cp), BLOCK_BYTES)
    if not stream.peek(1):
        return iter(())
    return iter(
        pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=p.names, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=p.types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,  # "" is an empty string, an unquoted blank NULL
                true_values=["t"],
                false_values=["f"],
            ),
        )
    )
