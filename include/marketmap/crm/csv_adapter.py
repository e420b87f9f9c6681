"""CSV "CRM" for clients without an API connection: the push writes import-ready files.

Files land in ``<run folder>/crm_import/`` (in storage, so the canary's rows written on one
worker and the rest written on another end up in the same files), one per object and operation:
``Account_update.csv`` (record id + changed fields), ``Account_insert.csv`` (new records,
with a ``MarketMap_Key`` column to map or ignore) and ``Account_upsert.csv`` when an
external id field is configured. Column names are the CRM's field names. A cell left
blank means "leave as is" (Salesforce Data Loader and HubSpot imports skip blanks), so
one file can carry records with different changed fields.

Writing is idempotent: a retried batch replaces its rows instead of appending them twice.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from marketmap import csvsafe, storage
from marketmap.config import ClientConfig
from marketmap.crm.base import CrmAdapter, CrmSettings, FieldMeta, Operation, Outcome, WriteRecord
from marketmap.crm.mapping import crm_format, crm_objects
from marketmap.settings import run_dir

KEY_COLUMN = "MarketMap_Key"


class CsvAdapter(CrmAdapter):
    kind = "csv"

    def __init__(self, cfg: ClientConfig, out_dir: Path | None = None, settings: CrmSettings | None = None):
        super().__init__(settings)
        self.fmt = crm_format(cfg)
        self.objects = crm_objects(cfg)
        self.out_dir = storage.path(out_dir) if out_dir else None
        self._fixed_dir = out_dir is not None
        self.files: dict[str, Path] = {}
        self._keys: dict[str, set[str]] = {}  # per file this adapter started: the keys written to it
        self._expected: dict[tuple[str, str], list[str]] = {}  # (object, operation) -> fields

    @property
    def has_remote(self) -> bool:
        return False

    def start_run(self, client_id: str, run_id: str) -> None:
        if not self._fixed_dir:
            self.out_dir = run_dir(client_id, run_id) / "crm_import"

    def id_field(self, obj: str) -> str:
        return "Id" if self.fmt == "salesforce" else "Record ID"

    # No CRM to ask: the plan diffs against the previous export's values.
    def describe(self, obj: str) -> dict[str, FieldMeta]:
        return {}

    def extract(self, obj: str, fields: list[str], since: Any = None, until: Any = None) -> Iterator[dict]:
        return iter(())

    def read(self, obj: str, ids: list[str], fields: list[str]) -> dict[str, dict]:
        return {}

    def find(self, obj: str, field_name: str, values: Iterable[str], fields: list[str]) -> list[dict]:
        return []

    def find_by_domain(self, obj: str, domains: list[str], fields: list[str]) -> list[dict]:
        return []

    def count(self, obj: str) -> int:
        raise NotImplementedError("a CSV client has no CRM to count")

    def batch_size(self, op: Operation, total: int) -> int:
        return 50_000

    def expect_fields(self, obj: str, op: Operation, fields: list[str]) -> None:
        self._expected[(obj, op)] = list(fields)

    def write(
        self, obj: str, op: Operation, records: list[WriteRecord], external_id_field: str | None = None
    ) -> list[Outcome]:
        if self.out_dir is None:
            raise RuntimeError("CsvAdapter.start_run() was not called: no run folder to write to")
        kind = {"update": "update", "create": "insert", "upsert": "upsert"}[op]
        path = self.out_dir / f"{self.objects[obj]}_{kind}.csv"
        key_col = {
            "update": self.id_field(obj),
            "create": KEY_COLUMN,
            "upsert": external_id_field or KEY_COLUMN,
        }[op]
        before = _header(path)
        header = list(before) or [key_col]
        # every column the push will write, from its first batch: a later batch with a field the
        # earlier ones lacked would otherwise rewrite the whole file (quadratic over a large push)
        header += [f for f in self._expected.get((obj, op), ()) if f not in header]
        batch: dict[str, dict] = {}
        for r in records:
            key = r.crm_id if op == "update" else (r.external_id or r.key)
            row = {key_col: key, **{f: _cell(v) for f, v in r.fields.items()}}
            header += [f for f in row if f not in header]
            batch[str(key)] = row
        keys = self._keys.get(str(path))
        if keys is None and before:
            # a file an earlier attempt of this push left (a retried task): its keys are read
            # once, so batches it does not hold yet are appended, not merged into it one by one
            keys = self._keys[str(path)] = _keys_in(path)
        if keys is not None and header == before and keys.isdisjoint(batch):
            # only new rows, same columns: the file's bytes are copied as they are
            _append(path, header, batch)
        else:
            _merge(path, header, batch)
        if keys is not None:
            keys.update(batch)
        else:  # a file this adapter started: it knows every key in it
            self._keys[str(path)] = set(batch)
        self.files[f"{obj}_{kind}"] = path
        self.stats.count("write")
        return [Outcome(r.key, True, r.crm_id, created=op != "update") for r in records]


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _header(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open("r", newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def _keys_in(path: Path) -> set[str]:
    """The keys (first column) of an import file's rows."""
    with _source(path) as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return {row[0] for row in reader if row}


def _source(path: Path):
    """The file to read while its replacement is written: a local file streams (the replacement
    is a sibling renamed over it), an object store's object is read first (it is written in place)."""
    if storage.is_local(path):
        return path.open("r", newline="", encoding="utf-8")
    # bytes, not read_text: text mode would turn \r\n into \n (in the rows copied as they are, and
    # inside quoted multi-line values), so the file would not keep the bytes a local one keeps
    return io.StringIO(path.read_bytes().decode("utf-8"), newline="")


def _append(path: Path, header: list[str], batch: dict[str, dict]) -> None:
    """The file as it is, then ``batch``'s rows (none of their keys in it; same header)."""

    def write(target) -> None:
        with _source(path) as old, target.open("w", newline="", encoding="utf-8") as fh:
            shutil.copyfileobj(old, fh, 1 << 20)
            csvsafe.dict_writer(fh, fieldnames=header, extrasaction="ignore").writerows(batch.values())

    storage.replace_atomically(path, write)  # a killed task never leaves a half-written import file


def _merge(path: Path, header: list[str], batch: dict[str, dict]) -> None:
    """Rewrite the file with ``batch``: a row whose key it has is replaced where it stands, the
    others are appended. The file is streamed through, never held: its memory is the batch's."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(target) -> None:
        with target.open("w", newline="", encoding="utf-8") as fh:
            w = csvsafe.dict_writer(fh, fieldnames=header, extrasaction="ignore")
            w.writeheader()
            if path.exists():
                with _source(path) as old:
                    reader = csv.DictReader(old)
                    key = (reader.fieldnames or [""])[0]
                    for row in reader:
                        w.writerow(batch.pop(row[key], None) or row)
            w.writerows(batch.values())

    storage.replace_atomically(path, write)  # a killed task never leaves a half-written import file
