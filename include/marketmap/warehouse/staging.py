"""A run's staged frames: typed rows handed from one build step to the next through the warehouse.

Each frame is stored as Parquet parts (``PART_ROWS`` rows each, zstd) in ``staged_frames``:
column types survive (dates, booleans with blanks, numbers), a step reads only the columns it
needs, and a part is decoded at a time when a step walks the frame. Staging a frame replaces
what the run staged under that name before, so a retried step stages once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, delete, select

from marketmap.warehouse import insert_rows
from marketmap.warehouse import schema as t

PART_ROWS = 200_000
# Columns Parquet cannot type (mixed Python values in one object column) travel as JSON text;
# their names are kept in the part's metadata so the reader turns them back.
_JSON_COLUMNS = b"marketmap.json_columns"
# Nullable integer columns (pandas Int64, e.g. a 64-bit record hash with blanks) come back as
# such, not as float64, which would round a 64-bit value.
_NULLABLE_INTS = b"marketmap.nullable_int_columns"


def encode(frame: pd.DataFrame, part_rows: int = PART_ROWS) -> list[tuple[int, bytes]]:
    """``frame`` as Parquet parts: ``[(rows, bytes), …]`` (one empty part for an empty frame)."""
    out = []
    for start in range(0, max(len(frame), 1), part_rows):
        out.append(_encode_part(frame.iloc[start : start + part_rows]))
    return out


def _encode_part(part: pd.DataFrame) -> tuple[int, bytes]:
    arrays, as_json = {}, []
    for name in part.columns:
        col = part[name]
        try:
            arrays[name] = pa.array(col, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. numbers and text in one object column
            as_json.append(name)
            arrays[name] = pa.array(
                [None if v is None or (isinstance(v, float) and v != v) else json.dumps(v, default=str)
                 for v in col.tolist()], type=pa.large_string())  # fmt: skip
    table = pa.table(arrays)
    ints = [name for name in part.columns if isinstance(part[name].dtype, pd.Int64Dtype)]
    if as_json or ints:
        table = table.replace_schema_metadata({_JSON_COLUMNS: json.dumps(as_json).encode(),
                                               _NULLABLE_INTS: json.dumps(ints).encode()})  # fmt: skip
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return len(part), buf.getvalue()


def decode(data: bytes, columns: list[str] | None = None) -> pd.DataFrame:
    """One Parquet part back as a frame (only ``columns`` when given; missing ones are left out)."""
    pf = pq.ParquetFile(io.BytesIO(data))
    meta = pf.schema_arrow.metadata or {}
    names = pf.schema_arrow.names
    table = pf.read(columns=[c for c in columns if c in names] if columns is not None else None)
    ints = set(json.loads(meta.get(_NULLABLE_INTS, b"[]")))
    frame = table.to_pandas()
    for name in ints & set(frame.columns):
        frame[name] = table.column(name).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array
    for name in json.loads(meta.get(_JSON_COLUMNS, b"[]")):
        if name in frame:
            frame[name] = pd.Series(
                [None if v is None else json.loads(v) for v in frame[name].tolist()],
                index=frame.index,
                dtype=object,
            )
    return frame


def clear(conn: Connection, client_id: str, run_id: str, obj: str | None = None) -> None:
    """Remove the run's staged frames (``obj``'s only, when given)."""
    s = t.staged_frames.c
    q = delete(t.staged_frames).where(s.client_id == client_id, s.run_id == run_id)
    conn.execute(q if obj is None else q.where(s.object == obj))


def put(conn: Connection, client_id: str, run_id: str, obj: str, parts: list[tuple[int, bytes]]) -> None:
    """Replace the run's staged frame ``obj`` by ``parts`` (from :func:`encode`), in the caller's transaction."""
    clear(conn, client_id, run_id, obj)
    insert_rows(
        conn,
        t.staged_frames,
        [
            {"client_id": client_id, "run_id": run_id, "object": obj, "part": i, "rows": rows, "data": data}
            for i, (rows, data) in enumerate(parts)
        ],
    )


def stage(engine: Engine, client_id: str, run_id: str, obj: str, frame: pd.DataFrame) -> None:
    """Replace the run's staged frame ``obj`` by ``frame``."""
    parts = encode(frame)
    with engine.begin() as conn:
        put(conn, client_id, run_id, obj, parts)


@contextmanager
def _connected(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Connection):  # the caller's transaction
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def parts(
    bind: Engine | Connection, client_id: str, run_id: str, obj: str, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The staged frame ``obj`` part by part (one part in memory at a time); nothing if never staged."""
    s = t.staged_frames.c
    base = select(s.part).where(s.client_id == client_id, s.run_id == run_id, s.object == obj)
    with _connected(bind) as conn:
        numbers = conn.execute(base.order_by(s.part)).scalars().all()
    for n in numbers:
        with _connected(bind) as conn:
            data = conn.execute(
                select(s.data).where(
                    s.client_id == client_id, s.run_id == run_id, s.object == obj, s.part == n
                )
            ).scalar_one()
        yield decode(data, columns)


def read(
    bind: Engine | Connection, client_id: str, run_id: str, obj: str, columns: list[str] | None = None
) -> pd.DataFrame | None:
    """The whole staged frame ``obj`` (``None`` when the run never staged it)."""
    frames = list(parts(bind, client_id, run_id, obj, columns))
    if not frames:
        return None
    frames = [f for f in frames if len(f)] or frames[:1]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    del frames
    pa.default_memory_pool().release_unused()  # the decoded parts' pages, which Arrow's allocator keeps
    return frame


def rows(bind: Engine | Connection, client_id: str, run_id: str, obj: str) -> int:
    """How many rows the run staged under ``obj``."""
    from sqlalchemy import func

    s = t.staged_frames.c
    with _connected(bind) as conn:
        return int(
            conn.execute(
                select(func.coalesce(func.sum(s.rows), 0)).where(
                    s.client_id == client_id, s.run_id == run_id, s.object == obj
                )
            ).scalar_one()
        )
