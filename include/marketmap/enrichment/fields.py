"""Canonical account fields that enrichment can fill, and what counts as a valid value.

The waterfall stops at the first *valid* value: a provider answer is coerced to the
warehouse type of the field (``employees`` a positive number, ``last_funding_date`` a date,
``tech_stack`` a separator-joined string …); anything that cannot be coerced, or a
placeholder such as "unknown" or "n/a", is no value at all and the next provider is tried.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Any

# canonical account field -> kind of value (the warehouse column type)
FILLABLE: dict[str, str] = {
    "name": "text",
    "website": "text",
    "industry": "text",
    "employees": "count",
    "annual_revenue": "amount",
    "country": "text",
    "state": "text",
    "city": "text",
    "account_type": "text",
    "tech_stack": "list",
    "funding_stage": "text",
    "last_funding_date": "date",
    "intent_score": "amount",
}

_PLACEHOLDERS = frozenset({"", "unknown", "n/a", "na", "none", "null", "-", "--", "?", "not available"})
_NUMBER = re.compile(r"^[\s$€£]*([0-9][0-9,_ ]*(?:\.[0-9]+)?)\s*([kmb])?\s*$", re.IGNORECASE)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9}


def is_blank(value: Any) -> bool:
    """True for None, NaN/NaT, pandas NA and empty or whitespace-only strings."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        import pandas as pd

        return bool(pd.isna(value)) if not isinstance(value, list | tuple | dict) else False
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    if isinstance(value, dict | list | tuple | bool):
        return None
    text = str(value).strip()
    return None if text.casefold() in _PLACEHOLDERS else text


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        m = _NUMBER.match(value)
        if not m:
            return None  # ranges ("51-200") and words are not a number
        x = float(m.group(1).replace(",", "").replace("_", "").replace(" ", ""))
        if m.group(2):
            x *= _SCALE[m.group(2).lower()]
    else:
        return None
    return x if math.isfinite(x) and x > 0 else None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _list(value: Any, separator: str) -> str | None:
    if isinstance(value, str):
        items = [t.strip() for t in value.split(separator)]
    elif isinstance(value, list | tuple):
        items = []
        for v in value:
            # provider lists are strings or objects with a name (Apollo current_technologies)
            v = v.get("name") if isinstance(v, dict) else v
            if isinstance(v, str):
                items.append(v.strip())
    else:
        return None
    seen: dict[str, None] = {}
    for item in items:
        if item and item.casefold() not in _PLACEHOLDERS:
            seen.setdefault(item, None)
    return separator.join(seen) if seen else None


def coerce(field: str, value: Any, separator: str = ";") -> Any:
    """The value as the warehouse stores ``field``; None when it is no valid value.

    >>> coerce("employees", "1,200"), coerce("employees", "51-200"), coerce("industry", "n/a")
    (1200.0, None, None)
    """
    if is_blank(value):
        return None
    kind = FILLABLE.get(field, "text")
    if kind == "text":
        return _text(value)
    if kind in ("count", "amount"):
        x = _number(value)
        if x is None:
            return None
        return float(round(x)) if kind == "count" else x
    if kind == "date":
        return _date(value)
    if kind == "list":
        return _list(value, separator)
    return None


def to_json(value: Any) -> Any:
    """A coerced value in a JSON-safe form (dates as ISO strings)."""
    return value.isoformat() if isinstance(value, dt.date) else value


def from_json(field: str, value: Any) -> Any:
    """The inverse of :func:`to_json` for ``field``."""
    if value is None:
        return None
    return _date(value) if FILLABLE.get(field) == "date" else value


def valid_values(raw: dict[str, Any], fields: Iterable[str], separators: dict[str, str]) -> dict[str, Any]:
    """Coerce a provider's canonical answer; keep only ``fields`` with a valid value."""
    out = {}
    for f in fields:
        if f in raw:
            v = coerce(f, raw[f], separators.get(f, ";"))
            if v is not None:
                out[f] = v
    return out
