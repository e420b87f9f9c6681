"""Account deduplication: same registrable domain = same company; no domain = review queue.

Records sharing a normalised domain are merged into one account. The survivor is the
most complete record (ties: the oldest in the CRM, then the earliest row); blank fields
of the survivor are filled from its duplicates. Records without a domain are never
merged automatically: a fuzzy company-name match against the other accounts puts the
pair into a manual review queue instead (seed 000: no domain = higher duplicate risk).

A website on a host that is not the company's own (LinkedIn, App Store, Gmail, a Wix
site, a bit.ly link …, see ``ingest/data/not_company_hosts.txt``) gives no domain and a
warning. Records that share a domain but whose names clearly differ are not merged: the
record goes to the review queue (kind ``account_domain``) next to the domain's account.

A person's decisions on queued pairs (``ingest/review.py``) come back in as ``merge_pairs``:
each pair decided "same" is merged into one account with the same survivor rules (most
complete record first, then the oldest in the CRM, then the earliest row; its blanks filled
from the other); the merged account keeps a domain key when either side has one, every CRM id
is kept in ``account_crm_ids`` and ``account_merges`` records "review decision". The absorbed
account keys are returned in ``DedupeResult.absorbed`` so the load can retire them.

Look-alike names are found by blocking on each name's rarest words (and their first four
letters, so a typo in one word still meets), then scoring within each block in bounded
chunks; placeholder names (Unknown, N/A, Test Account, Customer 001) are never queued.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from marketmap.ingest.domains import company_domains, normalise_names, placeholder_names

FUZZY_THRESHOLD = 90.0
# A word shared by more names than this is too common to block on (keeps every block,
# and so the comparison count and memory, bounded on 1M-row TAMs).
MAX_BLOCK = 5000
# Left rows scored at once against a block: at most CHUNK x MAX_BLOCK scores in memory.
CHUNK = 1000
# Two names on one domain "clearly differ" below this token-set similarity (0-100) unless
# both names are consistent with the domain (IBM / International Business Machines on ibm.com).
SAME_DOMAIN_MIN_SIMILARITY = 50.0


@dataclass
class DedupeResult:
    accounts: pd.DataFrame  # one row per account, with account_key, domain, name_norm
    crm_ids: pd.DataFrame  # crm_id -> account_key, is_survivor
    merges: pd.DataFrame  # account_key, kept_crm_id, merged_crm_id, reason
    review: pd.DataFrame  # left_key, right_key, left_name, right_name, score, kind
    warnings: pd.DataFrame | None = None  # source_row, crm_id, website, reason
    absorbed: dict[str, str] | None = None  # account key merged by a review decision -> the key it joined


def _completeness(df: pd.DataFrame) -> np.ndarray:
    """Filled fields per record, each field counted once: a band's derived ``_low``/``_high``
    columns are the same fact as the field itself (counting them would make a record with a
    head count three times as "complete" and change which duplicate survives)."""
    from marketmap.ingest.schema import RANGE_COLUMNS

    return df.drop(columns=RANGE_COLUMNS, errors="ignore").notna().sum(axis=1).to_numpy()


def _fits_domain(name: str, label: str) -> bool:
    """The name is the domain's label, or its initials are (IBM / International Business Machines)."""
    compact = name.replace(" ", "")
    if not compact or not label:
        return False
    initials = "".join(w[0] for w in name.split() if w and w not in ("and", "of", "the"))
    return compact.startswith(label) or label.startswith(compact) or initials == label


