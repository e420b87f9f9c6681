"""Numbers as people read them: money in the client's currency, dates in the client's timezone.

``money`` writes amounts like ``$1.2M``, ``€850k`` or ``SEK 12.5M``; the currency is the client's
(``crm.export.currency``, the currency amounts are stored in). Reports set it once per report with
:func:`use_currency`; alerts pass it explicitly.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from zoneinfo import ZoneInfo

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$"}
_CURRENCY: ContextVar[str] = ContextVar("marketmap_currency", default="USD")


def client_currency(cfg) -> str:
    """The currency a client's amounts are stored in (ISO 4217 code)."""
    return str(cfg.crm.export.currency).upper()


@contextmanager
def use_currency(code: str) -> Iterator[None]:
    token = _CURRENCY.set(code.upper())
    try:
        yield
    finally:
        _CURRENCY.reset(token)


def current_currency() -> str:
    return _CURRENCY.get()


def currency_label(code: str | None = None) -> str:
    """What an axis or column says the amounts are in: ``$``, ``€``, ``SEK``."""
    code = (code or _CURRENCY.get()).upper()
    return SYMBOLS.get(code, code)


def _nozero(text: str) -> str:
    """``-0%`` / ``-$0`` / ``-0`` (a tiny negative rounded away) read as zero."""
    return text[1:] if text.startswith("-") and not any(ch in "123456789" for ch in text) else text


def money(v: float | None, currency: str | None = None) -> str:
    """``$1.2M``-style amount in ``currency`` (default: the current report's)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    code = (currency or _CURRENCY.get()).upper()
    sign = SYMBOLS.get(code)
    a = abs(v)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            body = f"{a / div:,.1f}{suffix}"
            break
    else:
        body = f"{a:,.0f}"
    text = f"{sign}{body}" if sign else f"{code} {body}"
    return _nozero(("-" if v < 0 else "") + text)


def day(when: dt.datetime, tz: ZoneInfo | None = None) -> str:
    """``Sat 5 Dec 2026`` in the client's timezone."""
    local = when.astimezone(tz) if tz else when
    return f"{local:%a} {local.day} {local:%b %Y}"


def raised_line(raised: dt.datetime, as_of: dt.datetime, tz: ZoneInfo | None = None) -> str:
    """When an alert was raised, and for which run when that is an earlier period (a catch-up).

    ``as_of`` is the end of the run's data interval; a run more than a day behind the wall clock is
    a catch-up or a re-run, and its numbers describe that date, not today.
    """
    local = raised.astimezone(tz) if tz else raised
    text = f"raised {day(raised, tz)} {local:%H:%M} {local.tzname() or ''}".rstrip()
    if raised - as_of > dt.timedelta(days=1):
        text += f" by a catch-up run for {day(as_of, tz)}: the numbers are as of that date"
    return text
