"""Benchmark: ingest + normalise + dedupe of N account rows (default 1,000,000).

Compares Market Map's path (pandas C reader, per-distinct-value domain parsing,
groupby-first merge, blocked fuzzy review) with a straightforward per-row pure-Python
peer (csv module, every website parsed on its own, a dict of survivors) on the same
file, in the same run. Each side runs in its own process so peak memory (ru_maxrss)
is its own. Prints rows/s, peak memory and the ratio; both must find the same accounts.

    python bench/bench_ingest.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADER = [
    "Id",
    "Name",
    "Website",
    "Industry",
    "NumberOfEmployees",
    "AnnualRevenue",
    "BillingCountry",
    "CreatedDate",
]
INDUSTRIES = ["Software", "Technology", "Retail", "Healthcare", "Financial Services", "Manufacturing", ""]
SUFFIXES = [".com", ".io", ".co.uk", ".de", ".com.au", ".net"]


def make_file(path: Path, rows: int, seed: int = 1) -> None:
    """A messy Salesforce-style export: ~5% duplicates by domain, ~2% blank websites."""
    rng = np.random.default_rng(seed)
    companies = int(rows * 0.95)
    pick = np.concatenate([np.arange(companies), rng.integers(0, companies, rows - companies)])
    rng.shuffle(pick)
    styles = rng.integers(0, 6, rows)
    blank = rng.random(rows) < 0.02
    employees = rng.lognormal(5, 1.5, rows).astype(int)
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(rows):
            c = int(pick[i])
            host = f"company{c}{SUFFIXES[c % len(SUFFIXES)]}"
            site = ("", f"www.{host}", f"https://{host}/about", f"HTTP://WWW.{host.upper()}", f"{host}:443/?ref=x",
                    f"http://shop.{host}")[styles[i]] if not blank[i] else ""  # fmt: skip
            site = site or (host if not blank[i] else "")
            w.writerow([f"001B{i:014d}", f"Company {c} Inc", site, INDUSTRIES[c % 7], employees[i], c * 1000, "US",
                        "2024-01-02T03:04:05.000+0000"])  # fmt: skip


def run_marketmap(path: str) -> dict:
    from marketmap.ingest.dedupe import dedupe_accounts
    from marketmap.ingest.reader import read_export

    t0 = time.perf_counter()
    res = read_export(Path(path), "accounts", "salesforce")
    t1 = time.perf_counter()
    out = dedupe_accounts(res.frame)
    t2 = time.perf_counter()
    return {
        "seconds": t2 - t0,
        "read_s": t1 - t0,
        "dedupe_s": t2 - t1,
        "accounts": len(out.accounts),
        "with_domain": int(out.accounts["domain"].notna().sum()),
        "merged": len(out.merges),
    }


def run_naive(path: str) -> dict:
    """What one would write first: csv.DictReader, parse each row's website, keep a dict."""
    import tldextract

    extract = tldextract.TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)
    t0 = time.perf_counter()
    survivors: dict[str, dict] = {}
    lone = []
    merged = 0
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            if not row["Id"] or not row["Name"]:
                continue
            try:
                row["NumberOfEmployees"] = int(row["NumberOfEmployees"]) if row["NumberOfEmployees"] else None
            except ValueError:
                continue
            site = row["Website"].strip().lower()
            for prefix in ("https://", "http://"):
                site = site.removeprefix(prefix)
            site = site.split("/")[0].split("?")[0].split(":")[0]
            ext = extract(site)
            domain = f"{ext.domain}.{ext.suffix}" if ext.domain and ext.suffix else None
            if domain is None:
                lone.append(row)
            elif domain in survivors:
                merged += 1
                kept = survivors[domain]
                for k, v in row.items():
                    if kept.get(k) in (None, ""):
                        kept[k] = v
            else:
                survivors[domain] = row
    return {
        "seconds": time.perf_counter() - t0,
        "accounts": len(survivors) + len(lone),
        "with_domain": len(survivors),
        "merged": merged,
    }


def child(which: str, path: str) -> None:
    result = run_marketmap(path) if which == "marketmap" else run_naive(path)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(which: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Account.csv"
        t = time.perf_counter()
        make_file(path, args.rows)
        print(
            f"generated {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s"
        )
        mm = measure("marketmap", path)
        naive = measure("naive", path)
    assert mm["with_domain"] == naive["with_domain"], (mm, naive)
    assert mm["merged"] == naive["merged"], (mm, naive)
    for name, r in (("marketmap", mm), ("naive per-row", naive)):
        print(
            f"{name:<14} {r['seconds']:7.2f} s  {args.rows / r['seconds']:>10,.0f} rows/s  peak {r['peak_mb']:6.0f} MB"
            f"  accounts {r['accounts']:,} (merged {r['merged']:,})"
        )
    print(f"marketmap: read {mm['read_s']:.2f} s, dedupe {mm['dedupe_s']:.2f} s")
    print(f"speed ratio (naive / marketmap): {naive['seconds'] / mm['seconds']:.2f}x; "
          f"memory ratio (marketmap / naive): {mm['peak_mb'] / naive['peak_mb']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
