"""Clay fake: a table's webhook source, and its HTTP API column calling us back.

``POST /webhook/<table>`` with a JSON object adds a row (``x-clay-webhook-auth`` must match
the table's token when one is set) and answers 200 at once, as Clay's webhook source does;
enrichment runs later. ``deliver()`` plays the HTTP API column: it POSTs each row, with the
enriched columns added, to the callback URL with the shared secret. Rows for domains in
``never_return`` are never sent back (a row whose enrichment died in Clay).
"""

from __future__ import annotations

from typing import Any

import httpx

from servers.enrichment_base import FakeServer, Recorded, Reply


class ClayServer(FakeServer):
    def __init__(self, table: str = "t_abc123", token: str | None = "clay-webhook-token") -> None:
        super().__init__()
        self.table, self.token = table, token
        self.rows: list[dict] = []
        self.enriched: dict[str, dict[str, Any]] = {}  # domain -> enriched columns
        self.never_return: set[str] = set()
        self.delivered: set[str] = set()

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhook/{self.table}"

    def handle(self, req: Recorded) -> Reply:
        if req.path == f"/webhook/{self.table}" and req.method == "POST":
            if self.token and req.headers.get("x-clay-webhook-auth") != self.token:
                return Reply(401, {"error": "unauthorized"})
            row = req.json()
            if not isinstance(row, dict):
                return Reply(400, {"error": "expected a JSON object"})
            with self.lock:
                self.rows.append(row)
            return Reply(200, {"success": True})
        return super().handle(req)

    def deliver(self, callback_url: str, secret: str, batch: bool = False) -> list[int]:
        """Send every received row back (once), enriched; returns the HTTP statuses."""
        out = []
        pending = []
        with self.lock:
            for row in self.rows:
                rid = row["marketmap_row_id"]
                if rid in self.delivered or row.get("domain") in self.never_return:
                    continue
                self.delivered.add(rid)
                pending.append(row | self.enriched.get(row.get("domain"), {}))
        with httpx.Client(trust_env=False, timeout=10) as client:
            bodies = ([pending] if pending else []) if batch else pending
            for body in bodies:
                r = client.post(callback_url, json=body, headers={"X-Marketmap-Secret": secret})
                out.append(r.status_code)
        return out