def _survivor_order(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    return codes, ordered, first, sizes


def _different_names(df: pd.DataFrame, ordered, first, sizes) -> tuple[np.ndarray, list[tuple]]:
    """Records whose name clearly differs from their domain survivor's: (rows, review pairs)."""
    surv = np.repeat(ordered[first], sizes)
    cand = np.flatnonzero(np.repeat(sizes > 1, sizes) & (ordered != surv))
    names = df["name_norm"].to_numpy()
    crm = df["crm_id"].to_numpy()
    domains = df["domain"].to_numpy()
    out, pairs = [], []
    for k in cand:
        a, b = ordered[k], surv[k]
        if crm[a] == crm[b] or names[a] == names[b]:
            continue
        score = fuzz.token_set_ratio(names[a], names[b])
        if score >= SAME_DOMAIN_MIN_SIMILARITY:
            continue
        label = str(domains[a]).split(".")[0]
        if _fits_domain(names[a], label) and _fits_domain(names[b], label):
            continue
        out.append(a)
        pairs.append((a, domains[a], float(score)))
    return np.asarray(out, dtype=np.int64), pairs


def dedupe_accounts(
    records: pd.DataFrame,
    fuzzy_threshold: float = FUZZY_THRESHOLD,
    not_company_hosts: list[str] | tuple[str, ...] = (),
    merge_pairs: list[tuple[str, str]] | tuple = (),
    owned: bool = False,
    others: pd.DataFrame | None = None,
    record_hashes=None,
) -> DedupeResult:
    """Merge account records by normalised domain and queue fuzzy name matches for review.

    ``merge_pairs``: (left_key, right_key) pairs a person decided are the same company; both
    accounts are merged (pairs whose accounts are no longer in the export are ignored).
    ``owned``: the caller keeps no reference to ``records``, so the records are freed as soon as
    the survivors are copied out (before the fuzzy review, the step's memory peak).
    ``others``: the export's accounts that are not in ``records`` (a re-read that deduplicates
    only the changed records and their domains): look-alike names are searched among all of
    them, and only pairs with an account of ``records`` are returned (see ``fuzzy_review``).
    ``crm_ids`` carries each record's ``record_domain``: its company domain before a same-domain
    review split it off, so a later re-read knows which domain it belongs to, and its entry of
    ``record_hashes`` (one per record, in ``records``' order; NA without).
    """
    df = records.copy(deep=False)  # new columns only: the caller's frame stays as it is
    del records
    if "website" in df and len(df):
        df["domain"], dropped = company_domains(df["website"], df["name"].fillna(""), not_company_hosts)
    else:
        df["domain"], dropped = None, pd.Series(dtype="object")
    # per record, by position: a copy of the references, not of the strings
    record_domain = np.array(df["domain"].to_numpy(dtype=object), dtype=object, copy=True)
    if record_hashes is None:  # all blank
        record_hashes = pd.arrays.IntegerArray(np.zeros(len(df), dtype=np.int64), np.ones(len(df), dtype=bool))
    record_hashes = pd.array(record_hashes, dtype="Int64")
    df["name_norm"] = normalise_names(df["name"]).astype("object") if len(df) else []
    df["_complete"] = _completeness(df.drop(columns=["source_row"], errors="ignore"))
    created = df["crm_created"] if "crm_created" in df else pd.Series(pd.NaT, index=df.index)
    df["_created"] = pd.to_datetime(created, utc=True).fillna(pd.Timestamp.max.tz_localize("UTC"))
    warn = dropped.notna().to_numpy() if len(dropped) else np.zeros(len(df), dtype=bool)
    warnings = pd.DataFrame(
        {
            "source_row": df["source_row"].to_numpy()[warn] if "source_row" in df else np.zeros(warn.sum()),
            "crm_id": df["crm_id"].to_numpy()[warn],
            "website": df["website"].to_numpy()[warn] if "website" in df else [],
            "reason": dropped.to_numpy()[warn] if len(dropped) else [],
        }
    )

    # Same domain, clearly different names: not merged; the record is held for review.
    codes, ordered, first, sizes = _survivor_order(df)
    split, split_pairs = _different_names(df, ordered, first, sizes)
    domain_review = []
    if len(split):
        survivors = dict(zip(df["domain"].to_numpy()[ordered[first]], ordered[first], strict=True))
        for a, domain, score in split_pairs:
            b = survivors[domain]
            domain_review.append(("id:" + str(df["crm_id"].iat[a]), domain, df["name"].iat[a], df["name"].iat[b],
                                  score, "account_domain"))  # fmt: skip
        df.loc[df.index[split], "domain"] = None
    # Order every domain's records survivor first: most complete, oldest in the CRM, earliest row.
    if len(split):
        codes, ordered, first, sizes = _survivor_order(df)
    in_multi = np.repeat(sizes > 1, sizes)
    lone_rows = np.flatnonzero(codes < 0)

    # groupby().first() takes the first non-null value per column: the survivor's own value
    # where it has one, else the value of the next most complete duplicate. Only domains
    # with several records need it; the rest (most of a TAM) are taken as they are.
    # One copy of the survivors' rows (single-record domains, then each multi-record domain's
    # survivor, then the records without a domain); the multi-record domains' coalesced values
    # are written over their survivor rows. (At 1M accounts a concat of separate takes cost a
    # second full copy of the frame.)
    singles, multi_survivors = ordered[~in_multi], ordered[first][sizes > 1]
    accounts = df.drop(columns=["_complete", "_created"]).take(np.concatenate([singles, multi_survivors, lone_rows]))
    accounts = accounts.reset_index(drop=True)
    if len(multi_survivors):
        merged = df.take(ordered[in_multi]).drop(columns=["_complete", "_created"])
        merged = merged.groupby("domain", sort=False, dropna=True).first()  # domains in survivor order
        block = np.arange(len(singles), len(singles) + len(multi_survivors))
        for col in merged.columns:
            accounts.iloc[block, accounts.columns.get_loc(col)] = merged[col].to_numpy()
    lone_keys = "id:" + df["crm_id"].take(lone_rows).astype(str)
    accounts["account_key"] = np.concatenate([accounts["domain"].to_numpy()[: len(accounts) - len(lone_rows)],
                                              lone_keys.to_numpy()]) if len(accounts) else []  # fmt: skip

    crm = df["crm_id"].to_numpy()[ordered]
    domains = df["domain"].to_numpy()[ordered]
    survivors = np.repeat(crm[first], sizes)
    is_dup = crm != survivors  # the same CRM id twice (a re-exported row) is not a duplicate
    merges = pd.DataFrame(
        {"account_key": domains[is_dup], "kept_crm_id": survivors[is_dup], "merged_crm_id": crm[is_dup]}
    )
    merges["reason"] = "same domain " + merges["account_key"]

    rows = np.concatenate([ordered, lone_rows])
    crm_ids = pd.DataFrame(
        {
            "crm_id": np.concatenate([crm, df["crm_id"].take(lone_rows).to_numpy()]),
            "account_key": np.concatenate([domains, lone_keys.to_numpy()]),
            "record_domain": record_domain[rows],
            "record_hash": record_hashes.take(rows),
        }
    )
    del record_domain, record_hashes, rows
    crm_ids["is_survivor"] = ~crm_ids["crm_id"].isin(merges["merged_crm_id"])
    # The same CRM id twice in one export (a re-exported row) is one record, not a duplicate.
    crm_ids = crm_ids.drop_duplicates("crm_id")

    if owned:
        del df, crm, domains, survivors
    absorbed: dict[str, str] = {}
    if len(merge_pairs):
        accounts, crm_ids, decided_merges, absorbed = apply_merge_decisions(accounts, crm_ids, merge_pairs)
        merges = pd.concat([merges, decided_merges], ignore_index=True)
    review = fuzzy_review(accounts, fuzzy_threshold, others)
    if domain_review:
        review = pd.concat(
            [review, pd.DataFrame(domain_review, columns=review.columns)], ignore_index=True
        ).drop_duplicates(["left_key", "right_key"])
    if absorbed:  # a pair with an absorbed side cannot be asked about any more
        review = review[~review["left_key"].isin(absorbed) & ~review["right_key"].isin(absorbed)]
    return DedupeResult(accounts, crm_ids, merges, review, warnings, absorbed)


def apply_merge_decisions(
    accounts: pd.DataFrame, crm_ids: pd.DataFrame, merge_pairs
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Merge the accounts of each decided pair (transitively): ``(accounts, crm_ids, merges, absorbed)``."""
    keys = set(accounts["account_key"])
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    for a, b in merge_pairs:
        if a in keys and b in keys and a != b:
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    empty = pd.DataFrame(columns=["account_key", "kept_crm_id", "merged_crm_id", "reason"])
    if not parent:
        return accounts, crm_ids, empty, {}
    group = accounts["account_key"].map(lambda k: root(k) if k in parent or k in parent.values() else None)
    inside = group.notna().to_numpy()
    sub = accounts[inside]
    nothing = pd.Series(None, index=sub.index, dtype=object)
    rows = sub.assign(
        _group=group[inside].to_numpy(),
        _complete=_completeness(sub.drop(columns=["source_row", "account_key"], errors="ignore")),
        _created=pd.to_datetime(sub.get("crm_created", nothing), utc=True).fillna(pd.Timestamp.max.tz_localize("UTC")),
        _row=pd.to_numeric(sub.get("source_row", nothing), errors="coerce").fillna(np.inf),
    )  # fmt: skip
    rows = rows.sort_values(["_group", "_complete", "_created", "_row"], ascending=[True, False, True, True], kind="stable")
    merged = rows.groupby("_group", sort=False).first()  # survivor's values, blanks filled from the other
    absorbed: dict[str, str] = {}
    out_merges = []
    for g, members in rows.groupby("_group", sort=False):
        with_domain = members[members["domain"].notna() & (members["account_key"] == members["domain"])]
        key = with_domain["account_key"].iat[0] if len(with_domain) else members["account_key"].iat[0]
        merged.loc[g, "account_key"] = key
        kept = merged.loc[g, "crm_id"]
        for r in members.itertuples():
            if r.account_key != key:
                absorbed[r.account_key] = key
            if r.crm_id != kept:
                out_merges.append((key, kept, r.crm_id, f"review decision: same company as {key}"))
    merged = merged.reset_index(drop=True).drop(columns=["_complete", "_created", "_row"])
    accounts = pd.concat([accounts[~inside], merged], ignore_index=True)
    crm_ids = crm_ids.copy()
    moved = crm_ids["account_key"].isin(absorbed)
    crm_ids.loc[moved, "account_key"] = crm_ids.loc[moved, "account_key"].map(absorbed)
    merges = pd.DataFrame(out_merges, columns=list(empty.columns))
    crm_ids["is_survivor"] = crm_ids["is_survivor"] & ~crm_ids["crm_id"].isin(merges["merged_crm_id"])
    return accounts, crm_ids, merges, absorbed


def block_keys(names: pd.Series, rare: int = 2, prefix: int = 4) -> pd.DataFrame:
    """(row, key) pairs: each name's ``rare`` rarest words (words in more than MAX_BLOCK
    names are too common to block on) and the first ``prefix`` letters of those words,
    so a typo later in the word, or another word order, still meets. A name made only of
    common words blocks on itself.

    Words are counted as integer codes (one per distinct word), not as strings: at 1M names this
    takes 0.6 s, where frames of strings took 4.9 s. Ties between words of equal rarity and length
    go to the word that comes first in the name."""
    text = names.fillna("").astype(object).to_numpy()
    lists = pc.split_pattern(pa.array(text, type=pa.large_string()), " ")
    flat = pc.list_flatten(lists)
    row = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    longer = pc.greater(pc.utf8_length(flat), 1)
    flat, row = flat.filter(longer), row[longer.to_numpy(zero_copy_only=False)]
    encoded = pc.dictionary_encode(flat)
    code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    vocab = encoded.dictionary
    # each word once per name, in the order of the name
    _, first = np.unique(row * max(len(vocab), 1) + code, return_index=True)
    first.sort()
    row, code = row[first], code[first]
    rarity = np.bincount(code, minlength=len(vocab))  # names holding each word
    length = pc.utf8_length(vocab).to_numpy(zero_copy_only=False).astype(np.int64)
    usable = rarity[code] <= MAX_BLOCK
    row, code, pos = row[usable], code[usable], np.flatnonzero(usable)
    order = np.lexsort((pos, -length[code], rarity[code], row))  # per name: rarest, then longest, first
    row, code = row[order], code[order]
    starts = np.r_[0, np.flatnonzero(np.diff(row)) + 1] if len(row) else np.zeros(0, dtype=np.int64)
    rank = np.arange(len(row)) - np.repeat(starts, np.diff(np.r_[starts, len(row)]))
    row, code = row[rank < rare], code[rank < rare]
    # every candidate key as text (a word, "~" + its first letters, "=" + a whole name), numbered
    # so that equal texts share one id
    words = vocab.to_numpy(zero_copy_only=False)
    tilde = pa.scalar("~", pa.large_string())
    short = pc.binary_join_element_wise(tilde, pc.utf8_slice_codeunits(vocab, 0, prefix), pa.scalar("", pa.large_string()))
    short = short.to_numpy(zero_copy_only=False)
    is_long = length[code] > prefix
    has_word = np.zeros(len(text), dtype=bool)
    has_word[row] = True
    rest = np.flatnonzero((text != "") & ~has_word)  # only common words: the whole name is the key
    space = np.concatenate([words, short, np.array(["=" + str(n) for n in text[rest]], dtype=object)])
    key_id, key_text = pd.factorize(space)
    pairs_row = np.concatenate([row, row[is_long], rest])
    pairs_key = np.concatenate([key_id[code], key_id[len(words) + code[is_long]],
                                key_id[2 * len(words) + np.arange(len(rest))]])  # fmt: skip
    _, first = np.unique(pairs_row * max(len(key_text), 1) + pairs_key, return_index=True)
    first.sort()
    pairs_row, pairs_key = pairs_row[first], pairs_key[first]
    sizes = np.bincount(pairs_key, minlength=len(key_text))[pairs_key]
    keep = (sizes > 1) & (sizes <= MAX_BLOCK)
    return pd.DataFrame({"row": pairs_row[keep], "key": np.asarray(key_text, dtype=object)[pairs_key[keep]]})


def _lone_first(positions: np.ndarray) -> np.ndarray:
    """Each row's rank by source row (ties and blanks: by position): of two accounts without a
    domain, the one earlier in the export is the pair's left side, however the rows are ordered."""
    pos = pd.to_numeric(pd.Series(positions), errors="coerce").fillna(np.inf).to_numpy(dtype=float)
    rank = np.empty(len(pos), dtype=np.int64)
    rank[np.lexsort((np.arange(len(pos)), pos))] = np.arange(len(pos))
    return rank


def fuzzy_review(
    accounts: pd.DataFrame, threshold: float = FUZZY_THRESHOLD, others: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Pairs (an account without a domain, any other account) whose names look alike.

    With ``others`` (the export's other accounts: account_key, name, name_norm, domain,
    source_row), names are blocked over both frames, as one whole export would be, but only
    pairs with at least one account of ``accounts`` are scored and returned.
    """
    cols = ["left_key", "right_key", "left_name", "right_name", "score", "kind"]
    focus = None
    if others is not None and len(others):
        keep = ["account_key", "name", "name_norm", "domain", "source_row"]
        focus = np.r_[np.ones(len(accounts), dtype=bool), np.zeros(len(others), dtype=bool)]
        accounts = pd.concat([accounts.reindex(columns=keep), others.reindex(columns=keep)], ignore_index=True)
    names = accounts["name_norm"].fillna("")
    usable = ~placeholder_names(names)
    lone_mask = accounts["domain"].isna().to_numpy() & usable
    if not lone_mask.any():
        return pd.DataFrame(columns=cols)
    in_use = np.flatnonzero(usable)
    keys = block_keys(names.iloc[in_use].reset_index(drop=True))
    keys["row"] = in_use[keys["row"].to_numpy()]
    # Only blocks that hold an account without a domain (and, with others, one of accounts) can
    # produce a pair.
    wanted = set(keys["key"].to_numpy()[lone_mask[keys["row"].to_numpy()]])
    if focus is not None:
        wanted &= set(keys["key"].to_numpy()[focus[keys["row"].to_numpy()]])
    keys = keys[keys["key"].isin(wanted)]
    rank = _lone_first(accounts["source_row"].to_numpy() if "source_row" in accounts else np.zeros(len(accounts)))
    acc_keys = accounts["account_key"].to_numpy()
    display = accounts["name"].to_numpy()
    all_names = names.to_numpy()
    found: list[np.ndarray] = []

    def score(left: np.ndarray, right: np.ndarray) -> None:
        for start in range(0, len(left), CHUNK):  # bounded memory: CHUNK x block scores at a time
            part = left[start : start + CHUNK]
            scores = process.cdist(all_names[part], all_names[right], scorer=fuzz.token_sort_ratio,
                                   score_cutoff=threshold, dtype=np.uint8, workers=-1)  # fmt: skip
            i, j = np.nonzero(scores)
            a, c = part[i], right[j]
            keep = (a != c) & ~(lone_mask[c] & (rank[c] < rank[a]))  # self, or a lone-lone pair seen from the other side
            found.append(np.stack([a[keep], c[keep], scores[i[keep], j[keep]]], axis=1))

    for idx in keys.groupby("key", sort=True)["row"].indices.values():
        idx = np.unique(keys["row"].to_numpy()[idx])
        left = idx[lone_mask[idx]]
        if len(idx) < 2 or not len(left):
            continue
        if focus is None:
            score(left, idx)
        else:  # a pair needs one side in focus
            score(left[focus[left]], idx)
            score(left[~focus[left]], idx[focus[idx]])
    if not found:
        return pd.DataFrame(columns=cols)
    pairs = np.unique(np.concatenate(found), axis=0)
    a, c = pairs[:, 0], pairs[:, 1]
    return pd.DataFrame(
        {"left_key": acc_keys[a], "right_key": acc_keys[c], "left_name": display[a], "right_name": display[c],
         "score": pairs[:, 2].astype(float), "kind": "account_name"}
    ).drop_duplicates(["left_key", "right_key"])  # fmt: skip
