"""The deferrable Clay wait: no worker slot and no task process while Clay works.

Clay answers asynchronously: its rows come back to the plugin's callback endpoint, which stores
them in the warehouse (``clay_rows``). ``wait_for_clay`` checks once; if rows are still out it
defers to :class:`ClayRowsTrigger`, which runs in the triggerer (``airflow triggerer``; ``make ui``
starts one inside ``airflow standalone``) and polls ``clay_rows`` from there. When every row is back
the task resumes on a worker and finishes; after ``timeout`` (6 hours) it fails, and
``close_clay`` (trigger rule ``all_done``) settles the rows that never came back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


def missing_rows(client_id: str, batches: list[str]) -> dict[str, int]:
    """Rows still out per Clay batch of the client (empty when all are back)."""
    from marketmap.enrichment import clay_rows_status
    from marketmap.orchestration.resources import load_effective, warehouse

    engine = warehouse(load_effective(client_id))
    out = {}
    for batch in batches:
        done, missing = clay_rows_status(engine, client_id, batch)
        if not done:
            out[batch] = len(missing)
    return out


class ClayRowsTrigger(BaseTrigger):
    """Fires once every row of the given Clay batches has come back (polls the warehouse)."""

    def __init__(self, client_id: str, batches: list[str], poll_interval: float = 60.0):
        super().__init__()
        self.client_id = client_id
        self.batches = list(batches)
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"client_id": self.client_id, "batches": self.batches, "poll_interval": self.poll_interval},
        )

    async def run(self):
        while True:
            # The warehouse client is synchronous: off the triggerer's event loop.
            missing = await asyncio.to_thread(missing_rows, self.client_id, self.batches)
            if not missing:
                yield TriggerEvent({"client_id": self.client_id, "batches": self.batches, "missing": {}})
                return
            self.log.info("Clay rows still out for %s: %s", self.client_id, missing)
            await asyncio.sleep(self.poll_interval)


class ClayWaitOperator(BaseOperator):
    """Wait until every row sent to Clay has come back to the callback (deferred to the triggerer)."""

    template_fields = ("enriched",)
    ui_color = "#f4e6ff"

    def __init__(
        self,
        *,
        client_id: str,
        enriched: Any,
        poll_interval: float = 120.0,
        wait_timeout: dt.timedelta = dt.timedelta(hours=6),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.client_id = client_id
        self.enriched = enriched
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def _batches(self) -> list[str]:
        return sorted((self.enriched or {}).get("clay_batches", {}))

    def execute(self, context) -> dict:
        batches = self._batches()
        missing = missing_rows(self.client_id, batches)
        if not missing:
            log.info("Clay batches complete: %s", batches or "none sent")
            return {"batches": batches, "missing": {}}
        log.info("Clay rows still out: %s; deferring to the triggerer", missing)
        self.defer(
            trigger=ClayRowsTrigger(self.client_id, batches, self.poll_interval),
            method_name="execute_complete",
            timeout=self.wait_timeout,
        )

    def execute_complete(self, context, event: dict | None = None) -> dict:
        """Resumed by the trigger's event: every row is back."""
        log.info("Clay batches complete: %s", (event or {}).get("batches"))
        return event or {}
