"""Read CRM export files (Salesforce or HubSpot CSV) into typed canonical frames.

File-level problems (missing file, wrong encoding, empty file, duplicate or missing
columns) raise :class:`IngestError` naming the file and what was expected: nothing is
loaded. Row-level problems (a blank required field, ``twelve`` in NumberOfEmployees)
reject that row with its number and reason; the good rows load.

Row numbers are spreadsheet row numbers: the header is row 1, the first record row 2.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from marketmap.ingest.schema import FIELDS, REQUIRED, column_map

TRUE_VALUES = {"1", "true", "t", "yes", "y", "x"}
FALSE_VALUES = {"0", "false", "f", "no", "n"}


class IngestError(Exception):
    """A whole file cannot be read; the message names the file and what was expected."""


@dataclass(frozen=True)
class Rejected:
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


def _decode(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise IngestError(f"{path}: the file is empty (expected a header row and records)")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise IngestError(
            f"{path}: not valid {encoding} text (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}); "
            "export the file as UTF-8, or set crm.export.encoding in the client config (e.g. cp1252)"
        ) from None
    except LookupError:
        raise IngestError(f"{path}: unknown encoding '{encoding}' in crm.export.encoding") from None


def _header(text: str, path: Path) -> list[str]:
    try:
        # only the first lines: the header never spans the whole file
        header = next(csv.reader(io.StringIO(text[: 1 << 20])))
    except StopIteration:
        raise IngestError(f"{path}: the file is empty (expected a header row)") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    dups = sorted(h for h, n in Counter(header).items() if n > 1)
    if dups:
        raise IngestError(f"{path}: duplicate column names in the header: {', '.join(dups)}")
    return header


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.str.strip() == "")


def _read_table(text: str, header: list[str], path: Path) -> pd.DataFrame:
    """Every column as text, read by Arrow's multi-threaded CSV reader (quoted newlines allowed)."""
    body = text.encode("utf-8")
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.large_string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as e:
        raise IngestError(f"{path}: malformed CSV ({e}); expected {len(header)} fields per row") from None
    text_dtype = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' own "str" dtype
    return table.to_pandas(types_mapper=lambda t: text_dtype if t == pa.large_string() else None)


_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


def _parse_numbers(raw: pd.Series) -> pd.Series:
    """Numbers with thousands separators, currency signs and spaces allowed; NaN otherwise."""
    arr = pa.array(raw, type=pa.large_string())
    cleaned = pc.replace_substring_regex(pc.utf8_trim_whitespace(arr), r"[,\s$€£]", "")
    ok = pc.fill_null(pc.match_substring_regex(cleaned, _NUMBER), False)
    values = pc.cast(pc.if_else(ok, cleaned, pa.scalar(None, pa.large_string())), pa.float64())
    return pd.Series(values.to_numpy(zero_copy_only=False), index=raw.index, dtype="float64")


def _parse_column(raw: pd.Series, kind: str) -> tuple[pd.Series, pd.Series, str]:
    """Typed values, a mask of non-blank values that failed to parse, and what was expected."""
    blank = _blank(raw)
    if kind == "str":
        return raw.str.strip().where(~blank, None), pd.Series(False, index=raw.index), ""
    if kind in ("int", "float"):
        values = _parse_numbers(raw)
        bad = ~blank & values.isna()
        if kind == "int":
            frac = values.notna() & (values != np.floor(values.fillna(0)))
            bad |= frac
            return values.where(~bad), bad, "a whole number"
        return values, bad, "a number"
    if kind in ("date", "datetime"):
        values = pd.to_datetime(raw.str.strip().where(~blank), errors="coerce", utc=True, format="mixed")
        bad = ~blank & values.isna()
        if kind == "date":
            values = values.dt.tz_convert(None).dt.normalize()
        return values, bad, "a date (YYYY-MM-DD)" if kind == "date" else "a date-time (ISO 8601)"
    if kind == "bool":
        low = raw.str.strip().str.lower()
        values = pd.Series(
            np.where(low.isin(TRUE_VALUES), True, np.where(low.isin(FALSE_VALUES), False, None)),
            index=raw.index,
            dtype="object",
        )
        bad = ~blank & values.isna()
        return values, bad, "a boolean (1/0, true/false, yes/no)"
    raise ValueError(kind)


def read_export(
    path: Path,
    obj: str,
    fmt: str,
    overrides: dict[str, str] | None = None,
    encoding: str = "utf-8-sig",
) -> ReadResult:
    """Read one export file of ``obj`` (accounts, contacts, opportunities) into canonical columns."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: file not found (expected the {obj} export here)")
    text = _decode(path, encoding)
    header = _header(text, path)
    overrides = overrides or {}
    mapping = column_map(fmt, obj, overrides)
    required = REQUIRED[obj]

    missing_required = [f"{mapping[f]} (for {f})" for f in required if mapping.get(f) not in header]
    missing_override = [f"{col} (for {f})" for f, col in overrides.items() if col not in header]
    if missing_required or missing_override:
        missing = missing_required + [m for m in missing_override if m not in missing_required]
        raise IngestError(
            f"{path}: missing column(s) {', '.join(missing)}; the header has {len(header)} columns: "
            f"{', '.join(header[:12])}{' …' if len(header) > 12 else ''}"
        )
    unknown = sorted(set(mapping) - set(FIELDS[obj]))
    if unknown:
        raise IngestError(f"{path}: column mapping names unknown canonical fields {unknown}")

    df = _read_table(text, header, path)
    if obj == "accounts" and df.empty:
        raise IngestError(f"{path}: the header is there but the file has no account records")

    out = pd.DataFrame(index=df.index)
    bad_any = pd.Series(False, index=df.index)
    rejected: list[Rejected] = []
    missing_optional = []
    for field, kind in FIELDS[obj].items():
        col = mapping.get(field)
        if col is None or col not in df.columns:
            if col is not None:
                missing_optional.append(col)
            out[field] = None
            continue
        raw = df[col]
        values, bad, expected = _parse_column(raw, kind)
        out[field] = values
        if bad.any():
            for idx in np.flatnonzero(bad.to_numpy()):
                rejected.append(
                    Rejected(
                        path.name,
                        int(idx) + 2,
                        col,
                        str(raw.iat[idx])[:200],
                        f"{col} '{raw.iat[idx]}' is not {expected}",
                    )
                )
            bad_any |= bad
        if field in required:
            blank = _blank(raw)
            for idx in np.flatnonzero((blank & ~bad_any).to_numpy()):
                rejected.append(Rejected(path.name, int(idx) + 2, col, "", f"{col} is blank (required)"))
            bad_any |= blank

    out["source_row"] = df.index.to_numpy() + 2
    good = out[~bad_any.to_numpy()].reset_index(drop=True)
    rejected.sort(key=lambda r: r.row_number)
    return ReadResult(good, rejected, path.name, len(df), missing_optional)
