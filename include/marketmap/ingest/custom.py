"""Custom fields in the warehouse: the ``custom`` column of accounts, contacts and opportunities.

The reader writes each record's custom values as one JSON object (sorted keys, compact):
numbers as numbers, dates as ISO ``YYYY-MM-DD``, booleans as true/false, lists as arrays.
Readers of the warehouse see them as ordinary columns (:func:`expand`), so rubric vectors,
negative indicators, reports and push mappings use a custom field by name like a built-in one.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

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
    shadowed). Numbers become float columns, lists ``a;b`` strings; other values stay as stored."""
    if column not in df.columns or df.empty or not df[column].notna().any():
        return df
    decoded = [decode(v) for v in df[column].to_numpy()]
    names = sorted({k for d in decoded for k in d} - set(df.columns))
    if not names:
        return df
    extra = {}
    for name in names:
        values = [_flat(d.get(name)) for d in decoded]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            extra[name] = pd.Series(values, index=df.index, dtype="float64")
        else:
            extra[name] = pd.Series(values, index=df.index, dtype="object")
    return pd.concat([df, pd.DataFrame(extra, index=df.index)], axis=1)


def rubric_fields(cfg) -> list[str]:
    """The custom account fields the client's rubrics use (vectors, then negative indicators), in order:
    the columns reports show next to the score."""
    custom = {f.name for f in cfg.custom_fields.accounts}
    used = [item.field for r in cfg.icp.rubrics for item in [*r.vectors, *r.negative_indicators]]
    return [f for f in dict.fromkeys(used) if f in custom]
