"""Benchmark: a 1M-account build on PostgreSQL, step by step, against a raw COPY of the same rows.

The demo client's messy Salesforce export (``marketmap.demo``: duplicates, blank websites, IDN
domains, bad values) is generated once at 20,000 accounts and tiled to ``--accounts`` rows: each
copy gets its own record ids, a copy word in every company name and registrable domain
(``acme.com`` -> ``acmezorvek.com``, whatever the website's spelling), e-mail domain and LinkedIn
URL, so copies never merge and each keeps the demo's mix of problems. (The demo generator itself
is not linear: 100k accounts take ~110 s and 0.5 GB.)

On a fresh PostgreSQL database (``mm_bench_<pid>`` on the local server, dropped at the end) the
build steps run as the build DAG's tasks call them (same package functions, same order), each in
its own process so its peak RSS (``ru_maxrss`` from ``wait4``) is its own:

    ingest → normalise_dedupe → load_warehouse → score_accounts → value_accounts →
    score_contacts → qa_gate → crm_push (CSV "CRM": import-ready files) → validation_report

Enrichment and persona search are left out (they spend credits; bench_enrichment.py measures
them). The floor is a raw ``COPY … FROM STDIN (FORMAT csv)`` of the same three CSV files into
all-text tables of the same database, in the same run. The write floor is the floor of this
design: the rows the build left in the warehouse (~9 per account: accounts, CRM ids, scores,
contacts, the CRM snapshot, push log …) written once by a binary COPY into empty tables with the
warehouse's own keys and indexes. The tasks hand their data over through the warehouse, so no
build that keeps these rows can be faster than it. Then 1% of the accounts change (and 0.5%
new ones appear, as in bench_monthly.py) and the monthly run's steps run: extract_changes
(the CSV client's whole export read and validated; the changed records, and those deduplication
must see with them, deduplicated and loaded: ingest/reread.py) → score_changes → crm_push.

Goals (issue 15): build ≤ 5× the floor, peak RSS per step ≤ 2 GB, monthly ≤ 10% of the build.

    python bench/bench_build_1m.py [--accounts 1000000] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = 20_000  # accounts per demo copy
CLIENT = "demo"
BUILD = ["ingest", "normalise_dedupe", "load_warehouse", "score_accounts", "value_accounts",
         "score_contacts", "qa_gate", "crm_push", "validation_report"]  # fmt: skip
MONTHLY = ["extract_changes", "score_changes", "crm_push"]
# --keep: the inbox lives under <this>/<accounts>/ (MARKETMAP_BENCH_DIR, else the temp folder)
KEEP_ROOT = os.environ.get("MARKETMAP_BENCH_DIR", str(Path(tempfile.gettempdir()) / "marketmap-bench-1m"))


# --- the export ------------------------------------------------------------------------------


def _words(n: int, seed: int = 15) -> list[str]:
    """``n`` distinct made-up lowercase words (copy markers that no fuzzy match confuses)."""
    r = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(
            "".join(r.choice("bcdfghjklmnprstvz") + r.choice("aeiou") for _ in range(3)) + r.choice("klmnrst")
        )
    return sorted(out)


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _domain_templates(websites: list[str]) -> list[str | None]:
    """Per website, the same string with ``\\0`` after the registrable domain's label (None if none)."""
    import pandas as pd

    from marketmap.ingest.domains import normalise_domains

    doms = normalise_domains(pd.Series(websites, dtype="object")).tolist()
    out: list[str | None] = []
    for site, dom in zip(websites, doms, strict=True):
        if not dom or not site:
            out.append(None)
            continue
        label, _, suffix = dom.partition(".")
        pat = re.compile(re.escape(label) + r"(?=\." + re.escape(suffix) + r")", re.I)
        m = pat.search(site)
        out.append(site[: m.end()] + "\0" + site[m.end() :] if m else None)
    return out


