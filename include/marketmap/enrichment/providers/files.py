"""Providers that answer from data in hand: bought export files, and a simulator.

``export_file``: vertical data bought as files (Cause IQ, iBanknet, Definitive Healthcare,
IPEDS …) dropped into the client's inbox. Looked up by registrable domain or by company
name, zero credits, no network; answers are not cached (the file is the cache, and a newer
file must win). Options::

    file: demo_enrichment.csv        # relative to $MARKETMAP_HOME/inbox/<client>/
    key: domain                      # or: name
    key_column: domain               # the file's column holding the key (default: key)
    columns: {employees: Staff}      # canonical field -> file column (default: same name)
    encoding: utf-8-sig
    separator: ","

``simulated``: deterministic answers from a ground-truth table, with a cost, for the
benchmark and tests. ``coverage`` drops a field for a stable pseudo-random share of
domains (``{field: share kept}``), the way a real provider misses some companies.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from marketmap.config import ProviderConfig
from marketmap.enrichment.providers.base import Answer, CompanyQuery, Credentials, LookupContext, Provider


def _normalised_keys(values: pd.Series, key: str) -> pd.Series:
    from marketmap.ingest.domains import normalise_domains, normalise_names

    values = values.astype("str")
    return normalise_domains(values) if key == "domain" else normalise_names(values)


class _TableProvider(Provider):
    """Answers from an in-memory table keyed by normalised domain or name."""

    key = "domain"

    def _table(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def _query_keys(self, queries: list[CompanyQuery]) -> list[str | None]:
        if self.key == "domain":
            return [q.domain for q in queries]  # already registrable domains
        names = pd.Series([q.name or "" for q in queries], dtype="str")
        return [k or None for k in _normalised_keys(names, "name")] if len(names) else []

    def lookup(self, queries: list[CompanyQuery]) -> dict[str, Answer]:
        """Answers by lookup key (no I/O besides reading the data once)."""
        table = self._table()
        out = {}
        for q, k in zip(queries, self._query_keys(queries), strict=True):
            row = table.get(k) if k else None
            out[q.lookup_key] = (
                Answer("hit", raw=row)
                if row is not None
                else Answer("miss", reason=f"{self.key} not in {self.kind} data")
            )
        return out

    async def fetch_companies(self, queries: list[CompanyQuery], ctx: LookupContext) -> dict[str, Answer]:
        return self.lookup(queries)

    def parse_company(self, raw: Any) -> dict[str, Any]:
        return {f: raw.get(f) for f in self.fields} if isinstance(raw, dict) else {}


class ExportFileProvider(_TableProvider):
    kind = "export_file"
    cached = False

    def __init__(
        self,
        cfg: ProviderConfig,
        client_id: str,
        credentials: Credentials | None = None,
        inbox: Path | None = None,
    ):
        super().__init__(cfg, client_id, credentials)
        self.key = self.options.get("key", "domain")
        if self.key not in ("domain", "name"):
            raise ValueError(f"provider '{self.name}': options.key must be domain or name, got {self.key!r}")
        if not self.options.get("file"):
            raise ValueError(
                f"provider '{self.name}': options.file is required (an export file in the inbox)"
            )
        self._inbox = inbox
        self._rows: dict[str, dict[str, Any]] | None = None
        self._loaded: tuple[Path, float] | None = None

    @property
    def path(self) -> Path:
        from marketmap.settings import inbox_dir

        f = Path(self.options["file"])
        return f if f.is_absolute() else (self._inbox or inbox_dir(self.client_id)) / f

    def _table(self) -> dict[str, dict[str, Any]]:
        path = self.path
        if not path.exists():
            raise FileNotFoundError(
                f"provider '{self.name}': export file {path} not found (put it in the client's inbox)"
            )
        stamp = (path, path.stat().st_mtime)
        if self._rows is None or self._loaded != stamp:
            from marketmap.storage import local_copy

            with local_copy(path) as local:  # the inbox may be an object store
                frame = pd.read_csv(
                    local,
                    dtype=str,
                    keep_default_na=False,
                    encoding=self.options.get("encoding", "utf-8-sig"),
                    sep=self.options.get("separator", ","),
                )
            key_col = self.options.get("key_column", self.key)
            if key_col not in frame.columns:
                raise ValueError(f"provider '{self.name}': {path.name} has no key column {key_col!r}")
            columns = {f: self.options.get("columns", {}).get(f, f) for f in self.fields}
            present = {f: c for f, c in columns.items() if c in frame.columns}
            keys = _normalised_keys(frame[key_col], self.key)
            data = frame[list(present.values())].rename(columns={c: f for f, c in present.items()})
            data = data.replace("", None)
            data["__key"] = keys.to_numpy()
            data = data[data["__key"].notna()].drop_duplicates("__key", keep="first")
            self._rows = {r.pop("__key"): r for r in data.to_dict("records")}
            self._loaded = stamp
        return self._rows


class SimulatedProvider(_TableProvider):
    kind = "simulated"

    def __init__(
        self,
        cfg: ProviderConfig,
        client_id: str,
        credentials: Credentials | None = None,
        truth: pd.DataFrame | None = None,
        inbox: Path | None = None,
    ):
        super().__init__(cfg, client_id, credentials)
        self.key = self.options.get("key", "domain")
        self._truth = truth
        self._inbox = inbox
        self._rows: dict[str, dict[str, Any]] | None = None
        self.calls = 0

    def _kept(self, key: str, field: str) -> bool:
        share = float((self.options.get("coverage") or {}).get(field, 1.0))
        if share >= 1:
            return True
        h = hashlib.sha1(f"{self.name}|{key}|{field}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < share

    def _table(self) -> dict[str, dict[str, Any]]:
        if self._rows is None:
            truth = self._truth
            if truth is None:
                from marketmap.settings import inbox_dir

                f = Path(self.options["file"])
                path = f if f.is_absolute() else (self._inbox or inbox_dir(self.client_id)) / f
                from marketmap.storage import local_copy

                with local_copy(path) as local:
                    truth = pd.read_csv(local, dtype=str, keep_default_na=False).replace("", None)
            keys = _normalised_keys(truth[self.options.get("key_column", self.key)], self.key)
            rows: dict[str, dict[str, Any]] = {}
            cols = [f for f in self.fields if f in truth.columns]
            for k, rec in zip(keys, truth[cols].to_dict("records"), strict=True):
                if k and k not in rows:
                    kept = {f: v for f, v in rec.items() if v is not None and self._kept(k, f)}
                    if kept:
                        rows[k] = kept
            self._rows = rows
        return self._rows

    async def fetch_companies(self, queries: list[CompanyQuery], ctx: LookupContext) -> dict[str, Answer]:
        self.calls += len(queries)
        return await super().fetch_companies(queries, ctx)
