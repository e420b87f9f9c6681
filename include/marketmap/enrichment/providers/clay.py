"""Clay: rows sent to a Clay table's webhook; enriched rows come back to our callback.

Clay documents a table's *webhook source*: every JSON object POSTed to the table's webhook
URL becomes a row (optional ``x-clay-webhook-auth`` token). The table's enrichment columns
run inside Clay, and an *HTTP API* column POSTs the enriched row to an endpoint of ours:
Market Map's callback (:mod:`marketmap.enrichment.clay_callback`), which stores the row
and puts it in the enrichment cache. Configure the HTTP API column to send back the
``marketmap_*`` columns unchanged plus the enriched columns.

Each row sent carries ``marketmap_client_id``, ``marketmap_batch_id``, ``marketmap_row_id``,
``account_key``, ``domain`` and ``name`` (+ ``options.extra_columns``). Sent rows are kept in
the ``clay_rows`` table, so a retried task never sends a row twice; the waiting task
polls :func:`~marketmap.enrichment.clay_callback.clay_rows_status`.

Connection: host = the table's webhook URL (or ``options.webhook_url``), password = the
webhook auth token (optional). ``options.columns`` maps canonical fields to the names of
Clay's columns in the callback (default: the canonical names).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select

from marketmap.enrichment.http import ProviderError
from marketmap.enrichment.providers.base import Answer, CompanyQuery, LookupContext, Provider
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert


def batch_id_for(client_id: str, run_id: str, provider: str) -> str:
    """One Clay batch per run and provider (stable, so a retried task reuses it)."""
    return hashlib.sha1(f"{client_id}|{run_id}|{provider}".encode()).hexdigest()[:20]


def row_id_for(batch_id: str, lookup_key: str) -> str:
    return hashlib.sha1(f"{batch_id}|{lookup_key}".encode()).hexdigest()[:20]


class ClayProvider(Provider):
    kind = "clay"
    #: answers arrive later, at the callback: accounts wait instead of going on down the waterfall
    asynchronous = True

    def _webhook(self) -> str:
        url = self.options.get("webhook_url") or self.credentials.host
        if not url:
            raise ProviderError("config", f"Clay provider '{self.name}': no webhook URL (connection host)")
        if "://" not in url:
            url = f"{self.credentials.schema or 'https'}://{url}"
        return url

    async def fetch_companies(self, queries: list[CompanyQuery], ctx: LookupContext) -> dict[str, Answer]:
        """Send each query as a row (once); every answer is ``pending`` until the callback."""
        batch = batch_id_for(ctx.client_id, ctx.run_id, self.name)
        with ctx.engine.connect() as conn:
            already = {
                r.lookup_key: r.status
                for r in conn.execute(
                    select(t.clay_rows.c.lookup_key, t.clay_rows.c.status).where(
                        t.clay_rows.c.client_id == ctx.client_id,
                        t.clay_rows.c.provider == self.name,
                        t.clay_rows.c.lookup_key.in_([q.lookup_key for q in queries]),
                        t.clay_rows.c.status.in_(["sent", "received"]),
                    )
                )
            }
        out: dict[str, Answer] = {}
        headers = {"Content-Type": "application/json"}
        if self.credentials.password:
            headers["x-clay-webhook-auth"] = self.credentials.password
        sent = []
        for q in queries:
            if q.lookup_key in already:
                out[q.lookup_key] = Answer("pending", reason=f"already {already[q.lookup_key]} to Clay")
                continue
            row_id = row_id_for(batch, q.lookup_key)
            row = {
                "marketmap_client_id": ctx.client_id,
                "marketmap_batch_id": batch,
                "marketmap_row_id": row_id,
                "account_key": q.account_key,
                "domain": q.domain,
                "name": q.name,
                **(self.options.get("extra_columns") or {}),
            }
            try:
                client = self.http("", headers)
                r = await client.request("POST", self._webhook(), json=row)
            except ProviderError as e:
                out[q.lookup_key] = Answer("error", reason=str(e), charged=False)
                continue
            if r.status_code >= 400:
                out[q.lookup_key] = Answer("error", reason=f"webhook HTTP {r.status_code}")
                continue
            out[q.lookup_key] = Answer("pending", reason=f"sent to Clay batch {batch}")
            sent.append(
                {
                    "client_id": ctx.client_id,
                    "batch_id": batch,
                    "row_id": row_id,
                    "provider": self.name,
                    "account_key": q.account_key,
                    "lookup_key": q.lookup_key,
                    "entry_id": ctx.entry_ids.get(q.lookup_key),
                    "run_id": ctx.run_id,
                    "status": "sent",
                    "sent_at": dt.datetime.now(dt.UTC),
                }
            )
        if sent:
            with ctx.engine.begin() as conn:
                upsert(conn, t.clay_rows, sent)
        return out

    def parse_company(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return {}
        columns = self.options.get("columns") or {}
        return {f: raw.get(columns.get(f, f)) for f in self.fields}
