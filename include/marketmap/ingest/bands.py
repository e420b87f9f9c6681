"""Bands and ranges as CRM exports and data vendors write them.

``20 - 49``, ``1,000 - 4,999``, ``10,000+``, ``10,001+ employees``, ``$1M-$5M``, ``€500K – €1M``,
``Under $1M``, ``< 10``, ``More than 5,000``, ``1B+``.

Rules:

* **Ends.** ``a - b`` (also ``–``, ``—`` or ``to``) is the range [a, b]; ``a+``, ``a or more``,
  ``over a``, ``more than a``, ``> a`` and ``>= a`` are open-ended (high = None); ``under a``,
  ``less than a``, ``up to a``, ``< a`` and ``<= a`` run from 0 to a. ``a`` must not exceed ``b``.
* **Numbers.** Thousands separators group by three (``1,000``); a suffix ``K``, ``M``/``MM`` or
  ``B``/``BN`` multiplies by a thousand, a million or a billion — only inside a band, where the
  writer meant a bracket, never for a single number (``1.2M`` employees stays a warning).
  A trailing word ``employees`` / ``people`` is ignored.
* **Money.** A currency sign or ISO code (``$``, ``€``, ``£``, ``USD``) may prefix or follow an end;
  both ends must agree. The reader converts the range like any amount (``crm.export.fx_rates``).
* **Representative value** (what ``employees`` / ``annual_revenue`` hold, what ``bands`` vectors
  score and what valuation multiplies): the midpoint of a closed range, the low end of an
  open-ended one (``10,000+`` -> 10,000: never a guessed upper end), half the high end of
  ``under a``. The range itself is kept in ``<field>_low`` / ``<field>_high``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_MULT = {"": 1.0, "K": 1e3, "M": 1e6, "MM": 1e6, "B": 1e9, "BN": 1e9}
_SIGNS = {"$": "$", "€": "EUR", "£": "GBP", "¥": "JPY"}
_NUM = r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?"


def _end(i: int) -> str:
    """One end of a band: optional currency before, the number, optional unit and currency after."""
    return (rf"(?P<pre{i}>[$€£¥]|[A-Z]{{3}}\s?)?\s*(?P<num{i}>{_NUM})\s*(?P<suf{i}>MM|BN|[KMB])?"
            rf"\s*(?P<post{i}>[A-Z]{{3}})?")  # fmt: skip


_TAIL = r"\s*(?:EMPLOYEES|EMPLOYEE|PEOPLE|STAFF|EMP\.?)?\s*$"
_CLOSED = re.compile(rf"^\s*{_end(1)}\s*(?:-|–|—|TO)\s*{_end(2)}{_TAIL}")
_OPEN_HIGH = re.compile(
    rf"^\s*(?:(?:OVER|MORE THAN|ABOVE|>=|>)\s*{_end(1)}|{_end(3)}\s*(?:\+|OR MORE|AND ABOVE|AND OVER)){_TAIL}"
)
_OPEN_LOW = re.compile(rf"^\s*(?:UNDER|LESS THAN|BELOW|UP TO|<=|<)\s*{_end(1)}{_TAIL}")


def _value(m: re.Match, i: int) -> tuple[float, str | None]:
    num = float(m.group(f"num{i}").replace(",", ""))
    suf = m.group(f"suf{i}") or ""
    pre = (m.group(f"pre{i}") or "").strip()
    post = (m.group(f"post{i}") or "").strip()
    if pre and post:
        raise ValueError("two currencies")
    cur = _SIGNS.get(pre, pre) or post or None
    return num * _MULT[suf], cur


def parse_band(text: str) -> tuple[float, float | None, str | None, bool] | None:
    """(low, high, currency tag, has unit suffix) of one band, or None when it is no band."""
    if not isinstance(text, str):
        return None
    s = text.strip().upper().replace("\u00a0", " ")
    try:
        if m := _CLOSED.match(s):
            (a, ca), (b, cb) = _value(m, 1), _value(m, 2)
            if ca and cb and ca != cb:
                return None
            if a > b:
                return None
            return a, b, ca or cb, bool(m.group("suf1") or m.group("suf2"))
        if m := _OPEN_HIGH.match(s):
            i = 1 if m.group("num1") else 3
            a, ca = _value(m, i)
            return a, None, ca, bool(m.group(f"suf{i}"))
        if m := _OPEN_LOW.match(s):
            b, cb = _value(m, 1)
            return 0.0, b, cb, bool(m.group("suf1"))
    except ValueError:
        return None
    return None


def representative(low: float, high: float | None) -> float:
    """The one number a band stands for: midpoint, low end when open-ended, half of ``under b``."""
    if high is None:
        return low
    return (low + high) / 2


def parse_bands(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Series]:
    """Per cell: (is a band, low, high (NaN when open), currency tag or None). Parsed once per distinct value."""
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    parsed = [parse_band(u) for u in uniques]
    ok_u = np.array([p is not None for p in parsed] + [False], dtype=bool)
    low_u = np.array([p[0] if p else np.nan for p in parsed] + [np.nan], dtype="float64")
    high_u = np.array(
        [(np.nan if p[1] is None else p[1]) if p else np.nan for p in parsed] + [np.nan], dtype="float64"
    )
    tag_u = np.array([p[2] if p else None for p in parsed] + [None], dtype=object)
    idx = np.where(codes < 0, len(uniques), codes)
    return ok_u[idx], low_u[idx], high_u[idx], pd.Series(tag_u[idx], index=raw.index, dtype="object")
