"""Custom fields in the warehouse: the ``custom`` column of accounts, contacts and opportunities.

The reader writes each record's custom values as one JSON object (sorted keys, compact):
numbers as numbers, dates as ISO ``YYYY-MM-DD``, booleans as true/false, lists as arrays.
Readers of the warehouse see them as ordinary columns (:func:`expand`), so rubric vectors,
negative indicators, reports and push mappings use a custom field by name like a built-in one.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa

LIST_JOIN = ";"  # how a list value reaches vectors: any_of vectors split on ";" by default


def decode(value) -> dict:
    """The custom values of one stored record ({} when none)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {}
    if isinstance(value, dict):
        return value
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _flat(v):
    return LIST_JOIN.join(str(x) for x in v) if isinstance(v, list) else v


def expand(df: pd.DataFrame, column: str = "custom") -> pd.DataFrame:
    """``df`` with one column per custom field found in ``column`` (a built-in column is never
    shadowed). Numbers become float columns, dates datetimes, lists ``a;b`` strings, booleans
    booleans (None when unknown), text stays text.

    The objects are parsed in one pass by Arrow's JSON reader (5x faster than json.loads per row:
    1 s for 200,000 rows of five fields); what Arrow cannot type falls back to Python's json.
    """
    if column not in df.columns or df.empty or not df[column].notna().any():
        return df
    try:
        extra = _expand_arrow(df[column])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        extra = _expand_python(df[column])
    extra = extra[[c for c in sorted(extra.columns) if c not in df.columns]]
    if not len(extra.columns):
        return df
    extra.index = df.index
    return pd.concat([df, extra], axis=1)


def _expand_arrow(stored: pd.Series) -> pd.DataFrame:
    import pyarrow.compute as pc
    import pyarrow.json as pajson

    text = stored.where(stored.notna(), "{}").astype(str)
    body = ("\n".join(text.tolist()) + "\n").encode("utf-8")
    table = pajson.read_json(io.BytesIO(body), read_options=pajson.ReadOptions(block_size=1 << 26))
    if table.num_rows != len(stored):
        raise pa.ArrowInvalid("row count")
    out = {}
    for name in table.column_names:
        col = table[name]
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            col = pc.binary_join(pc.cast(col, pa.list_(pa.string())), LIST_JOIN)
            out[name] = pd.Series(col.to_pylist(), dtype="object")
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            out[name] = pd.Series(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")
        elif pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            out[name] = pd.Series(pd.to_datetime(col.to_pandas()), dtype="datetime64[ns]")
        elif pa.types.is_boolean(col.type) or pa.types.is_string(col.type) or pa.types.is_null(col.type):
            out[name] = pd.Series(col.to_pylist(), dtype="object")
        else:
            raise pa.ArrowNotImplementedError(f"custom field {name}: {col.type}")
    return pd.DataFrame(out)


def _expand_python(stored: pd.Series) -> pd.DataFrame:
    decoded = [decode(v) for v in stored.to_numpy()]
    names = sorted({k for d in decoded for k in d})
    out = {}
    for name in names:
        values = [_flat(d.get(name)) for d in decoded]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            out[name] = pd.Series(values, dtype="float64")
        else:
            out[name] = pd.Series(values, dtype="object")
    return pd.DataFrame(out, index=range(len(stored)))


def rubric_fields(cfg) -> list[str]:
    """The custom account fields the client's rubrics use (vectors, then negative indicators), in order:
    the columns reports show next to the score."""
    custom = {f.name for f in cfg.custom_fields.accounts}
    used = [item.field for r in cfg.icp.rubrics for item in [*r.vectors, *r.negative_indicators]]
    return [f for f in dict.fromkeys(used) if f in custom]
