"""Read CRM export files (Salesforce or HubSpot CSV) into typed canonical frames.

Tolerant where a row is usable, strict where it is not, and never a wrong value:

* **File level** (:class:`IngestError`, nothing is loaded): missing file, wrong encoding,
  empty file, duplicate or missing required columns, a file that cannot be tokenised
  reliably (Arrow gives up, or more than :data:`MAX_BAD_SHAPE_SHARE` of its records have
  the wrong number of fields), or dates whose day/month order cannot be decided.
* **Row level** (:class:`Rejected`, that row alone is left out, with its physical line):
  no usable key (blank, ``#N/A`` or Excel-mangled ``1.84330E+11`` Id), the wrong number of
  fields, NUL bytes, contradictory flags (IsWon=true on a Closed Lost stage), an
  impossible date in a key field, a second different record with the same CRM id.
* **Field level** (a warning, the value is nulled, the row is kept): an optional value
  that is not what the field holds (``50-200``, ``N/A``, ``1.2M``, ``€2.5M``, ``-5``,
  ``1e309`` employees; an unparseable website or e-mail; an amount in a currency that
  cannot be converted; an impossible date).

Numbers are parsed strictly: thousands separators must group by three, a range or a
unit suffix is never arithmetic, a currency sign or code must be the amount's currency
(the row's currency column, else ``crm.export.currency``) or one with a configured rate.
Dates: ISO 8601 (any offset), Excel serials, and ``d/m/y`` or ``m/d/y`` in the file's
order, decided from its unambiguous values (``25/03/2024``) or ``crm.export.date_order``.
Salesforce 15-character ids become their 18-character form, so both spellings of one
record are one id.

``row_number`` is the physical line of the record in the file (the header is line 1);
for a file without blank lines or line breaks inside quoted values that is also its
spreadsheet row.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from marketmap.ingest.bands import parse_bands, representative
from marketmap.ingest.schema import (
    AUX_FIELDS,
    CURRENCY_COLUMNS,
    FIELDS,
    MULTI_ID_FIELDS,
    RANGE_FIELDS,
    REQUIRED,
    CustomSpec,
    column_map,
)

TRUE_VALUES = {"1", "true", "t", "yes", "y", "x"}
FALSE_VALUES = {"0", "false", "f", "no", "n"}
# A file with more records of the wrong shape than this cannot be tokenised reliably.
MAX_BAD_SHAPE_SHARE = 0.10
# Values that stand for "no id" in exports and spreadsheets.
_NO_ID = {"#n/a", "n/a", "na", "null", "none", "nan", "#ref!", "#value!", "#name?", "-", "0"}
_EXCEL_MANGLED = r"^[0-9](?:[.,][0-9]+)?[eE]\+?[0-9]+$"
_NO_ID_ARROW = pa.array(sorted(_NO_ID), type=pa.large_string())
# Key fields: a bad value rejects the row (the row cannot be attached or identified).
KEY_FIELDS = {"crm_id"}
# Amount fields carry a currency; count fields are whole, non-negative numbers.
AMOUNT_FIELDS = {"annual_revenue", "current_arr", "amount"}
NON_NEGATIVE = {"employees", "annual_revenue", "current_arr"}
SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
DOLLARS = {"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN"}
_EMAIL = r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"'.]{2,}$"
# The same in RE2 syntax for Arrow, whose \s is ASCII only: Python's \s in a str pattern also
# takes \v, \x1c-\x1f, NEL and the Unicode separators (\pZ).
_NOT_EMAIL_CHAR = r"\s\x{0b}\x{1c}-\x{1f}\x{85}\pZ@<>,;\"'"
_EMAIL_ARROW = rf"^[^{_NOT_EMAIL_CHAR}]+@[^{_NOT_EMAIL_CHAR}]+\.[^{_NOT_EMAIL_CHAR}.]{{2,}}$"
_HOST = r"(?i)^(?:[a-z][a-z0-9+.\-]*://)?(?:[^@/\s]+@)?(?:[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?\.)+[\p{L}\p{N}\-]{2,}\.?(?::[0-9]+)?(?:[/?#].*)?$"  # noqa: E501


class IngestError(Exception):
    """A whole file cannot be read; the message names the file and what was expected."""


@dataclass(frozen=True)
class Rejected:
    """A rejected row (or, in :attr:`ReadResult.warnings`, a nulled field of a kept row)."""

    file: str
    row_number: int
    field: str | None
    value: str | None
    reason: str


@dataclass
class ReadResult:
    frame: pd.DataFrame  # canonical columns + source_row
    rejected: list[Rejected]
    file: str
    rows_read: int
    missing_optional: list[str]
    warnings: list[Rejected] = field(default_factory=list)
    delimiter: str = ","
    date_order: str | None = None
    blank_rows: int = 0


@dataclass(frozen=True)
class ReadOptions:
    """Per-client reading options (``crm.export``)."""

    currency: str = "USD"
    fx_rates: dict[str, float] = field(default_factory=dict)  # 1 unit of X = rate units of currency
    date_order: str = "auto"  # auto | dmy | mdy
    delimiter: str = "auto"  # auto | , | ; | \t | |
    decimal: str = "auto"  # auto | . | ,


def _decode(path: Path, encoding: str) -> tuple[bytes, str]:
    """The file as UTF-8 bytes for the reader, and its first MiB as text for the header.

    A UTF-8 file is checked piece by piece and handed on as it is: never one ``str`` of the
    whole file (a 1M-row export with a non-ASCII name would cost four bytes a character).
    """
    raw = path.read_bytes()
    if not raw or raw.isspace():  # not raw.strip(): that copies the whole file
        raise IngestError(f"{path}: the file is empty (expected a header row and records)")
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise IngestError(f"{path}: unknown encoding '{encoding}' in crm.export.encoding") from None
    try:
        if codec in ("utf-8", "utf-8-sig") and _valid_utf8(raw):
            body = raw[3:] if codec == "utf-8-sig" and raw.startswith(codecs.BOM_UTF8) else raw
        elif codec in ("utf-8", "utf-8-sig"):  # not valid: find where, piece by piece, for the message
            skip = 3 if codec == "utf-8-sig" and raw.startswith(codecs.BOM_UTF8) else 0
            step, decoder = 1 << 24, codecs.getincrementaldecoder("utf-8")()
            for start in range(skip, len(raw), step):
                try:
                    decoder.decode(raw[start : start + step], final=start + step >= len(raw))
                except UnicodeDecodeError as e:  # e.start counts from the bytes held back from the last piece
                    e.start += start - len(decoder.getstate()[0])
                    raise
            body = raw[skip:]
        else:
            body = raw.decode(codec).encode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise IngestError(
            f"{path}: not valid {encoding} text (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}); "
            "export the file as UTF-8, or set crm.export.encoding in the client config (e.g. cp1252)"
        ) from None
    return body, body[: 1 << 20].decode("utf-8", errors="ignore")


def _valid_utf8(raw: bytes) -> bool:
    """Is ``raw`` valid UTF-8? Checked by Arrow's validator on the bytes in place (decoding to a
    ``str`` piece by piece took ~0.6 s per 300 MB)."""
    offsets = pa.py_buffer(np.array([0, len(raw)], dtype=np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(raw)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _delimiter(text: str, wanted: str) -> str:
    if wanted != "auto":
        return "\t" if wanted in ("\\t", "tab") else wanted
    first = text[: 1 << 16].split("\n", 1)[0]
    best, fields = ",", 0
    for d in (",", ";", "\t", "|"):
        n = len(next(csv.reader([first], delimiter=d), []))
        if n > fields:
            best, fields = d, n
    return best


def _header(text: str, path: Path, delimiter: str) -> list[str]:
    try:
        # only the first lines: the header never spans the whole file
        header = next(csv.reader(io.StringIO(text[: 1 << 20]), delimiter=delimiter))
    except StopIteration:
        raise IngestError(f"{path}: the file is empty (expected a header row)") from None
    header = [h.strip().lstrip("\ufeff").strip() for h in header]
    dups = sorted(h for h, n in Counter(header).items() if n > 1)
    if dups:
        raise IngestError(f"{path}: duplicate column names in the header: {', '.join(dups)}")
    return header


def _blank(s: pd.Series) -> pd.Series:
    arr = pa.array(s, type=pa.large_string())
    empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), True)
    return pd.Series(empty.to_numpy(zero_copy_only=False), index=s.index)


def _arrow_read(body: bytes, header: list[str], delimiter: str, threads: bool, bad: list) -> pa.Table:
    def on_invalid(row) -> str:
        bad.append((row.number, row.actual_columns, row.text))
        return "skip"

    return pacsv.read_csv(
        io.BytesIO(body),
        read_options=pacsv.ReadOptions(
            column_names=header, skip_rows=1, block_size=1 << 24, use_threads=threads
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.large_string()),
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _looks_like_records(text: str, header: list[str], delimiter: str) -> bool:
    """Does a value hold whole lines that are records themselves (an unbalanced quote)?"""
    parts = text.split("\n")[1:]
    return any(
        len(next(csv.reader([ln], delimiter=delimiter), [])) >= len(header) for ln in parts if ln.strip()
    )


def _check_swallowed(table: pa.Table, bad: list, header: list[str], delimiter: str, path: Path) -> None:
    """An unbalanced quote makes one value of the lines after it: those records would be lost
    without a trace, so the file cannot be tokenised reliably and is refused whole."""
    for number, _, text in bad:
        if "\n" in text and (len(header) < 2 or _looks_like_records(text, header, delimiter)):
            raise IngestError(
                f"{path}: the file cannot be tokenised reliably: an unbalanced quote in row {number} swallows the "
                f"lines after it ({text.count(chr(10))} line breaks in one record); fix the quoting and re-export"
            )
    for col in table.column_names:
        arr = table[col]
        has_nl = pc.fill_null(pc.match_substring(arr, "\n"), False)
        if not pc.any(has_nl).as_py():
            continue
        for number, value in zip(
            np.flatnonzero(has_nl.to_numpy(zero_copy_only=False)), arr.filter(has_nl).to_pylist(), strict=True
        ):
            if _looks_like_records(value, header, delimiter):
                raise IngestError(
                    f"{path}: the file cannot be tokenised reliably: a value of {col} in record {number + 1} holds "
                    "whole records (an unbalanced quote); fix the quoting and re-export"
                )


def _record_lines(body: bytes, delimiter: str, records: int) -> np.ndarray | None:
    """Physical line (1-based) of every record after the header, if each record is one line."""
    buf = np.frombuffer(body, dtype=np.uint8)
    # the line ends, a MiB at a time: the comparison stays in the CPU's cache (10x faster than
    # one pass over a 300 MB file)
    step = 1 << 20
    ends = np.concatenate([np.flatnonzero(buf[at : at + step] == 10) + at for at in range(0, len(buf), step)] or [[]])
    ends = ends.astype(np.int64)
    starts = np.r_[0, ends + 1]
    ends = np.r_[ends, len(buf)]
    length = ends - starts
    # a line holding only "\r" is empty too
    cr_only = (
        (length == 1) & (buf[np.minimum(starts, max(len(buf) - 1, 0))] == 13) if len(buf) else length > 0
    )
    nonempty = np.flatnonzero((length > 0) & ~cr_only) + 1
    lines = nonempty[nonempty > 1]  # the header is line 1
    return lines if len(lines) == records else None


def _record_lines_slow(text: str, delimiter: str) -> np.ndarray:
    """Start line of each non-empty record (records spanning lines: quoted line breaks)."""
    out = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    prev = 0
    for row in reader:
        if reader.line_num == 1:
            prev = 1
            continue
        if row:
            out.append(prev + 1)
        prev = reader.line_num
    return np.asarray(out, dtype=np.int64)


def _read_table(
    body: bytes, header: list[str], path: Path, delimiter: str
) -> tuple[pd.DataFrame, np.ndarray, list]:
    """Every column as text (Arrow's multi-threaded reader, quoted newlines allowed), each
    record's physical line, and the records of the wrong shape as (line, fields, text)."""
    bad: list = []
    try:
        table = _arrow_read(body, header, delimiter, True, bad)
        if bad:  # row numbers are only known to the single-threaded reader
            bad = []
            table = _arrow_read(body, header, delimiter, False, bad)
    except pa.ArrowInvalid as e:
        raise IngestError(
            f"{path}: the file cannot be tokenised ({e}); expected {len(header)} fields per row"
        ) from None
    total = table.num_rows + len(bad)
    if bad and len(bad) > max(3, MAX_BAD_SHAPE_SHARE * total):
        raise IngestError(
            f"{path}: the file cannot be tokenised reliably: {len(bad):,} of {total:,} records do not have "
            f"{len(header)} fields (first at row {bad[0][0]}); check the delimiter and quoting"
        )
    _check_swallowed(table, bad, header, delimiter, path)
    lines = _record_lines(body, delimiter, total)
    if lines is None:
        lines = _record_lines_slow(body.decode("utf-8"), delimiter)
    # Arrow numbers a bad record by its row in the file (header = 1); its physical line is
    # that record's line, which differs when quoted values span lines.
    ordinals = [n - 2 if n is not None else None for n, _, _ in bad]
    known = len(lines) == total and all(k is not None and 0 <= k < total for k in ordinals)
    if known:
        bad_rows = [(int(lines[k]), n, txt) for k, (_, n, txt) in zip(ordinals, bad, strict=True)]
        good_lines = np.delete(lines, ordinals)
    else:
        bad_rows = [((k or 0) + 2, n, txt) for k, (_, n, txt) in zip(ordinals, bad, strict=True)]
        good_lines = lines if len(lines) == table.num_rows else np.arange(table.num_rows) + 2
    text_dtype = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' own "str" dtype
    df = table.to_pandas(types_mapper=lambda t: text_dtype if t == pa.large_string() else None)
    return df, good_lines, bad_rows


# --------------------------------------------------------------------------- numbers


def _number_regex(decimal: str) -> str:
    sep = r"[. \x{00a0}\x{202f}']" if decimal == "," else r"[, \x{00a0}\x{202f}']"
    dec = "," if decimal == "," else r"\."
    num = rf"(?:[0-9]{{1,3}}(?:{sep}[0-9]{{3}})+|[0-9]+)(?:{dec}[0-9]+)?(?:[eE][+-]?[0-9]+)?|{dec}[0-9]+"
    cur = r"[$€£¥]|[A-Za-z]{3}"
    return rf"^(?P<pre>{cur})?\s*(?P<sign>[+-]?)\s*(?P<num>{num})\s*(?P<post>{cur})?$"


def _parse_numbers(raw: pd.Series, decimal: str) -> tuple[pd.Series, pd.Series]:
    """(value, currency tag or None) of each cell; value NaN where the cell is no plain number."""
    arr = pc.utf8_trim_whitespace(pa.array(raw, type=pa.large_string()))
    # Fast path: most cells are plain digits; only the others go through the full pattern.
    plain = pc.fill_null(pc.match_substring_regex(arr, r"^-?[0-9]{1,15}$"), False)
    if pc.all(pc.or_(plain, pc.is_null(arr))).as_py():
        values = pc.cast(pc.if_else(plain, arr, pa.scalar(None, pa.large_string())), pa.float64())
        return (pd.Series(values.to_numpy(zero_copy_only=False), index=raw.index, dtype="float64"),
                pd.Series(None, index=raw.index, dtype="object"))  # fmt: skip
    if pc.sum(plain).as_py() > len(arr) // 2:
        rest = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
        fast = pc.cast(pc.if_else(plain, arr, pa.scalar(None, pa.large_string())), pa.float64())
        values = fast.to_numpy(zero_copy_only=False).copy()
        sub_values, sub_tag = _parse_numbers(
            pd.Series(arr.take(pa.array(rest)).to_pandas(), dtype="object"), decimal
        )
        values[rest] = sub_values.to_numpy()
        tag = pd.Series(None, index=raw.index, dtype="object")
        tag.iloc[rest] = sub_tag.to_numpy()
        return pd.Series(values, index=raw.index, dtype="float64"), tag
    parts = pc.extract_regex(arr, _number_regex(decimal))
    num = pc.struct_field(parts, "num")
    if decimal == ",":
        num = pc.replace_substring(pc.replace_substring_regex(num, r"[. \x{00a0}\x{202f}']", ""), ",", ".")
    else:
        num = pc.replace_substring_regex(num, r"[, \x{00a0}\x{202f}']", "")
    joined = pc.binary_join_element_wise(
        pc.struct_field(parts, "sign"), num, pa.scalar("", pa.large_string())
    )
    values = np.array([float(x) if x is not None else np.nan for x in joined.to_pylist()], dtype="float64") \
        if pc.any(pc.match_substring_regex(joined, "[eE]")).as_py() else \
        pc.cast(joined, pa.float64()).to_numpy(zero_copy_only=False)  # fmt: skip
    empty = pa.scalar(None, pa.large_string())  # an optional group that did not match is ""
    pre = pc.utf8_upper(
        pc.if_else(pc.equal(pc.struct_field(parts, "pre"), ""), empty, pc.struct_field(parts, "pre"))
    )
    post = pc.utf8_upper(
        pc.if_else(pc.equal(pc.struct_field(parts, "post"), ""), empty, pc.struct_field(parts, "post"))
    )
    both = pc.fill_null(pc.and_(pc.is_valid(pre), pc.is_valid(post)), False).to_numpy(zero_copy_only=False)
    values = np.where(both, np.nan, values)
    tag = pd.Series(pc.coalesce(pre, post).to_numpy(zero_copy_only=False), index=raw.index, dtype="object")
    tagged = tag.notna().to_numpy()
    if tagged.any():
        tag[tagged] = [SYMBOLS.get(c, c) if c != "$" else c for c in tag[tagged]]
    return pd.Series(values, index=raw.index, dtype="float64"), tag


# --------------------------------------------------------------------------- dates

_DMY = r"^(?P<a>[0-9]{1,2})(?P<sep>[./-])(?P<b>[0-9]{1,2})[./-](?P<y>[0-9]{4}|[0-9]{2})(?:[ T]+(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.[0-9]+)?)?\s*(?P<ampm>[AaPp][Mm])?)?$"  # noqa: E501
_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_SERIAL = r"^[0-9]{5}(?:\.[0-9]+)?$"
_MONTH_NAME = (r"^[A-Za-z0-9 ,.\-]+$", r"[A-Za-z]{3}", r"[0-9]{4}")


def date_evidence(values: pd.Series) -> tuple[int, int, int, bool]:
    """(day-first values, month-first values, ambiguous values, all dotted) among d/m/y-style cells."""
    arr = pc.utf8_trim_whitespace(pa.array(values, type=pa.large_string()))
    arr = arr.filter(pc.invert(pc.fill_null(pc.match_substring_regex(arr, _ISO), True)))
    parts = pc.extract_regex(arr, _DMY)
    a = pc.cast(pc.struct_field(parts, "a"), pa.int64()).to_numpy(zero_copy_only=False)
    b = pc.cast(pc.struct_field(parts, "b"), pa.int64()).to_numpy(zero_copy_only=False)
    sep = pc.struct_field(parts, "sep").to_numpy(zero_copy_only=False)
    ok = ~pd.isna(a)
    a, b, sep = a[ok].astype(float), b[ok].astype(float), sep[ok]
    dmy = int(((a > 12) & (b <= 12)).sum())
    mdy = int(((b > 12) & (a <= 12)).sum())
    amb = int(((a <= 12) & (b <= 12) & (a != b)).sum())
    return dmy, mdy, amb, bool(len(sep)) and bool((sep == ".").all())


def _parse_dates(raw: pd.Series, kind: str, order: str | None) -> pd.Series:
    """UTC timestamps (datetime) or naive midnight dates (date); NaT where not a real date."""
    arr = pc.utf8_trim_whitespace(pa.array(raw, type=pa.large_string()))
    out = np.full(len(raw), np.datetime64("NaT"), dtype="datetime64[us]")  # UTC, naive until the end

    def utc_naive(stamps: pd.Series) -> np.ndarray:
        return stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")

    iso = pc.fill_null(pc.match_substring_regex(arr, _ISO), False).to_numpy(zero_copy_only=False)
    if iso.any():
        written = arr.filter(pa.array(iso))
        if kind == "date":  # the calendar date as written, whatever its offset
            written = pc.utf8_slice_codeunits(written, 0, 10)
        stamps = _arrow_iso(written)
        if stamps is None:  # a value Arrow's parser refuses: pandas' (NaT where it is not a date)
            vals = pd.Series(written.to_numpy(zero_copy_only=False), dtype="object")
            stamps = utc_naive(pd.to_datetime(vals, format="ISO8601", utc=True, errors="coerce"))
        out[iso] = stamps
    rest = np.asarray(arr.is_valid()) & ~iso
    if rest.any():
        sub = pd.Series(arr.filter(pa.array(rest)).to_numpy(zero_copy_only=False), dtype="object")
        out[rest] = utc_naive(_parse_other_dates(sub, order))
    result = pd.Series(out, index=raw.index)
    if kind == "date":
        return result.dt.normalize()
    return result.dt.tz_localize("UTC")


def _arrow_iso(values: pa.Array) -> np.ndarray | None:
    """ISO 8601 texts as UTC instants (naive), by Arrow's parser, if it reads every one of them,
    all with a zone offset or all without (then UTC); else None. Where it reads a value, it reads
    it as pandas' ISO8601 parser does (tests/test_ingest.py), without a Python string per value."""
    for kind in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return values.cast(kind).to_numpy(zero_copy_only=False).astype("datetime64[us]")
        except pa.ArrowInvalid:
            continue
    return None


def _parse_other_dates(s: pd.Series, order: str | None) -> pd.Series:
    """d/m/y (in the file's order), Excel serials and dates with month names; NaT otherwise."""
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    arr = pa.array(s, type=pa.large_string())
    iso = np.zeros(len(s), dtype=bool)
    parts = pc.extract_regex(arr, _DMY)
    dm = pc.is_valid(parts).to_numpy(zero_copy_only=False) & ~iso
    if dm.any() and order in ("dmy", "mdy"):
        f = {k: pd.Series(pc.struct_field(parts, k).to_numpy(zero_copy_only=False), index=s.index)[dm]
             for k in ("a", "b", "y", "H", "M", "S", "ampm")}  # fmt: skip
        day, month = (f["a"], f["b"]) if order == "dmy" else (f["b"], f["a"])
        year = f["y"].astype(int)
        year = year.where(year >= 100, np.where(year < 70, 2000 + year, 1900 + year))
        hour = pd.to_numeric(f["H"], errors="coerce").fillna(0).astype(int)
        pm = f["ampm"].fillna("").str.lower()
        hour = hour.where(pm == "", (hour % 12) + np.where(pm == "pm", 12, 0))
        stamp = pd.to_datetime(
            pd.DataFrame({"year": year, "month": month.astype(int), "day": day.astype(int), "hour": hour,
                          "minute": pd.to_numeric(f["M"], errors="coerce").fillna(0).astype(int),
                          "second": pd.to_numeric(f["S"], errors="coerce").fillna(0).astype(int)}),
            errors="coerce",
        )  # fmt: skip
        out[dm] = stamp.dt.tz_localize("UTC")
    serial = pc.fill_null(pc.match_substring_regex(arr, _SERIAL), False).to_numpy(zero_copy_only=False)
    if serial.any():
        days = s[serial].astype(float)
        days = days.where((days >= 20000) & (days <= 80000))  # 1954 .. 2119
        out[serial] = pd.to_datetime(days, unit="D", origin="1899-12-30", errors="coerce").dt.tz_localize(
            "UTC"
        )
    named = ~iso & ~dm & ~serial
    for pattern in _MONTH_NAME:
        named &= pc.fill_null(pc.match_substring_regex(arr, pattern), False).to_numpy(zero_copy_only=False)
    if named.any():  # "7 March 2024", "Mar 7, 2024": the month is a word, nothing to guess
        out[named] = [_named_date(v) for v in s[named]]
    return out


def _named_date(value: str):
    try:
        ts = pd.to_datetime(value, format="mixed", utc=True)
    except (ValueError, OverflowError, TypeError):
        return pd.NaT
    return ts


# --------------------------------------------------------------------------- ids


_SF_ID = re.compile(r"^[a-zA-Z0-9]{15}$")
_SF_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id18(value: str) -> str:
    """The 18-character, case-safe form of a 15-character Salesforce id (others unchanged)."""
    if not isinstance(value, str) or not _SF_ID.match(value):
        return value
    suffix = ""
    for i in range(3):
        chunk = value[i * 5 : i * 5 + 5]
        bits = sum(1 << j for j, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SF_ALPHABET[bits]
    return value + suffix


def _arrow_text(values: pd.Series) -> pa.Array:
    """A text column as Arrow strings (None: null), for checks that run in Arrow rather than a
    Python call per value (~1 s per 1M values)."""
    return pa.array(values.astype(object), type=pa.large_string(), from_pandas=True)


def _canonical_ids(values: pd.Series, fmt: str, ids: pa.Array | None = None) -> pd.Series:
    if fmt != "salesforce":
        return values
    lengths = pc.utf8_length(_arrow_text(values) if ids is None else ids)
    short = pc.fill_null(pc.equal(lengths, 15), False).to_numpy(zero_copy_only=False)
    if not short.any():
        return values
    out = values.astype("object").copy()
    out[short] = [sf_id18(v) for v in values[short]]
    return out


# --------------------------------------------------------------------------- reading


class _Issues:
    def __init__(self, file: str, lines: np.ndarray):
        self.file, self.lines = file, lines
        self.rejected: list[Rejected] = []
        self.warnings: list[Rejected] = []

    def add(self, kind: str, mask: np.ndarray, col: str | None, raw: pd.Series | None, reason) -> None:
        target = self.rejected if kind == "reject" else self.warnings
        for idx in np.flatnonzero(mask):
            value = "" if raw is None or pd.isna(raw.iat[idx]) else str(raw.iat[idx])
            text = reason(value) if callable(reason) else reason
            target.append(Rejected(self.file, int(self.lines[idx]), col, value[:200], text))


def _shown(value: str) -> str:
    return repr(value[:80]) if value else "''"


def read_export(
    path: Path,
    obj: str,
    fmt: str,
    overrides: dict[str, str] | None = None,
    encoding: str = "utf-8-sig",
    options: ReadOptions | None = None,
    custom: list[CustomSpec] | tuple[CustomSpec, ...] = (),
) -> ReadResult:
    """Read one export file of ``obj`` (accounts, contacts, opportunities) into canonical columns.

    ``custom`` fields are read into one ``custom`` column: a JSON object of the row's typed values.
    """
    from marketmap.storage import path as storage_path

    path = storage_path(path)  # a local path or an object-store path (the inbox lives in storage)
    opts = options or ReadOptions()
    if not path.exists():
        raise IngestError(f"{path}: file not found (expected the {obj} export here)")
    body, text = _decode(path, encoding)
    delimiter = _delimiter(text, opts.delimiter)
    header = _header(text, path, delimiter)
    overrides = overrides or {}
    custom_names = {c.name for c in custom}
    overrides = {k: v for k, v in overrides.items() if k not in custom_names}  # a custom field's column
    mapping = column_map(fmt, obj, overrides, header)
    mapping.setdefault("currency", CURRENCY_COLUMNS.get(fmt, "CurrencyIsoCode"))
    required = REQUIRED[obj]

    missing_required = [f"{mapping[f]} (for {f})" for f in required if mapping.get(f) not in header]
    missing_override = [f"{col} (for {f})" for f, col in overrides.items() if col not in header]
    missing_override += [f"{c.column} (for custom field {c.name})" for c in custom if c.column not in header]
    if missing_required or missing_override:
        missing = missing_required + [m for m in missing_override if m not in missing_required]
        raise IngestError(
            f"{path}: missing column(s) {', '.join(missing)}; the header has {len(header)} columns: "
            f"{', '.join(header[:12])}{' …' if len(header) > 12 else ''}"
        )
    unknown = sorted(set(mapping) - set(FIELDS[obj]) - set(AUX_FIELDS))
    if unknown:
        raise IngestError(f"{path}: column mapping names unknown canonical fields {unknown}")

    df, lines, bad_shape = _read_table(body, header, path, delimiter)
    del body
    issues = _Issues(path.name, lines)
    for line, n, row_text in bad_shape:
        issues.rejected.append(
            Rejected(path.name, line or 0, None, row_text[:200],
                     f"{n} fields where the header has {len(header)} (row left out; the rest of the file is read)")
        )  # fmt: skip
    # An all-blank record (Excel's trailing ",,,," rows) is no record.
    blank_cells = [_blank(df[c]).to_numpy() for c in df.columns]
    all_blank = np.logical_and.reduce(blank_cells) if blank_cells else np.zeros(len(df), dtype=bool)
    blank_rows = int(all_blank.sum())
    if blank_rows:
        df = df[~all_blank].reset_index(drop=True)
        lines = lines[~all_blank]
        issues.lines = lines
    if obj == "accounts" and df.empty:
        raise IngestError(f"{path}: the header is there but the file has no account records")

    bad_row = np.zeros(len(df), dtype=bool)
    nul = np.zeros(len(df), dtype=bool)
    for c in df.columns:
        nul |= pc.fill_null(
            pc.match_substring(pa.array(df[c], type=pa.large_string()), "\x00"), False
        ).to_numpy(zero_copy_only=False)
    if nul.any():
        issues.add("reject", nul, None, None, "NUL bytes in the row (a binary or corrupted export)")
        bad_row |= nul
    # Whole-row checks done: keep only the columns read from here on (a Salesforce export has ~60,
    # a mapping uses ~25; the others' Arrow buffers are freed).
    used = {*mapping.values(), *(c.column for c in custom)}
    df = df[[c for c in df.columns if c in used]]

    decimal = opts.decimal if opts.decimal != "auto" else ("," if delimiter == ";" else ".")
    date_cols = [c.column for c in custom if c.type == "date"]
    date_order = _decide_date_order(df, mapping, obj, path, opts.date_order, date_cols)
    currency = _row_currency(df, mapping, opts.currency)

    out = pd.DataFrame(index=df.index)
    missing_optional = []
    for fld, kind in FIELDS[obj].items():
        col = mapping.get(fld)
        if col is None or col not in df.columns:
            if col is not None:
                missing_optional.append(col)
            out[fld] = None
            continue
        raw = df[col]
        blank = _blank(raw).to_numpy()
        is_key = fld in KEY_FIELDS or fld in required
        values, bad, why = _parse_field(raw, fld, kind, blank, decimal, date_order, currency, opts, fmt)
        if fld in RANGE_FIELDS:
            values, bad, why, low, high = _ranges(raw, fld, values, bad, why, blank, currency, opts)
            out[RANGE_FIELDS[fld][0]], out[RANGE_FIELDS[fld][1]] = low, high
        if fld in MULTI_ID_FIELDS:  # HubSpot web-app exports: "123;456" when associated with several
            several = values.str.contains(";", regex=False).fillna(False).to_numpy(dtype=bool)
            values = values.astype(object).where(values.notna(), None)
            if several.any():  # split only those rows: a split per row of 1M contacts cost ~2 s
                values[several] = values[several].str.split(";").str[0].str.strip()
        if fld == "close_date":  # a key date: an impossible close date cannot be guessed around
            is_key = True
        if is_key:
            issues.add(
                "reject",
                bad & ~bad_row,
                col,
                raw,
                lambda v, c=col, w=why: f"{c} {_shown(v)} {w} (row rejected)",
            )
            bad_row |= bad
            if fld in required:
                issues.add("reject", blank & ~bad_row, col, raw, f"{col} is blank (required)")
                bad_row |= blank
        elif bad.any():
            issues.add("warn", bad & ~bad_row, col, raw,
                       lambda v, c=col, w=why: f"{c} {_shown(v)} {w}; the value is left blank, the row is kept")  # fmt: skip
            values = values.where(~bad, None if kind in ("str", "bool") else np.nan)
        out[fld] = values

    for fld, (lo, hi) in RANGE_FIELDS.items():
        if fld in FIELDS[obj] and lo not in out:
            out[lo], out[hi] = np.nan, np.nan
    if custom:
        out["custom"] = _custom_values(df, custom, decimal, date_order, opts, issues, bad_row)
    if obj == "opportunities":
        bad_row |= _check_opportunity(out, df, mapping, issues, bad_row)
    out["source_row"] = lines
    bad_row |= _duplicate_ids(out, issues, bad_row, mapping.get("crm_id", "Id"))
    good = out[~bad_row].reset_index(drop=True)
    issues.rejected.sort(key=lambda r: r.row_number)
    issues.warnings.sort(key=lambda r: r.row_number)
    return ReadResult(good, issues.rejected, path.name, len(df) + len(bad_shape), missing_optional,
                      issues.warnings, delimiter, date_order, blank_rows)  # fmt: skip


def _decide_date_order(
    df: pd.DataFrame, mapping: dict, obj: str, path: Path, wanted: str, extra: list[str] = ()
) -> str | None:
    if wanted in ("dmy", "mdy"):
        return wanted
    dmy = mdy = amb = 0
    dotted = True
    cols = [mapping.get(f) for f, kind in FIELDS[obj].items() if kind in ("date", "datetime")] + list(extra)
    for col in dict.fromkeys(cols):
        if col in df.columns:
            d, m, a, dots = date_evidence(df[col].dropna())
            if d or m or a:
                dotted = dotted and dots
            dmy, mdy, amb = dmy + d, mdy + m, amb + a
    if dmy and mdy:
        raise IngestError(
            f"{path}: dates in both day/month ({dmy:,} values like 25/03) and month/day ({mdy:,} values like "
            "03/25) order; re-export with ISO dates (YYYY-MM-DD) or set crm.export.date_order"
        )
    if dmy:
        return "dmy"
    if mdy:
        return "mdy"
    if amb:
        if dotted:  # 07.03.2024 is the German/European notation: day first
            return "dmy"
        raise IngestError(
            f"{path}: the day/month order of its dates cannot be decided ({amb:,} values like 03/07/2024 and "
            "none with a day above 12); set crm.export.date_order to dmy or mdy, or re-export with ISO dates"
        )
    return None


def _row_currency(df: pd.DataFrame, mapping: dict, default: str) -> pd.Series:
    col = mapping.get("currency")
    base = pd.Series(default.upper(), index=df.index, dtype="object")
    if col and col in df.columns:
        given = df[col].str.strip().str.upper()
        return given.where(~_blank(df[col]), base).astype("object")
    return base


def _parse_field(raw, fld, kind, blank, decimal, date_order, currency, opts: ReadOptions, fmt: str):
    """(values, bad mask, what was expected) of one column."""
    if kind == "str":
        values = raw.str.strip().where(~blank, None)
        if fld in ("crm_id", "account_crm_id"):
            ids = _arrow_text(values)
            mangled = pc.fill_null(pc.match_substring_regex(ids, _EXCEL_MANGLED), False).to_numpy(zero_copy_only=False)
            no_id = pc.fill_null(pc.is_in(pc.utf8_lower(ids), value_set=_NO_ID_ARROW), False).to_numpy(zero_copy_only=False)
            bad = (mangled | no_id) & ~blank
            why = "is not a record id (a placeholder, or an id Excel turned into a number)"
            return _canonical_ids(values, fmt, ids), bad, why
        if fld == "website":
            ok = pc.fill_null(pc.match_substring_regex(pa.array(values, type=pa.large_string()), _HOST), True)
            return values, ~ok.to_numpy(zero_copy_only=False) & ~blank, "is not a website"
        if fld == "email":
            ok = pc.fill_null(pc.match_substring_regex(_arrow_text(values), _EMAIL_ARROW), True)
            ok = ok.to_numpy(zero_copy_only=False)
            return values, ~ok & ~blank, "is not an e-mail address"
        return values, np.zeros(len(raw), dtype=bool), ""
    if kind in ("int", "float"):
        values, cur = _parse_numbers(raw, decimal)
        v = values.to_numpy()
        bad = ~blank & (np.isnan(v) | ~np.isfinite(v))
        why = "is not a plain number (ranges, units like M or k, and words are not guessed)"
        if fld in NON_NEGATIVE:
            neg = ~bad & (v < 0)
            bad |= neg
        if kind == "int":
            bad |= ~bad & ~blank & (v != np.floor(np.nan_to_num(v)))
            why = "is not a whole, non-negative number (ranges, units like M or k, and words are not guessed)"
        has_tag = cur.notna().to_numpy()
        if fld not in AMOUNT_FIELDS:
            bad |= has_tag
        else:
            values, cur_bad = _convert(values, cur, currency, opts)
            cur_bad &= ~bad & ~blank
            if cur_bad.any():
                why = (f"is in a currency other than the row's with no rate to {opts.currency.upper()} in "
                       "crm.export.fx_rates (amounts in different currencies are never added)")  # fmt: skip
            bad |= cur_bad
        values = values.where(~bad)
        return values, bad, why
    if kind in ("date", "datetime"):
        values = _parse_dates(raw.where(~blank, None).astype("object"), kind, date_order)
        bad = ~blank & values.isna().to_numpy()
        return (
            values,
            bad,
            "is not a real date (expected ISO 8601, an Excel serial or the file's d/m/y order)",
        )
    if kind == "bool":
        low = raw.str.strip().str.lower()
        values = pd.Series(
            np.where(low.isin(TRUE_VALUES), True, np.where(low.isin(FALSE_VALUES), False, None)),
            index=raw.index,
            dtype="object",
        )
        bad = ~blank & values.isna().to_numpy()
        return values, bad, "is not a boolean (1/0, true/false, yes/no)"
    raise ValueError(kind)


def _convert(values: pd.Series, tag: pd.Series, row_cur: pd.Series, opts: ReadOptions):
    """Amounts in the client's currency: an amount in another currency (the row's currency
    column, or a sign/code in the cell) is converted with a configured rate, else refused.
    A cell tagged with one currency on a row declared in another is refused."""
    target = opts.currency.upper()
    out = values.copy()
    bad = np.zeros(len(values), dtype=bool)
    todo = np.flatnonzero(tag.notna().to_numpy() | (row_cur != target).to_numpy())
    if not len(todo):
        return out, bad
    rates = {k.upper(): float(v) for k, v in opts.fx_rates.items()}
    for i in todo:
        declared, t = row_cur.iat[i], tag.iat[i]
        t = t if isinstance(t, str) else None
        if t == "$":
            t = declared if declared in DOLLARS else "USD"
        if t is not None and declared != target and t != declared:
            bad[i] = True
            continue
        code = t or declared
        if code == target:
            continue
        if code in rates:
            out.iat[i] = out.iat[i] * rates[code]
        else:
            bad[i] = True
    return out, bad


def _check_opportunity(out: pd.DataFrame, df: pd.DataFrame, mapping: dict, issues: _Issues, bad_row):
    """Contradictory flags reject a deal; a won deal with a negative amount is flagged and not summed."""
    stage = out["stage"].fillna("").astype(str).str.lower().str.strip()
    won = out["is_won"].map(lambda v: v is True).to_numpy(dtype=bool)
    not_won = out["is_won"].map(lambda v: v is False).to_numpy(dtype=bool)
    open_ = out["is_closed"].map(lambda v: v is False).to_numpy(dtype=bool)
    lost_stage = stage.str.contains("lost").to_numpy() & stage.str.contains("closed").to_numpy()
    won_stage = (stage == "closed won").to_numpy()
    col = mapping.get("is_won")
    contradictory = (won & lost_stage) | (won & open_) | (not_won & won_stage)
    raw = df[col] if col in df.columns else None
    issues.add(
        "reject",
        contradictory & ~bad_row,
        col,
        raw,
        lambda v: (
            f"contradictory flags: {col}={v!s} with stage and IsClosed that say otherwise (row rejected)"
        ),
    )
    amount = pd.to_numeric(out["amount"], errors="coerce").to_numpy()
    neg_won = (won | won_stage) & (amount < 0) & ~contradictory & ~bad_row
    if neg_won.any():
        acol = mapping.get("amount")
        issues.add(
            "warn",
            neg_won,
            acol,
            df[acol] if acol in df.columns else None,
            lambda v: (
                f"a won deal with a negative amount ({v}) is flagged and not summed; the amount is left blank"
            ),
        )
        out.loc[neg_won, "amount"] = np.nan
    return contradictory


def _duplicate_ids(out: pd.DataFrame, issues: _Issues, bad_row: np.ndarray, id_col: str) -> np.ndarray:
    """Two different records with one CRM id: the latest modified one is kept, the others rejected
    by id. The same record exported twice is one record (the repeat is dropped silently)."""
    ids = out["crm_id"]
    ok = ~bad_row & ids.notna().to_numpy()
    dup = ok & ids.duplicated(keep=False).to_numpy()
    reject = np.zeros(len(out), dtype=bool)
    if not dup.any():
        return reject
    fields = [c for c in out.columns if c != "source_row"]
    sub = out[dup]
    modified = pd.to_datetime(sub["crm_last_modified"], utc=True, errors="coerce") if "crm_last_modified" in sub \
        else pd.Series(pd.NaT, index=sub.index)  # fmt: skip
    order = sub.assign(_m=modified).sort_values(["crm_id", "_m", "source_row"], ascending=[True, False, True])
    for crm_id, grp in order.groupby("crm_id", sort=False):
        keep = grp.index[0]
        kept = grp.loc[keep, fields]
        for idx in grp.index[1:]:
            same = all(
                (pd.isna(a) and pd.isna(b)) or a == b for a, b in zip(grp.loc[idx, fields], kept, strict=True)
            )
            reject[idx] = True
            if not same:
                issues.rejected.append(
                    Rejected(issues.file, int(out.at[idx, "source_row"]), id_col, str(crm_id),
                             f"{id_col} {crm_id} is on line {int(out.at[keep, 'source_row'])} too, with different "
                             "values; the most recently modified record is kept, this one is not loaded")
                )  # fmt: skip
    return reject


# --------------------------------------------------------------------------- bands and custom fields


def band_why(what: str = "a plain number") -> str:
    return (f"is neither {what} nor a band like 20 - 49, 1,000 - 4,999, 10,000+ or $1M-$5M "
            "(units like M or k on a single number, and words are not guessed)")  # fmt: skip


def _ranges(raw, fld, values, bad, why, blank, currency, opts: ReadOptions, money: bool | None = None):
    """A band in a range field (``20 - 49``): the representative value, and its low and high ends.

    A plain number is its own range (low = high = value).
    """
    v = values.to_numpy(dtype="float64", na_value=np.nan).copy()
    low, high = v.copy(), v.copy()
    if "currency" not in why:  # a currency without a rate says so; anything else may have been a band
        what = "a whole, non-negative number" if fld == "employees" else \
            "a non-negative number" if fld in NON_NEGATIVE else "a plain number"  # fmt: skip
        why = band_why(what)
    todo = bad & ~blank
    if todo.any():
        sub = raw[todo]
        ok, lo, hi, tag = parse_bands(sub)
        lo_s = pd.Series(lo, index=sub.index)
        hi_s = pd.Series(hi, index=sub.index)
        if money if money is not None else fld in AMOUNT_FIELDS:
            row_cur = currency[todo]
            lo_s, lo_bad = _convert(lo_s, tag, row_cur, opts)
            hi_s, hi_bad = _convert(hi_s, tag, row_cur, opts)
            ok &= ~(lo_bad | hi_bad)
        else:
            ok &= tag.isna().to_numpy()  # a currency on a head count is no band
        where = np.flatnonzero(todo)[ok]
        lo_v, hi_v = lo_s.to_numpy()[ok], hi_s.to_numpy()[ok]
        low[where], high[where] = lo_v, hi_v
        v[where] = [representative(a, None if np.isnan(b) else b) for a, b in zip(lo_v, hi_v, strict=True)]
        bad = bad.copy()
        bad[where] = False
    rep = pd.Series(v, index=values.index, dtype="float64")
    low[bad | blank] = np.nan
    high[bad | blank] = np.nan
    return rep, bad, why, low, high


def _custom_values(df, custom, decimal, date_order, opts: ReadOptions, issues, bad_row) -> pd.Series:
    """One JSON object per row (sorted keys, compact; None when the row has no value): the typed values
    of the custom fields. A value that is not of the field's type is left out with a warning.

    Each column is parsed and encoded once per distinct value (exports repeat picklist values,
    bands and dates), and the rows' objects are joined from those fragments.
    """
    import json

    frags: dict[str, np.ndarray] = {}
    for spec in custom:  # warnings in the config's order
        raw = df[spec.column]
        codes, uniques = pd.factorize(raw.to_numpy(dtype=object, na_value=""))
        distinct = pd.Series(uniques, dtype="object")
        blank_u = _blank(distinct).to_numpy()
        values, bad_u, why = _custom_parse(distinct, spec, blank_u, decimal, date_order, opts)
        key = json.dumps(spec.name) + ":"
        frag_u = np.array(
            ["" if (b or k or v is None) else key + json.dumps(v, separators=(",", ":"), ensure_ascii=False)
             for v, b, k in zip(values, bad_u, blank_u, strict=True)] + [""],
            dtype=object,
        )  # fmt: skip
        bad_u = np.append(np.asarray(bad_u, dtype=bool), False)
        codes = np.where(codes < 0, len(uniques), codes)
        bad = bad_u[codes]
        if bad.any():
            issues.add("warn", bad & ~bad_row, spec.column, raw,
                       lambda v, c=spec.column, w=why: f"{c} {_shown(v)} {w}; the value is left blank, the row is kept")  # fmt: skip
        frags[spec.name] = frag_u[codes]
    joined = np.full(len(df), "", dtype=object)
    for name in sorted(frags):  # sorted keys, as json.dumps(sort_keys=True)
        frag = frags[name]
        has, had = frag != "", joined != ""
        joined = np.where(has & had, joined + "," + frag, np.where(had, joined, frag))
    out = np.where(joined == "", None, "{" + joined + "}")
    return pd.Series(out, index=df.index, dtype="object")


def _custom_parse(raw, spec: CustomSpec, blank, decimal, date_order, opts: ReadOptions):
    """(JSON-ready values, bad mask, what was expected) of one custom column."""
    if spec.type == "text":
        return raw.str.strip().tolist(), np.zeros(len(raw), dtype=bool), ""
    if spec.type == "list":
        parts = [[p.strip() for p in str(v).split(spec.separator) if p.strip()] for v in raw]
        return [p or None for p in parts], np.zeros(len(raw), dtype=bool), ""
    if spec.type == "number":
        values, tag = _parse_numbers(raw, decimal)
        target = pd.Series(opts.currency.upper(), index=raw.index, dtype="object")
        values, cur_bad = _convert(values, tag, target, opts)
        v = values.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~blank & (np.isnan(v) | ~np.isfinite(v) | cur_bad)
        values, bad, why, _, _ = _ranges(raw, spec.name, pd.Series(v, index=raw.index), bad, "", blank, target, opts, True)
        return [None if np.isnan(x) else (int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x))
                for x in values.to_numpy()], bad, why  # fmt: skip
    if spec.type == "date":
        values = _parse_dates(raw.where(~blank, None).astype("object"), "date", date_order)
        bad = ~blank & values.isna().to_numpy()
        iso = [None if pd.isna(x) else x.date().isoformat() for x in values]
        return iso, bad, "is not a real date (expected ISO 8601, an Excel serial or the file's d/m/y order)"
    if spec.type == "boolean":
        low = raw.str.strip().str.lower()
        values = [True if x in TRUE_VALUES else False if x in FALSE_VALUES else None for x in low]
        bad = ~blank & np.array([x is None for x in values], dtype=bool)
        return values, bad, "is not a boolean (1/0, true/false, yes/no)"
    raise ValueError(spec.type)
