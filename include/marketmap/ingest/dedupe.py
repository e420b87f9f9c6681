"""Account deduplication: same registrable domain = same company; no domain = review queue.

Records sharing a normalised domain are merged into one account. The survivor is the
most complete record (ties: the oldest in the CRM, then the earliest row); blank fields
of the survivor are filled from its duplicates. Records without a domain are never
merged automatically: a fuzzy company-name match against the other accounts puts the
pair into a manual review queue instead (seed 000: no domain = higher duplicate risk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from marketmap.ingest.domains import normalise_domains, normalise_names

FUZZY_THRESHOLD = 90.0
# Above this many names in one block, candidate pairs are only searched within the
# first two words of the name (keeps the comparison count bounded on 1M-row TAMs).
MAX_BLOCK = 5000


@dataclass
class DedupeResult:
    accounts: pd.DataFrame  # one row per account, with account_key, domain, name_norm
    crm_ids: pd.DataFrame  # crm_id -> account_key, is_survivor
    merges: pd.DataFrame  # account_key, kept_crm_id, merged_crm_id, reason
    review: pd.DataFrame  # left_key, right_key, left_name, right_name, score


def _completeness(df: pd.DataFrame) -> np.ndarray:
    return df.notna().sum(axis=1).to_numpy()


def dedupe_accounts(records: pd.DataFrame, fuzzy_threshold: float = FUZZY_THRESHOLD) -> DedupeResult:
    """Merge account records by normalised domain and queue fuzzy name matches for review."""
    df = records.copy(deep=False)  # new columns only: the caller's frame stays as it is
    df["domain"] = normalise_domains(df["website"]) if "website" in df else None
    df["name_norm"] = normalise_names(df["name"]).astype("object") if len(df) else []
    df["_complete"] = _completeness(df.drop(columns=["source_row"], errors="ignore"))
    created = df["crm_created"] if "crm_created" in df else pd.Series(pd.NaT, index=df.index)
    df["_created"] = pd.to_datetime(created, utc=True).fillna(pd.Timestamp.max.tz_localize("UTC"))

    # Order every domain's records survivor first: most complete, oldest in the CRM, earliest row.
    codes, _ = pd.factorize(df["domain"])
    rows = np.flatnonzero(codes >= 0)
    created_ns = df["_created"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort(
        (df["source_row"].to_numpy()[rows], created_ns[rows], -df["_complete"].to_numpy()[rows], codes[rows])
    )
    ordered = rows[order]  # positions of the records with a domain, survivor first per domain
    group = codes[ordered]
    first = np.r_[True, group[1:] != group[:-1]] if len(group) else np.zeros(0, dtype=bool)
    sizes = np.diff(np.r_[np.flatnonzero(first), len(group)])
    in_multi = np.repeat(sizes > 1, sizes)
    lone_rows = np.flatnonzero(codes < 0)

    # groupby().first() takes the first non-null value per column: the survivor's own value
    # where it has one, else the value of the next most complete duplicate. Only domains
    # with several records need it; the rest (most of a TAM) are taken as they are.
    multi = df.take(ordered[in_multi]).groupby("domain", sort=False, dropna=True).first().reset_index()
    lone = df.take(lone_rows)
    lone_keys = "id:" + lone["crm_id"].astype(str)
    accounts = pd.concat(
        [df.take(ordered[~in_multi]), multi, lone.assign(account_key=lone_keys)], ignore_index=True
    )
    accounts["account_key"] = accounts["account_key"].fillna(accounts["domain"])
    accounts = accounts.drop(columns=["_complete", "_created"])

    crm = df["crm_id"].to_numpy()[ordered]
    domains = df["domain"].to_numpy()[ordered]
    survivors = np.repeat(crm[first], sizes)
    is_dup = crm != survivors  # the same CRM id twice (a re-exported row) is not a duplicate
    merges = pd.DataFrame(
        {"account_key": domains[is_dup], "kept_crm_id": survivors[is_dup], "merged_crm_id": crm[is_dup]}
    )
    merges["reason"] = "same domain " + merges["account_key"]

    crm_ids = pd.DataFrame(
        {
            "crm_id": np.concatenate([crm, lone["crm_id"].to_numpy()]),
            "account_key": np.concatenate([domains, lone_keys.to_numpy()]),
        }
    )
    crm_ids["is_survivor"] = ~crm_ids["crm_id"].isin(merges["merged_crm_id"])
    # The same CRM id twice in one export (a re-exported row) is one record, not a duplicate.
    crm_ids = crm_ids.drop_duplicates("crm_id")

    review = fuzzy_review(accounts, fuzzy_threshold)
    return DedupeResult(accounts, crm_ids, merges, review)


def _block_keys(names: pd.Series, words: int) -> pd.Series:
    """The first one or two words of each (normalised) name."""
    parts = pc.split_pattern(pa.array(names, type=pa.large_string()), " ", max_splits=words)
    keys = pc.binary_join(pc.list_slice(parts, 0, words), pa.scalar(" ", pa.large_string()))
    return pd.Series(keys.to_numpy(zero_copy_only=False), index=names.index, dtype="object")


def fuzzy_review(accounts: pd.DataFrame, threshold: float = FUZZY_THRESHOLD) -> pd.DataFrame:
    """Pairs (an account without a domain, any other account) whose names look alike."""
    cols = ["left_key", "right_key", "left_name", "right_name", "score"]
    lone_mask = accounts["domain"].isna().to_numpy() & (accounts["name_norm"] != "").to_numpy()
    if not lone_mask.any():
        return pd.DataFrame(columns=cols)
    names = accounts["name_norm"].fillna("")
    block = _block_keys(names, 1)
    sizes = block.map(block.value_counts()).to_numpy()
    big = sizes > MAX_BLOCK
    if big.any():  # split oversized blocks by their first two words
        block[big] = _block_keys(names[big], 2).to_numpy()

    # Only blocks that hold an account without a domain can produce a pair.
    in_play = np.flatnonzero(block.isin(set(block[lone_mask])).to_numpy())
    keys = accounts["account_key"].to_numpy()
    display = accounts["name"].to_numpy()
    all_names = names.to_numpy()
    pairs: list[tuple[str, str, str, str, float]] = []
    for idx in pd.Series(in_play).groupby(block.to_numpy()[in_play], sort=True).indices.values():
        idx = in_play[idx]
        left = idx[lone_mask[idx]]
        if len(idx) < 2 or not len(left):
            continue
        scores = process.cdist(
            all_names[left], all_names[idx], scorer=fuzz.token_sort_ratio, score_cutoff=threshold, workers=-1
        )
        for i, j in zip(*np.nonzero(scores), strict=True):
            a, c = left[i], idx[j]
            if a == c or (lone_mask[c] and c < a):  # self, or a lone-lone pair already seen
                continue
            pairs.append((keys[a], keys[c], display[a], display[c], float(scores[i, j])))
    return pd.DataFrame(pairs, columns=cols).drop_duplicates(["left_key", "right_key"])
