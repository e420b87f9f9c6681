"""Spreadsheet-safe CSV cells: data never becomes a formula when a CSV is opened in Excel,
LibreOffice or Google Sheets (CSV/formula injection, OWASP).

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading apostrophe, which spreadsheets show as text and never evaluate. Numbers stay
numbers: an ``int``/``float`` (``-5``, ``-1.5e3``) is written as it is, and so is a text
cell that is a plain number (``-5``, ``+44.1``), which a spreadsheet reads as a number,
not a formula. Every CSV the product writes for people or for a CRM import goes through
:func:`safe_cell` (:func:`writer`, :func:`dict_writer`, :func:`safe_frame`).
"""

from __future__ import annotations

import csv
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d+)*|\.\d+)(?:[eE][+-]?\d+)?$")


def safe_cell(value: Any) -> Any:
    """The value to write: formula-looking text gets a leading apostrophe; anything else as is."""
    if isinstance(value, str) and value and value[0] in TRIGGERS and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def safe_row(row) -> list:
    return [safe_cell(v) for v in row]


class _SafeWriter:
    def __init__(self, inner):
        self._w = inner

    def writerow(self, row):
        return self._w.writerow(safe_row(row))

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


class _SafeDictWriter:
    def __init__(self, inner: csv.DictWriter):
        self._w = inner
        self.fieldnames = inner.fieldnames

    def writeheader(self):
        return self._w.writerow({f: safe_cell(f) for f in self._w.fieldnames})

    def writerow(self, row: dict):
        return self._w.writerow({k: safe_cell(v) for k, v in row.items()})

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def writer(fh, *args, **kwargs) -> _SafeWriter:
    """``csv.writer`` whose every cell goes through :func:`safe_cell`."""
    return _SafeWriter(csv.writer(fh, *args, **kwargs))


def dict_writer(fh, *args, **kwargs) -> _SafeDictWriter:
    """``csv.DictWriter`` whose every cell (and header) goes through :func:`safe_cell`."""
    return _SafeDictWriter(csv.DictWriter(fh, *args, **kwargs))


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` for ``to_csv``: text cells neutralised, numeric columns untouched."""
    import pandas as pd

    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(safe_cell, na_action="ignore")
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out
