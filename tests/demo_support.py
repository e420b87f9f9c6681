"""The demo client's warehouse built by the product's own steps, for tests that need a realistic
client on SQLite or PostgreSQL: the demo generator's messy export (duplicates, blank websites,
bad values) in the inbox, then ingest, dedupe, load with the owner history (as the build's load
task), account scores and valuations, and optionally contact scores."""

from __future__ import annotations

import datetime as dt

RUN_DATE = dt.date(2026, 6, 1)


def build_demo(mm_home, client_id: str, n_accounts: int = 1200, *, contacts: bool = False):
    """``(cfg, engine)`` of the demo client renamed ``client_id``, built as run ``b1``."""
    from marketmap.analysis.owners import record_owner_changes
    from marketmap.config import load_client
    from marketmap.demo.generate import generate_demo_export
    from marketmap.ingest import pipeline as ingest
    from marketmap.scoring import pipeline as scoring
    from marketmap.warehouse import get_engine

    cfg = load_client("demo").model_copy(update={"client_id": client_id})
    generate_demo_export(mm_home / "inbox" / client_id, n_accounts=n_accounts)
    eng = get_engine()
    ingest.start_run(eng, client_id, "b1", "build", None)
    ingest.extract_exports(cfg, "b1", eng)
    ingest.normalise_and_dedupe(cfg, "b1", eng)
    ingest.load_warehouse(cfg, "b1", eng)
    owners = record_owner_changes(eng, client_id, "b1", dt.datetime.combine(RUN_DATE, dt.time(6), dt.UTC))
    assert owners["first_seen"] > 0 and owners["changed"] == 0
    scoring.score_accounts(cfg, eng, "b1", RUN_DATE)
    scoring.value_accounts(cfg, eng, "b1")
    if contacts:
        scoring.score_contacts(cfg, eng, "b1", RUN_DATE)
    return cfg, eng
