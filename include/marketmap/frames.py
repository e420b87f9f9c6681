"""Small helpers for the canonical DataFrames shared by scoring, analysis and reports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def truthy(series: pd.Series) -> pd.Series:
    """Booleans from CRM values (True, "true", "Yes", 1); missing is False."""

    def one(v: Any) -> bool:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return False
        if isinstance(v, str):
            return v.strip().lower() in {"true", "t", "yes", "y", "1"}
        return bool(v)

    return series.astype(object).map(one).astype(bool)


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """``df[name]``, or an all-missing column when the frame lacks it."""
    return df[name] if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def isin(values, wanted) -> np.ndarray:
    """Which ``values`` are among ``wanted`` (a set or any array of keys), by an object hash table.

    pandas 3 gives a column or index of strings its Arrow ``str`` dtype, whose ``isin`` turns every
    wanted value into an Arrow scalar first: 1M stored keys against 1M took 4.8 s, 0.6 s this way.
    Use it where both sides can be large (a client's keys); small constant lists need nothing."""
    wanted = wanted if isinstance(wanted, set) else pd.Index(np.asarray(wanted, dtype=object), dtype=object)
    return np.asarray(pd.Index(np.asarray(values, dtype=object), dtype=object).isin(wanted))
