"""Benchmark: look-alike name matching for accounts without a domain, on public match sets.

Runs Market Map's review-queue matcher (``dedupe.fuzzy_review``: name cleaning, rare-word
blocking, chunked token-sort scoring) on two cross-source sets in ``../shared/data``:

* Fodor's vs Zagat restaurants (names only: 533 + 331 records, 112 gold pairs);
* Fortune 1000 (2021) vs S&P 500 constituents, gold = same ticker.

Records of the first source play "accounts without a domain", those of the second
"accounts with a domain", exactly as in a build; only cross-source pairs count. Prints
precision, recall and F1 per threshold, next to an exact-normalised-name baseline.

    python bench/bench_dedupe.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from marketmap.ingest.dedupe import fuzzy_review
from marketmap.ingest.domains import normalise_names

THRESHOLDS = (85.0, 90.0, 95.0)


def accounts(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """``left`` without a domain, ``right`` with one; keys L:<id> and R:<id>."""
    df = pd.concat(
        [
            pd.DataFrame(
                {"account_key": "L:" + left["id"].astype(str), "name": left["name"], "domain": None}
            ),
            pd.DataFrame(
                {
                    "account_key": "R:" + right["id"].astype(str),
                    "name": right["name"],
                    "domain": "r" + right["id"].astype(str) + ".example",
                }
            ),  # fmt: skip
        ],
        ignore_index=True,
    )
    df["name_norm"] = normalise_names(df["name"].astype(object))
    return df


def cross_pairs(review: pd.DataFrame) -> set[tuple[str, str]]:
    out = set()
    for a, b in zip(review["left_key"], review["right_key"], strict=True):
        if a.startswith("L:") and b.startswith("R:"):
            out.add((a[2:], b[2:]))
        elif a.startswith("R:") and b.startswith("L:"):
            out.add((b[2:], a[2:]))
    return out


def score(found: set, gold: set) -> dict:
    tp = len(found & gold)
    p = tp / len(found) if found else 0.0
    r = tp / len(gold) if gold else 0.0
    return {
        "pairs": len(found),
        "tp": tp,
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
    }


def exact_baseline(df: pd.DataFrame) -> set:
    left = df[df["account_key"].str.startswith("L:")]
    right = df[df["account_key"].str.startswith("R:")]
    m = left.merge(right, on="name_norm")
    m = m[m["name_norm"] != ""]
    return {(a[2:], b[2:]) for a, b in zip(m["account_key_x"], m["account_key_y"], strict=True)}


_OLD_LEGAL = {"inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "company", "gmbh", "ag",
              "plc", "sa", "sas", "bv", "nv", "pty", "srl", "spa", "oy", "ab", "as", "kg", "lp", "llp", "the"}  # fmt: skip


def previous_matcher(df: pd.DataFrame, threshold: float = 90.0) -> set:
    """The matcher before this change, for comparison: lower case, punctuation out, trailing
    legal words out; blocks = the first word; token-sort ratio >= threshold."""
    import re

    from rapidfuzz import fuzz

    def clean(name: str) -> str:
        s = re.sub(r"\s+", " ", re.sub(r"[^\w\s]+", " ", str(name).lower().replace("&", " and "))).strip()
        words = s.split()
        while len(words) > 1 and words[-1] in _OLD_LEGAL:
            words.pop()
        if len(words) > 1 and words[0] == "the":
            words = words[1:]
        return " ".join(words)

    names = df["name"].map(clean)
    first = names.str.split(" ").str[0]
    found = set()
    for _, grp in df.assign(n=names, b=first).groupby("b"):
        left = grp[grp["account_key"].str.startswith("L:")]
        right = grp[grp["account_key"].str.startswith("R:")]
        for a, na in zip(left["account_key"], left["n"], strict=True):
            for b, nb in zip(right["account_key"], right["n"], strict=True):
                if fuzz.token_sort_ratio(na, nb) >= threshold:
                    found.add((a[2:], b[2:]))
    return found


def evaluate(label: str, df: pd.DataFrame, gold: set) -> list[dict]:
    rows = [{"set": label, "method": "exact cleaned name", **score(exact_baseline(df), gold), "seconds": 0.0}]
    t0 = time.perf_counter()
    rows.append({"set": label, "method": "previous matcher >= 90", **score(previous_matcher(df), gold),
                 "seconds": time.perf_counter() - t0})  # fmt: skip
    for th in THRESHOLDS:
        t0 = time.perf_counter()
        review = fuzzy_review(df, th)
        rows.append({"set": label, "method": f"fuzzy_review >= {th:.0f}", **score(cross_pairs(review), gold),
                     "seconds": time.perf_counter() - t0})  # fmt: skip
    return rows


def fodors_zagat(data: Path) -> tuple[pd.DataFrame, set]:
    d = data / "fodors-zagat-restaurants"
    fodors = pd.read_csv(d / "fodors.csv", dtype=str)
    zagats = pd.read_csv(d / "zagats.csv", dtype=str)
    gold = pd.read_csv(d / "matches_fodors_zagats.csv", dtype=str)
    return accounts(fodors, zagats), set(zip(gold["fodors_id"], gold["zagats_id"], strict=True))


def fortune_sp500(data: Path) -> tuple[pd.DataFrame, set]:
    fortune = pd.read_csv(data / "fortune-1000-2021" / "fortune_1000_2021.csv", dtype=str)
    sp = pd.read_csv(data / "sp500-constituents" / "constituents.csv", dtype=str)
    fortune = fortune.assign(id=fortune["Ticker"].fillna("") + "#" + fortune["rank"], name=fortune["company"])
    sp = sp.assign(id=sp["Symbol"], name=sp["Security"])
    tickers = set(sp["Symbol"])
    gold = {(i, i.split("#")[0]) for i in fortune["id"] if i.split("#")[0] in tickers}
    return accounts(fortune, sp), gold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    data = args.data if args.data.exists() else Path("/work/shared/data")
    rows = []
    for label, loader in (("fodors-zagat", fodors_zagat), ("fortune1000-sp500", fortune_sp500)):
        df, gold = loader(data)
        print(f"{label}: {len(df):,} records, {len(gold):,} gold pairs")
        rows += evaluate(label, df, gold)
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(out.to_string(index=False))


if __name__ == "__main__":
    main()
