"""Value helpers shared by the sync engine and the adapters: canonical comparison,
normalisation of identity values (LinkedIn URLs, e-mails) and translation to CRM values."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

from marketmap.ingest.domains import normalise_domains, normalise_names

_LINKEDIN = re.compile(r"^(?:https?://)?(?:[a-z]{2,3}\.)?linkedin\.com/", re.I)


def is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def canonical(value: Any) -> str | None:
    """A comparable form: ``87.50``, ``"87.5"`` and ``87.5`` are equal; blank is None.

    Remembered per value (and type: ``True`` is not ``1``): a push compares a million records'
    tiers, scores and states, most of them values seen before.
    """
    try:
        return _canonical_cached(value)
    except TypeError:  # unhashable (a list or a dict from a JSON column)
        return _canonical(value)


def _canonical(value: Any) -> str | None:
    """A comparable form: ``87.50``, ``"87.5"`` and ``87.5`` are equal; blank is None.

    CRMs hand values back in their own types (HubSpot: every property is a string), so
    values are compared in this form, never raw.
    """
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(float(value))
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    s = str(value).strip()
    low = s.lower()
    if low in ("true", "false"):
        return low
    try:
        f = float(s.replace(",", "")) if _looks_numeric(s) else None
    except ValueError:
        f = None
    return _num(f) if f is not None and math.isfinite(f) else s


_canonical_cached = functools.lru_cache(maxsize=1 << 16, typed=True)(_canonical)


def _looks_numeric(s: str) -> bool:
    return bool(re.fullmatch(r"[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][+-]?\d+)?", s)) and any(
        c.isdigit() for c in s
    )


def _num(f: float) -> str:
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return repr(round(f, 6))


def same(a: Any, b: Any) -> bool:
    return canonical(a) == canonical(b)


def normalise_email(value: Any) -> str | None:
    return None if is_blank(value) else str(value).strip().lower()


def normalise_linkedin(value: Any) -> str | None:
    """``https://www.LinkedIn.com/in/Jane-Doe/?trk=x`` -> ``linkedin.com/in/jane-doe``."""
    if is_blank(value):
        return None
    s = str(value).strip()
    s = _LINKEDIN.sub("linkedin.com/", s)
    s = s.split("?", 1)[0].split("#", 1)[0].rstrip("/").lower()
    return s or None


def truthy(value: Any) -> bool:
    """A CRM checkbox value: True, "true", "1", "yes" (HubSpot sends strings)."""
    if isinstance(value, bool):
        return value
    if is_blank(value):
        return False
    return str(value).strip().lower() in ("1", "true", "t", "yes", "y", "x")


def outgoing(value: Any) -> Any:
    """A JSON-safe value to send: floats rounded to cents, whole floats as int, dates ISO."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        v = round(value, 2)
        return int(v) if v == int(v) else v
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def translate(value: Any, picklist: dict[str, str] | None, normalisation: dict[str, str] | None) -> Any:
    """Market Map value -> CRM value: picklist translation, then value normalisation.

    Both lookups ignore case and surrounding spaces, so ``calif.`` finds ``Calif.``.
    """
    return translate_by(value, lookups(picklist, normalisation))


def lookups(*tables: dict[str, str] | None) -> tuple[dict[str, str], ...]:
    """Each table keyed by its entries' lowercased, stripped text (the first entry of a text wins):
    what :func:`translate_by` looks values up in, built once per field rather than per value."""
    out = []
    for table in tables:
        lowered: dict[str, str] = {}
        for raw, crm in (table or {}).items():
            lowered.setdefault(str(raw).strip().lower(), crm)
        out.append(lowered)
    return tuple(out)


def translate_by(value: Any, tables: tuple[dict[str, str], ...]) -> Any:
    """:func:`translate` with the tables of :func:`lookups`: each applied in turn."""
    if is_blank(value):
        return None
    for table in tables:
        if table:
            value = table.get(str(value).strip().lower(), value)
    return value


def domains_of(values: Iterable[Any]) -> list[str | None]:
    """Registrable domains of many websites at once (the public-suffix check is vectorised;
    calling it value by value is much slower)."""
    vals = list(values)
    uniq = sorted({str(v) for v in vals if not is_blank(v)})
    if not uniq:
        return [None] * len(vals)
    found = dict(zip(uniq, normalise_domains(pd.Series(uniq, dtype="str")).tolist(), strict=True))
    return [None if is_blank(v) else found[str(v)] for v in vals]


def names_of(values: Iterable[Any]) -> list[str]:
    """Company names normalised for matching, many at once."""
    vals = ["" if is_blank(v) else str(v) for v in values]
    if not vals:
        return []
    return normalise_names(pd.Series(vals, dtype="str")).tolist()