def tile_export(src: Path, dst: Path, copies: int) -> dict[str, int]:
    """Write ``copies`` disjoint copies of the demo export in ``src`` into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    words = _words(copies)
    ah, acc = _read(src / "Account.csv")
    ch, con = _read(src / "Contact.csv")
    oh, opp = _read(src / "Opportunity.csv")
    a_id, a_name, a_site = (ah.index(c) for c in ("Id", "Name", "Website"))
    c_id, c_acc, c_mail, c_li = (ch.index(c) for c in ("Id", "AccountId", "Email", "LinkedIn_URL__c"))
    o_id, o_acc = (oh.index(c) for c in ("Id", "AccountId"))
    sites = _domain_templates([r[a_site] for r in acc])
    mails = _domain_templates([r[c_mail].split("@")[-1] if "@" in r[c_mail] else "" for r in con])
    missed = sum(1 for r, s in zip(acc, sites, strict=True) if r[a_site].strip() and s is None)

    def rid(value: str, k: int) -> str:  # 18-char Salesforce-style ids stay 18 chars and unique per copy
        return value[:3] + f"{k:03d}" + value[6:] if len(value) >= 15 else value

    counts = {"accounts": 0, "contacts": 0, "opportunities": 0, "websites_not_tiled": missed * copies}
    with (
        open(dst / "Account.csv", "w", newline="", encoding="utf-8-sig") as fa,
        open(dst / "Contact.csv", "w", newline="", encoding="utf-8-sig") as fc,
        open(dst / "Opportunity.csv", "w", newline="", encoding="utf-8-sig") as fo,
    ):
        wa, wc, wo = csv.writer(fa), csv.writer(fc), csv.writer(fo)
        wa.writerow(ah), wc.writerow(ch), wo.writerow(oh)
        for k, word in enumerate(words):
            for r, tpl in zip(acc, sites, strict=True):
                r = list(r)
                r[a_id] = rid(r[a_id], k)
                if r[a_name].strip():
                    r[a_name] = f"{word.title()} {r[a_name]}"
                if tpl is not None:
                    r[a_site] = tpl.replace("\0", word)
                wa.writerow(r)
            for r, tpl in zip(con, mails, strict=True):
                r = list(r)
                r[c_id], r[c_acc] = rid(r[c_id], k), rid(r[c_acc], k)
                if tpl is not None:
                    local = r[c_mail].rsplit("@", 1)[0]
                    r[c_mail] = f"{local}@{tpl.replace(chr(0), word)}"
                if r[c_li]:
                    r[c_li] = r[c_li].rstrip("/") + f"-{word}"
                wc.writerow(r)
            for r in opp:
                r = list(r)
                r[o_id], r[o_acc] = rid(r[o_id], k), rid(r[o_acc], k)
                wo.writerow(r)
            counts["accounts"] += len(acc)
            counts["contacts"] += len(con)
            counts["opportunities"] += len(opp)
    (dst / "User.csv").write_bytes((src / "User.csv").read_bytes())
    return counts


# --- one step, in its own process -------------------------------------------------------------


def run_step(step: str, run_id: str, pipeline: str) -> dict:
    """What the DAG task of ``step`` calls (``marketmap.orchestration.*_tasks``), without Airflow."""
    import datetime as dt

    from marketmap.config import load_client
    from marketmap.ingest import pipeline as ingest
    from marketmap.scoring import pipeline as scoring
    from marketmap.warehouse import get_engine

    cfg = load_client(CLIENT)
    engine = get_engine()
    run_date = dt.date(2026, 12, 1) if pipeline == "build" else dt.date(2027, 1, 1)
    now = dt.datetime.combine(run_date, dt.time(6), dt.UTC)
    if step == "ingest":
        ingest.start_run(engine, CLIENT, run_id, pipeline, now)
        return ingest.extract_exports(cfg, run_id, engine)
    if step == "normalise_dedupe":
        return ingest.normalise_and_dedupe(cfg, run_id, engine)
    if step == "load_warehouse":
        from marketmap.analysis.owners import record_owner_changes

        out = ingest.load_warehouse(cfg, run_id, engine)
        out["owner_history"] = record_owner_changes(engine, CLIENT, run_id, now)
        return out
    if step == "extract_changes":
        from marketmap import crm
        from marketmap.analysis.owners import record_owner_changes

        ingest.start_run(engine, CLIENT, run_id, pipeline, now)
        out = crm.extract(
            cfg, engine, run_id, crm.adapter_for(cfg), since=now - dt.timedelta(days=31), until=now
        )
        out["owner_changes"] = record_owner_changes(engine, CLIENT, run_id, now)
        return out
    if step == "score_accounts":
        return scoring.score_accounts(cfg, engine, run_id, run_date)
    if step == "value_accounts":
        return scoring.value_accounts(cfg, engine, run_id)
    if step == "score_contacts":
        out = scoring.score_contacts(cfg, engine, run_id, run_date)
        return {k: v for k, v in out.items() if k != "coverage"}
    if step == "score_changes":  # as maintenance.monthly.score_changes
        s = scoring.score_accounts(cfg, engine, run_id, run_date, incremental=True)
        v = scoring.value_accounts(cfg, engine, run_id)
        c = scoring.score_contacts(cfg, engine, run_id, run_date, incremental=True)
        return {
            "accounts_rescored": s.get("rescored", s["accounts"]),
            "scores_written": s["written"],
            "valuations_written": v["written"],
            "contacts_rescored": c.get("rescored", c.get("contacts", 0)),
            "contacts_written": c["written"],
        }
    if step == "qa_gate":
        from marketmap.analysis.qa import qa_gate

        out = qa_gate(
            cfg, engine, override=True
        )  # 10 demo reps own 100k accounts each: over the per-rep bound
        return {
            "passed": out.get("passed"),
            "failed": [g["name"] for g in out.get("gates", []) if not g["passed"]],
        }
    if step == "crm_push":
        from marketmap import crm

        out = crm.push_all(cfg, engine, run_id, crm.adapter_for(cfg), canary=False)
        keep = ("creates", "updates", "skips", "succeeded", "failed", "status")
        return {obj: {k: v for part in s.values() for k, v in part.items() if k in keep} for obj, s in out.items()}
    if step == "validation_report":
        from marketmap.reports import validation
        from marketmap.reports.render import write_report

        path = write_report(validation.build(cfg, engine, run_id))
        return {"report_bytes": Path(path).stat().st_size}
    raise SystemExit(f"unknown step {step!r}")


def copy_floor(url: str, inbox: Path) -> dict:
    """The physical floor: COPY the three CSV files as they are into all-text tables."""
    import psycopg

    rows = {}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for name in ("Account", "Contact", "Opportunity"):
            path = inbox / f"{name}.csv"
            with open(path, encoding="utf-8-sig") as fh:
                header = next(csv.reader(fh))
            table = f"raw_{name.lower()}"
            cols = ", ".join(f'"{c}" text' for c in header)
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} ({cols})")
            with conn.cursor() as cur, open(path, "rb") as fh:
                with cur.copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true, ENCODING 'UTF8')") as cp:
                    while block := fh.read(1 << 20):
                        cp.write(block)
                rows[name] = cur.rowcount
    return rows


def write_floor(url: str) -> dict:
    """The floor of this design: the rows the build left in the warehouse, written once by a
    binary ``COPY`` into empty tables shaped as the warehouse's own (same columns, keys and
    indexes: ``LIKE … INCLUDING ALL``). Every build writes at least these rows, and its tasks hand
    their data over through the warehouse, so no build of this shape is faster. Only the
    ``COPY … FROM`` is timed (each table's rows are first copied out to a temporary file)."""
    import psycopg

    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace "
            "AND relname NOT LIKE 'raw\\_%' AND relname <> 'marketmap_alembic_version' ORDER BY relname")]  # fmt: skip
        for table in tables:
            with tempfile.TemporaryFile() as spool:
                with conn.cursor().copy(f'COPY "{table}" TO STDOUT (FORMAT binary)') as cp:
                    for block in cp:
                        spool.write(block)
                if spool.tell() <= 19:  # a binary COPY's header and trailer: no rows
                    continue
                conn.execute(f'DROP TABLE IF EXISTS "wf_{table}"')
                conn.execute(f'CREATE TABLE "wf_{table}" (LIKE "{table}" INCLUDING ALL)')
                spool.seek(0)
                start = time.perf_counter()
                with conn.cursor() as cur:
                    with cur.copy(f'COPY "wf_{table}" FROM STDIN (FORMAT binary)') as cp:
                        while block := spool.read(1 << 20):
                            cp.write(block)
                    rows[table] = cur.rowcount
                seconds[table] = time.perf_counter() - start
                conn.execute(f'DROP TABLE "wf_{table}"')
    slowest = sorted(seconds, key=seconds.get, reverse=True)[:8]
    return {"seconds": round(sum(seconds.values()), 2), "rows": sum(rows.values()), "tables": len(rows),
            "slowest": {t: [rows[t], round(seconds[t], 2)] for t in slowest}}  # fmt: skip


