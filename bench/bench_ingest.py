"""Benchmark: ingest + normalise + dedupe of N account rows (default 1,000,000).

Compares Market Map's path (Arrow reader, vectorised strict parsing, per-distinct-value
domain parsing, groupby-first merge, blocked fuzzy review) with a straightforward per-row
pure-Python peer (csv module, every row checked and every website parsed on its own, a
dict of survivors) on the same file, in the same run. Each side runs in its own process
so peak memory (ru_maxrss) is its own.

About 1% of the rows are bad, of several kinds, and the generator writes down its answers:
half are rows without a usable key or of the wrong shape (blank, ``#N/A`` or Excel-mangled
Id, blank Name, a field too many, a NUL byte) that must be rejected alone with their line;
half are usable rows with a bad optional value (``about 50``, ``N/A``, ``1.2M``, ``-5``
employees, ``n/a`` website, ``2026-02-30`` created date) that must be kept with a warning.
Both sides must keep and reject exactly the generator's rows and find the same accounts.

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


REJECT_KINDS = ("blank id", "#N/A id", "excel id", "extra field", "nul byte", "blank name")
WARN_KINDS = (
    "employees words",  # a band such as 50-200 is a range now (issue 14), not a bad value
    "employees N/A",
    "employees 1.2M",
    "employees -5",
    "website n/a",
    "impossible date",
)


def make_file(path: Path, rows: int, seed: int = 1, bad_share: float = 0.01) -> dict:
    """A messy Salesforce-style export: ~5% duplicates by domain, ~2% blank websites and
    ``bad_share`` bad rows. Returns the answers: the lines rejected and the ids kept with a warning."""
    rng = np.random.default_rng(seed)
    companies = int(rows * 0.95)
    pick = np.concatenate([np.arange(companies), rng.integers(0, companies, rows - companies)])
    rng.shuffle(pick)
    styles = rng.integers(0, 6, rows)
    blank = rng.random(rows) < 0.02
    employees = rng.lognormal(5, 1.5, rows).astype(int)
    bad = rng.random(rows) < bad_share
    kind = rng.integers(0, 12, rows)
    rejected_lines, warned_ids = [], []
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(rows):
            c = int(pick[i])
            host = f"company{c}{SUFFIXES[c % len(SUFFIXES)]}"
            site = ("", f"www.{host}", f"https://{host}/about", f"HTTP://WWW.{host.upper()}", f"{host}:443/?ref=x",
                    f"http://shop.{host}")[styles[i]] if not blank[i] else ""  # fmt: skip
            site = site or (host if not blank[i] else "")
            row = [f"001B{i:014d}", f"Company {c} Inc", site, INDUSTRIES[c % 7], employees[i], c * 1000, "US",
                   "2024-01-02T03:04:05.000+0000"]  # fmt: skip
            if bad[i]:
                k = int(kind[i])
                if k < len(REJECT_KINDS):
                    rejected_lines.append(i + 2)
                    if k == 0:
                        row[0] = ""
                    elif k == 1:
                        row[0] = "#N/A"
                    elif k == 2:
                        row[0] = f"{1 + i % 9}.84330E+11"
                    elif k == 3:
                        row.append("surplus")
                    elif k == 4:
                        row[1] = "Company\x00" + str(c)
                    else:
                        row[1] = ""
                else:
                    warned_ids.append(row[0])
                    k -= len(REJECT_KINDS)
                    if k < 4:
                        row[4] = ("about 50", "N/A", "1.2M", "-5")[k]
                    elif k == 4:
                        row[2] = "n/a"
                    else:
                        row[7] = "2026-02-30"
            w.writerow(row)
    return {"rejected_lines": rejected_lines, "warned_ids": warned_ids}


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
        "kept": len(res.frame),
        "rejected_lines": sorted(r.row_number for r in res.rejected),
        "warned_ids": sorted(_warned_ids(res)),
        "accounts": len(out.accounts),
        "with_domain": int(out.accounts["domain"].notna().sum()),
        "merged": len(out.merges),
    }


def _warned_ids(res) -> set:
    by_line = dict(zip(res.frame["source_row"], res.frame["crm_id"], strict=True))
    return {by_line[w.row_number] for w in res.warnings}


NO_ID = {"", "#n/a", "n/a", "null", "none"}


def run_naive(path: str) -> dict:
    """What one would write first: csv.reader, check and parse each row, parse each website, keep a dict."""
    import datetime as dt
    import re

    import tldextract

    extract = tldextract.TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)
    mangled = re.compile(r"^[0-9](?:\.[0-9]+)?[eE]\+?[0-9]+$")
    t0 = time.perf_counter()
    survivors: dict[str, dict] = {}
    lone = []
    merged = kept = 0
    rejected_lines, warned_ids = [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        for line, values in enumerate(reader, start=2):
            if len(values) != len(header) or any("\x00" in v for v in values):
                rejected_lines.append(line)
                continue
            row = dict(zip(header, values, strict=True))
            rid = row["Id"].strip()
            if rid.lower() in NO_ID or mangled.match(rid) or not row["Name"].strip():
                rejected_lines.append(line)
                continue
            warned = False
            emp = row["NumberOfEmployees"].strip()
            try:
                row["NumberOfEmployees"] = int(emp) if emp else None
                if row["NumberOfEmployees"] is not None and row["NumberOfEmployees"] < 0:
                    raise ValueError(emp)
            except ValueError:
                row["NumberOfEmployees"], warned = None, True
            try:
                dt.datetime.fromisoformat(row["CreatedDate"].replace("+0000", "+00:00"))
            except ValueError:
                row["CreatedDate"], warned = None, True
            site = row["Website"].strip().lower()
            for prefix in ("https://", "http://"):
                site = site.removeprefix(prefix)
            site = site.split("/")[0].split("?")[0].split(":")[0]
            if site and "." not in site:
                site, warned = "", True
            kept += 1
            if warned:
                warned_ids.append(rid)
            ext = extract(site)
            domain = f"{ext.domain}.{ext.suffix}" if ext.domain and ext.suffix else None
            if domain is None:
                lone.append(row)
            elif domain in survivors:
                merged += 1
                kept_row = survivors[domain]
                for k, v in row.items():
                    if kept_row.get(k) in (None, ""):
                        kept_row[k] = v
            else:
                survivors[domain] = row
    return {
        "seconds": time.perf_counter() - t0,
        "kept": kept,
        "rejected_lines": rejected_lines,
        "warned_ids": sorted(warned_ids),
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
        answers = make_file(path, args.rows)
        print(
            f"generated {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s: "
            f"{len(answers['rejected_lines']):,} to reject, {len(answers['warned_ids']):,} to keep with a warning"
        )
        mm = measure("marketmap", path)
        naive = measure("naive", path)
    for name, r in (("marketmap", mm), ("naive", naive)):
        assert r["rejected_lines"] == answers["rejected_lines"], (
            name,
            "rejected rows differ from the answers",
        )
        assert r["warned_ids"] == sorted(answers["warned_ids"]), (name, "warned rows differ from the answers")
        assert r["kept"] == args.rows - len(answers["rejected_lines"]), (name, r["kept"])
    print(
        f"both kept {mm['kept']:,} rows and rejected exactly the generator's {len(answers['rejected_lines']):,}"
    )
    assert mm["with_domain"] == naive["with_domain"], (mm["with_domain"], naive["with_domain"])
    assert mm["merged"] == naive["merged"], (mm["merged"], naive["merged"])
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
