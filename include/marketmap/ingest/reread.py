"""A monthly re-read of a whole CSV export: which account records to deduplicate and load again.

A CSV client sends its whole export every month, of which ~1% changed. Every record is still read
and validated (rejected rows, warnings and the date order are judged over the whole file, as in
the build), but only these records go on to deduplication and the load:

- records that are new, changed (their hash differs from the one stored at the last load), or
  whose website gave a warning (stored without a hash, so the warning is given again);
- every other record of a domain or account one of them belongs to, now or at the last load,
  and of an account a record has left the export from (the domain's survivor and the values
  it merges may change);
- the records of both sides of every pair a person decided is one company (few, and a decision
  taken since the last run must be applied).

The rest of the export's accounts are handed to the fuzzy-name review as ``others``: names are
blocked over the whole export, and pairs with a re-read account are searched. A pair of two
unchanged accounts was searched when they were last read.

Contacts and deals are staged when they are new or changed, or when their account's record was
read again or left the export (its account may have changed); the others keep what they were
loaded with, which a whole re-read would write again unchanged.

The hash covers the record as read and what deduplication depends on besides it (the
not-company hosts list, the dedupe rules' version): a change of either re-reads every record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import select

from marketmap.frames import isin
from marketmap.ingest.domains import company_domains
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import read_columns

# Bumped when deduplication's rules change: every record is then read again once.
DEDUPE_RULES = "2026-12-06"


def _salt(not_company_hosts) -> np.uint64:
    text = "|".join([DEDUPE_RULES, *sorted(not_company_hosts or ())])
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], dtype=np.uint64)[0]


def record_hashes(frame: pd.DataFrame, not_company_hosts=()) -> pd.Series:
    """A 64-bit hash per record of the values read (not its row number); NA for a CRM id that
    appears more than once in the export (always read again)."""
    cols = [c for c in frame.columns if c not in ("source_row", "record_hash")]
    hashes = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy() ^ _salt(not_company_hosts)
    out = pd.Series(pd.array(hashes.view(np.int64), dtype="Int64"), index=frame.index)
    out[frame["crm_id"].duplicated(keep=False).to_numpy()] = pd.NA
    return out


@dataclass
class Reread:
    records: pd.DataFrame  # the account records to deduplicate and load again
    others: pd.DataFrame  # crm_id, source_row of the export's other records
    gone: list[str]  # CRM ids that left the export since the last load
    summary: dict


CRM_ID_COLUMNS = ["crm_id", "account_key", "is_survivor", "record_hash", "record_domain"]


def stored_crm_ids(conn, client_id: str, only: list | None = None) -> pd.DataFrame:
    """The client's stored CRM ids with their account, survivor flag, record hash and domain: every
    id, or those of ``only``."""
    c = t.account_crm_ids.c
    query = select(*(c[n] for n in CRM_ID_COLUMNS)).where(c.client_id == client_id)
    found = read_columns(conn, query, c.crm_id, only)
    return pd.DataFrame({**found, "crm_id": pd.array(found["crm_id"], dtype=object),
                         "account_key": pd.array(found["account_key"], dtype=object),
                         "record_hash": pd.array(found["record_hash"], dtype="Int64"),
                         "record_domain": pd.array(found["record_domain"], dtype=object)})  # fmt: skip


def select_records(
    conn, client_id: str, frame: pd.DataFrame, same_pairs: list[tuple[str, str]], not_company_hosts=()
) -> Reread:
    """Split a whole export's account ``frame`` (with ``record_hash``) into the records to read again
    and the others (see the module's docstring)."""
    stored = stored_crm_ids(conn, client_id).set_index("crm_id")
    ids = pd.Index(frame["crm_id"].to_numpy(dtype=object), dtype=object)
    was = stored.reindex(ids)
    now_hash = pd.array(frame["record_hash"], dtype="Int64")
    changed = (was["record_hash"].array != now_hash).fillna(True).to_numpy(dtype=bool)
    gone_mask = stored["record_hash"].notna().to_numpy() & ~isin(stored.index, ids)
    gone = stored.index[gone_mask]

    # Keys and domains touched: before (stored) and now (the changed records' own domains).
    new_domains, _ = company_domains(
        frame.loc[changed, "website"] if "website" in frame else pd.Series(dtype=object),
        frame.loc[changed, "name"].fillna(""),
        not_company_hosts,
    )
    touched = set(new_domains.dropna()) | {"id:" + str(c) for c in ids[changed]}
    for part in (was[changed], stored[gone_mask]):
        touched |= set(part["account_key"].dropna()) | set(part["record_domain"].dropna())
    for a, b in same_pairs:  # a decided merge is applied (or kept) with both sides' records
        touched |= {a, b}

    key = was["account_key"].to_numpy(dtype=object)
    dom = was["record_domain"].to_numpy(dtype=object)
    lone = ("id:" + pd.Series(ids, dtype=object).astype(str)).to_numpy(dtype=object)
    reread = changed.copy()
    while True:  # until no record joins: a joined record's other keys touch more records
        hit = ~reread & (isin(key, touched) | isin(dom, touched) | isin(lone, touched))
        if not hit.any():
            break
        reread |= hit
        touched |= {v for v in np.concatenate([key[hit], dom[hit], lone[hit]]) if isinstance(v, str)}
    summary = {"records": len(frame), "changed": int(changed.sum()), "reread": int(reread.sum()),
               "gone": len(gone)}  # fmt: skip
    return Reread(frame[reread], frame.loc[~reread, ["crm_id", "source_row"]], list(gone), summary)


def select_rows(conn, client_id: str, table, key: str, frame: pd.DataFrame, account_ids) -> tuple[pd.DataFrame, dict]:
    """The contacts or deals of a whole export (with ``record_hash``) to stage: new or changed
    records, and those of the account records in ``account_ids`` (read again, or gone)."""
    cols = read_columns(conn, select(table.c[key], table.c.record_hash).where(table.c.client_id == client_id))
    stored = pd.Series(pd.array(cols["record_hash"], dtype="Int64"), index=pd.Index(cols[key], dtype=object))
    was = stored.reindex(pd.Index(frame["crm_id"].to_numpy(dtype=object), dtype=object)).array
    changed = (was != pd.array(frame["record_hash"], dtype="Int64")).fillna(True).to_numpy(dtype=bool)
    picked = changed | isin(frame["account_crm_id"], account_ids) if "account_crm_id" in frame else changed
    return frame[picked], {"records": len(frame), "changed": int(changed.sum()), "reread": int(picked.sum())}