def child(args) -> int:
    if args.step == "export":
        from marketmap.demo.generate import generate_demo_export

        base = Path(args.inbox).parent.parent.parent / "base"
        generate_demo_export(base, n_accounts=BASE)
        out = tile_export(base, Path(args.inbox), int(args.run_id) // BASE)
    elif args.step == "copy_floor":
        out = copy_floor(os.environ["MARKETMAP_WAREHOUSE_URL"], Path(args.inbox))
    elif args.step == "write_floor":
        out = write_floor(os.environ["MARKETMAP_WAREHOUSE_URL"])
    elif args.step == "month_passes":
        out = {"states": month_passes(os.environ["MARKETMAP_WAREHOUSE_URL"])}
    elif args.step == "change_export":
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_monthly import change_export

        out = dict(zip(("edited", "added"), change_export(Path(args.inbox)), strict=True))
    else:
        out = run_step(args.step, args.run_id, args.pipeline)
    print("RESULT " + json.dumps(out, default=str))
    return 0


# --- the driver -----------------------------------------------------------------------------


def spawn(step: str, env: dict, run_id: str = "", pipeline: str = "build", inbox: str = "") -> dict:
    start = time.perf_counter()
    cmd = [
        sys.executable,
        __file__,
        "--step",
        step,
        "--run-id",
        run_id,
        "--pipeline",
        pipeline,
        "--inbox",
        inbox,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        print(out[-4000:])
        raise SystemExit(f"step {step} failed")
    result = next((json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")), {})
    rss = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime
    print(f"  {step:<18} {wall:8.1f} s  cpu {cpu:7.1f} s  peak RSS {rss:7.0f} MB  {json.dumps(result, default=str)[:160]}",
          flush=True)  # fmt: skip
    return {"step": step, "wall": wall, "cpu": cpu, "rss_mb": rss, "result": result}


def db_size(url: str) -> tuple[int, dict[str, int]]:
    """The database's size and its largest tables' (with indexes and TOAST), in bytes."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = conn.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'public'::regnamespace ORDER BY 2 DESC LIMIT 8"
        ).fetchall()
    return total, dict(tables)


def month_passes(url: str) -> int:
    """As if the build had run a month before the monthly run, with nothing written in between.
    The monthly steps read only what was written since the last complete scoring's start and
    since the last complete push's start less a 5-minute clock margin (crm.plan.PUSH_CLOCK_MARGIN);
    those starts move to now (the push's: now + the margin), so the build's writes are before
    them and the monthly run's after, as a month's gap leaves them. (Moving every build timestamp
    back a month instead costs ~8 minutes of UPDATEs at 1M and selects the same rows.) Run dates
    are logical and stay. Not timed."""
    import psycopg

    from marketmap.crm.plan import PUSH_CLOCK_MARGIN

    margin = int(PUSH_CLOCK_MARGIN.total_seconds())
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        return sum(
            conn.execute(
                f"UPDATE {table} SET started_at = now() + make_interval(secs => %s) WHERE client_id = %s",
                (ahead, CLIENT),
            ).rowcount
            for table, ahead in (("scoring_state", 0), ("push_state", margin))
        )


def drop_floor(url: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        for name in ("account", "contact", "opportunity"):
            conn.execute(f"DROP TABLE IF EXISTS raw_{name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=1_000_000, help="a multiple of 20,000")
    ap.add_argument(
        "--pg",
        default=os.environ.get("MARKETMAP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    )
    ap.add_argument(
        "--keep",
        metavar="DBNAME",
        help=f"use (create if missing) and keep this database, and the inbox under {KEEP_ROOT}/<accounts>/ "
        "(the export is generated only if its CSV files are missing)",
    )
    ap.add_argument(
        "--only",
        metavar="STEP,STEP",
        help="run only these steps, in this order, against the --keep database (no floor, no monthly run); "
        f"{', '.join(MONTHLY[:2])} run as the monthly pipeline, the others as the build. Without --only, "
        "--keep runs the floor and the build (the monthly run, which edits the export, is left out)",
    )
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    ap.add_argument("--pipeline", default="build", help=argparse.SUPPRESS)
    ap.add_argument("--inbox", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        return child(args)
    if args.accounts % BASE:
        ap.error(f"--accounts must be a multiple of {BASE:,}")
    only = [s for s in (args.only or "").split(",") if s]
    if only and not args.keep:
        ap.error("--only needs --keep DBNAME (the steps read the previous steps' data)")
    if unknown := [s for s in only if s not in BUILD + MONTHLY]:
        ap.error(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(dict.fromkeys(BUILD + MONTHLY))}")

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    db = args.keep or f"mm_bench_{os.getpid()}"
    url = make_url(args.pg).set(database=db).render_as_string(hide_password=False)
    if args.keep:
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": db}).first():
                conn.execute(text(f'CREATE DATABASE "{db}"'))
        root = Path(KEEP_ROOT) / str(args.accounts)
        root.mkdir(parents=True, exist_ok=True)
        home = root / "mm"
        inbox = home / "inbox" / CLIENT
        env = {**os.environ, "MARKETMAP_HOME": str(home), "MARKETMAP_WAREHOUSE_URL": url}
        if only:
            _migrate(url)  # a database just created has no schema yet
            print(f"{', '.join(only)} on {db} ({args.accounts:,} accounts), one process per step")
            steps = [spawn(s, env, *_run_of(s)) for s in only]
            print()
            print("| step | wall | CPU | peak RSS |")
            print("|---|---:|---:|---:|")
            for s in steps:
                print(f"| {s['step']} | {s['wall']:.1f} s | {s['cpu']:.1f} s | {s['rss_mb']:.0f} MB |")
            return 0
        if all((inbox / f"{n}.csv").exists() for n in ("Account", "Contact", "Opportunity", "User")):
            print(f"export: reusing {inbox}")
        else:
            spawn("export", env, str(args.accounts), inbox=str(inbox))
        # the monthly run edits the export and the warehouse: a kept database stays as the build left it
        return _full(url, env, inbox, args.accounts, monthly=False)
    with tempfile.TemporaryDirectory(prefix="mm-bench-1m-") as tmp, admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
        try:
            home = Path(tmp) / "mm"
            inbox = home / "inbox" / CLIENT
            env = {**os.environ, "MARKETMAP_HOME": str(home), "MARKETMAP_WAREHOUSE_URL": url}
            # in a process of its own too: this driver stays small, so no step inherits its memory
            spawn("export", env, str(args.accounts), inbox=str(inbox))
            return _full(url, env, inbox, args.accounts)
        finally:
            from marketmap.warehouse import dispose_engines

            dispose_engines()
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


def _run_of(step: str) -> tuple[str, str]:
    """(run id, pipeline) a step runs under: the monthly run's own steps, else the build's."""
    return ("bench_monthly", "monthly") if step in MONTHLY[:2] else ("bench_build", "build")


def _migrate(url: str) -> None:
    """Bring the database's schema to head (as the deploy's ``marketmap migrate`` does): the steps check it."""
    from sqlalchemy import create_engine

    from marketmap.warehouse import migrate

    engine = create_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def _print_write_floor(written: dict, floor: float, build: float) -> None:
    print()
    print(f"write floor: {written['rows']:,} rows in {written['tables']} tables written in {written['seconds']:.1f} s "
          f"= {written['seconds'] / floor:.1f}× the raw COPY floor; the build is {build / written['seconds']:.1f}× "
          "the write floor")  # fmt: skip
    for table, (rows, seconds) in written["slowest"].items():
        print(f"  {table:<24} {rows:>10,} rows {seconds:6.1f} s")


def _full(url: str, env: dict, inbox: Path, accounts: int, monthly: bool = True) -> int:
    """The floor, the whole build and (if ``monthly``) the monthly run, then the tables of results."""
    _migrate(url)
    mb = sum(f.stat().st_size for f in inbox.glob("*.csv")) / 1e6
    print(f"export: {mb:,.0f} MB of CSV")

    print("floor: raw COPY of the same CSV files into all-text tables")
    floor = spawn("copy_floor", env, inbox=str(inbox))
    drop_floor(url)  # not part of the warehouse's size
    print(f"build ({accounts:,} accounts) on PostgreSQL, one process per step")
    build = [spawn(s, env, "bench_build", "build") for s in BUILD]
    size_build = db_size(url)
    print("write floor: the rows the build left, written once into tables shaped as the warehouse's")
    written = spawn("write_floor", env)["result"]
    if not monthly:
        print()
        print("| step | wall | CPU | peak RSS |")
        print("|---|---:|---:|---:|")
        for s in [floor, *build]:
            print(f"| {s['step']} | {s['wall']:.1f} s | {s['cpu']:.1f} s | {s['rss_mb']:.0f} MB |")
        _print_write_floor(written, floor["wall"], sum(s["wall"] for s in build))
        print(f"database size after the build: {size_build[0] / 1e6:,.0f} MB")
        return 0

    # each in a process of its own: a child's peak RSS includes its parent's at the fork (the
    # kernel carries the pre-exec memory's high-water mark over), so this driver must stay small
    states = spawn("month_passes", env)["result"]["states"]
    print(f"a month passes: the starts of the last scoring and push ({states} states) move to now")
    changed = spawn("change_export", env, inbox=str(inbox))["result"]
    print(f"monthly: {changed['edited']:,} accounts edited, {changed['added']:,} added")
    monthly = [spawn(s, env, "bench_monthly", "monthly") for s in MONTHLY]
    size_month = db_size(url)

    tb, tm = sum(s["wall"] for s in build), sum(s["wall"] for s in monthly)
    worst = max(build + monthly, key=lambda s: s["rss_mb"])
    print()
    print("| run | wall | CPU (step processes) | peak RSS (largest step) | vs floor |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| raw COPY floor | {floor['wall']:.1f} s | {floor['cpu']:.1f} s | {floor['rss_mb']:.0f} MB | 1.0× |"
    )
    print(f"| build | {tb:.1f} s | {sum(s['cpu'] for s in build):.1f} s | {max(s['rss_mb'] for s in build):.0f} MB "
          f"| {tb / floor['wall']:.1f}× |")  # fmt: skip
    print(f"| monthly, 1% changed | {tm:.1f} s ({tm / tb:.0%} of the build) | {sum(s['cpu'] for s in monthly):.1f} s "
          f"| {max(s['rss_mb'] for s in monthly):.0f} MB | {tm / floor['wall']:.1f}× |")  # fmt: skip
    print()
    print("| step | build wall | peak RSS | monthly wall | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for s in build:
        print(f"| {s['step']} | {s['wall']:.1f} s | {s['rss_mb']:.0f} MB | | |")
    for s in monthly:
        print(f"| {s['step']} | | | {s['wall']:.1f} s | {s['rss_mb']:.0f} MB |")
    _print_write_floor(written, floor["wall"], tb)
    print()
    print(f"database size: {size_build[0] / 1e6:,.0f} MB after the build, {size_month[0] / 1e6:,.0f} MB after the "
          "monthly run (before autovacuum reclaims the dead rows of the re-load)")  # fmt: skip
    for name, size in size_month[1].items():
        print(f"  {name:<20} {size_build[1].get(name, 0) / 1e6:8,.0f} MB -> {size / 1e6:8,.0f} MB")
    print(f"goals: build ≤ 5× floor: {'met' if tb <= 5 * floor['wall'] else 'NOT met'} ({tb / floor['wall']:.1f}×); "
          f"peak RSS ≤ 2 GB: {'met' if worst['rss_mb'] <= 2048 else 'NOT met'} ({worst['step']} {worst['rss_mb']:.0f} MB); "
          f"monthly ≤ 10% of build: {'met' if tm <= 0.1 * tb else 'NOT met'} ({tm / tb:.0%})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
