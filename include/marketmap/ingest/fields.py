"""``marketmap fields``: every account field a rubric can use, with its type, fill rate and examples.

Read from the warehouse after a build (what scoring sees), else from the client's account
export (what a build would load), through the same reader and custom-field parsing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from marketmap.config import ClientConfig
from marketmap.ingest.schema import ACCOUNT_FIELDS, RANGE_COLUMNS

TYPE_NAMES = {"str": "text", "int": "number", "float": "number", "date": "date", "datetime": "date",
              "bool": "boolean"}  # fmt: skip


@dataclass(frozen=True)
class FieldInfo:
    name: str
    source: str  # built-in | range | custom
    type: str  # text | number | date | boolean | list
    filled: int
    total: int
    examples: list[str]
    used_by: list[str]
    column: str | None = None
    description: str = ""

    @property
    def fill_rate(self) -> float:
        return self.filled / self.total if self.total else 0.0


def _text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # 12000, not 12000.0
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    return str(v)


def _examples(values: pd.Series, n: int = 3) -> list[str]:
    """The ``n`` most frequent values (ties: first seen)."""
    present = values.dropna()
    present = present[present.astype(str).str.strip() != ""]
    if present.empty:
        return []
    top = present.map(_text).value_counts(sort=True)
    return [v[:40] for v in top.index[:n]]


def _frame_from_export(cfg: ClientConfig, inbox: Path | None) -> tuple[pd.DataFrame, str]:
    from marketmap.ingest.custom import expand
    from marketmap.ingest.pipeline import export_paths, read_options
    from marketmap.ingest.reader import read_export

    exp = cfg.crm.export
    path = export_paths(cfg, inbox).get("accounts")
    if path is None or not path.exists():
        raise FileNotFoundError(
            f"no warehouse rows for client '{cfg.client_id}' and no account export at {path} "
            "(run a build, or put the export in the client's inbox)"
        )
    custom = cfg.custom_fields.specs("accounts", exp.account_columns)
    res = read_export(path, "accounts", exp.format, exp.account_columns, exp.encoding, read_options(cfg), custom)
    return expand(res.frame), f"export file {path} ({len(res.frame):,} readable rows)"


def field_table(cfg: ClientConfig, engine=None, inbox: Path | None = None) -> tuple[list[FieldInfo], str]:
    """(the fields, where the numbers come from)."""
    frame = pd.DataFrame()
    origin = ""
    if engine is not None:
        from sqlalchemy import select

        from marketmap.ingest.custom import expand
        from marketmap.warehouse import schema as t

        with engine.connect() as conn:
            frame = pd.read_sql(select(t.accounts).where(t.accounts.c.client_id == cfg.client_id), conn)
        frame = expand(frame)  # what scoring reads (scoring.pipeline.read_accounts)
        origin = f"warehouse ({len(frame):,} accounts)"
    if frame.empty:
        frame, origin = _frame_from_export(cfg, inbox)
    used: dict[str, list[str]] = {}
    for rubric in cfg.icp.rubrics:
        for v in [*rubric.vectors, *rubric.negative_indicators]:
            label = v.name if len(cfg.icp.rubrics) == 1 else f"{rubric.product}.{v.name}"
            used.setdefault(v.field, []).append(label)
    columns = dict(cfg.crm.export.account_columns)
    rows: list[tuple[str, str, str, str | None, str]] = [
        (name, "built-in", TYPE_NAMES[kind], columns.get(name), "") for name, kind in ACCOUNT_FIELDS.items()
    ]
    rows.insert(3, ("domain", "built-in", "text", None, "normalised from website"))
    rows += [(name, "range", "number", None, "band end, from the field it names") for name in RANGE_COLUMNS]
    rows += [(f.name, "custom", f.type, columns.get(f.name) or f.column, f.description)
             for f in cfg.custom_fields.accounts]  # fmt: skip
    total = len(frame)
    out = []
    for name, source, kind, column, description in rows:
        values = frame[name] if name in frame else pd.Series([], dtype="object")
        filled = int(values.notna().sum() - (values.astype(str).str.strip() == "").sum()) if len(values) else 0
        out.append(FieldInfo(name, source, kind, filled, total, _examples(values), used.get(name, []), column,
                             description))  # fmt: skip
    return out, origin


def format_table(fields: list[FieldInfo], origin: str) -> str:
    lines = [f"Fields a rubric can use (numbers from the {origin})", ""]
    head = f"{'field':<22} {'source':<9} {'type':<8} {'filled':>7}  {'examples':<48} used by"
    lines += [head, "-" * len(head)]
    for f in fields:
        ex = ", ".join(f.examples)
        lines.append(f"{f.name:<22} {f.source:<9} {f.type:<8} {f.fill_rate:>6.0%}  {ex[:48]:<48} "
                     f"{', '.join(f.used_by)}".rstrip())  # fmt: skip
    return "\n".join(lines)


def as_dicts(fields: list[FieldInfo]) -> list[dict]:
    return [{**asdict(f), "fill_rate": round(f.fill_rate, 4)} for f in fields]
