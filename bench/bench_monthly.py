"""Benchmark: the demo client's monthly maintenance run with 1% of accounts changed vs its initial build.

Both run the real DAGs through Airflow (``dag.test``, as ``marketmap run`` does) on a fresh
embedded default (SQLite Airflow home and warehouse) in the same run. Between them, 1% of the
accounts in the demo's CRM export change (a new employee count, a new industry) and 0.5% new
accounts appear, as a month of CRM edits would. Each run is its own process, so its peak
memory (``ru_maxrss`` from ``wait4``) is its own. Goal (issue 10): the monthly run costs ≤10%
of the build.

    python bench/bench_monthly.py [--accounts 20000]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one ``marketmap`` process."""
    marketmap = Path(sys.executable).with_name("marketmap")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(marketmap), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(out[-3000:])
    for line in out.splitlines():
        if line.startswith("step times:"):
            print(f"  {' '.join(args[:5])}: {line}")
    return wall, usage.ru_maxrss / 1024, code


def change_export(inbox: Path, share: float = 0.01, new_share: float = 0.005) -> tuple[int, int]:
    """Edit ``share`` of the accounts and add ``new_share`` new ones, in place (deterministic)."""
    path = inbox / "Account.csv"
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    emp, ind, ident, name, site = (
        header.index(c) for c in ("NumberOfEmployees", "Industry", "Id", "Name", "Website")
    )
    step = max(int(1 / share), 1)
    edited = 0
    for i in range(0, len(body), step):
        body[i][emp] = str(int(body[i][emp]) * 2 + 7) if body[i][emp].isdigit() else "250"
        body[i][ind] = "Software"
        edited += 1
    added = int(len(body) * new_share)
    for i in range(added):
        new = list(body[i])
        new[ident], new[name], new[site] = (
            f"001NEW{i:012d}",
            f"Newco {i} Ltd",
            f"https://newco{i}.example.com",
        )
        body.append(new)
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        csv.writer(fh).writerows([header, *body])
    return edited, added


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--accounts", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mm-bench-monthly-") as tmp:
        env = {**os.environ, "AIRFLOW_HOME": f"{tmp}/airflow", "MARKETMAP_HOME": f"{tmp}/mm",
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}  # fmt: skip
        env.pop("MARKETMAP_WAREHOUSE_URL", None)
        assert run(["demo-data", "--accounts", str(args.accounts)], env)[2] == 0
        build = run(["run", "--client", "demo", "--pipeline", "build", "--date", "2026-12-02"], env)
        edited, added = change_export(Path(tmp) / "mm" / "inbox" / "demo")
        monthly = run(["run", "--client", "demo", "--pipeline", "monthly", "--date", "2027-01-01"], env)
        again = run(["run", "--client", "demo", "--pipeline", "monthly", "--date", "2027-01-01"], env)
    print(
        f"demo client, {args.accounts:,} accounts; monthly after {edited:,} edited and {added:,} new accounts"
    )
    print(f"{'run':<28}{'wall':>10}{'peak RSS':>12}{'vs build':>10}")
    for label, (wall, rss, code) in (("initial build", build), ("monthly, 1% changed", monthly),
                                      ("monthly re-run (no change)", again)):  # fmt: skip
        print(
            f"{label:<28}{wall:>9.1f}s{rss:>10.0f}MB{wall / build[0]:>9.0%}"
            + ("" if code == 0 else "  FAILED")
        )
    return 0 if all(r[2] == 0 for r in (build, monthly, again)) else 1


if __name__ == "__main__":
    sys.exit(main())
