"""``marketmap`` — the command line for work outside the scheduler.

marketmap validate [FILES…]      check client configs (all of include/clients by default)
marketmap schema [-o FILE]       JSON Schema of a client file, for editors
marketmap demo-data              write the demo client's CRM export into its inbox
marketmap demo                   demo data + the demo client's initial build through Airflow
marketmap build --client X [--dry-run] [--override-qa] [--param K=V]
                                 run a client's build DAG once through Airflow (dag.test);
                                 a failure prints which step failed, why, and where the log is
marketmap run --client X --pipeline monthly --date 2027-01-01
                                 run any pipeline once, as scheduled on that date
marketmap fields --client X [--json]   every account field a rubric can use: built-in, band range or
                                 custom; type, fill rate, example values (warehouse, else the export)
marketmap preview --client X [--rubric FILE]   score the warehouse TAM with the current or a
                                 candidate rubric: tiers, valuation, back-test, QA, tier moves (read-only)
marketmap access sync            (FAB auth manager) create/update one role per client, client_<id>
marketmap access add-user --client X --username U --email E [--password-stdin]
                                 create a user who sees only client X (its DAGs, portfolio, reports);
                                 --admin instead of --client: an architect who sees every client
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _default_env() -> None:
    """The embedded default: a project-local Airflow home with SQLite, examples off."""
    os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".airflow"))
    os.environ.setdefault("MARKETMAP_HOME", str(Path(os.environ["AIRFLOW_HOME"]) / "marketmap"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
    # Links in alerts and run summaries point at the UI of `make ui` (same default port).
    os.environ.setdefault("AIRFLOW__API__BASE_URL", "http://localhost:8080")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "marketmap.settings.AIRFLOW_SQLITE_CONNECT_ARGS")


def cmd_validate(args: argparse.Namespace) -> int:
    from marketmap.config import (
        ConfigError,
        client_files,
        load_client_file,
        load_defaults,
        push_source_problems,
    )

    files = [Path(f) for f in args.files] or client_files()
    if not files:
        print("no client files found", file=sys.stderr)
        return 1
    failed = 0
    for path in files:
        try:
            cfg = load_client_file(path, load_defaults(path.parent))
            problems = push_source_problems(cfg, str(path))  # needs the warehouse schema: not at DAG parse
            if problems:
                raise ConfigError(problems)
        except ConfigError as e:
            failed += 1
            for f, key, msg in e.problems:
                print(f"{f}: {key + ': ' if key else ''}{msg}", file=sys.stderr)
            continue
        print(f"{path}: ok ({cfg.name}, CRM {cfg.crm.kind}, rubric {cfg.icp.version})")
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from marketmap.config import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    _default_env()
    from marketmap.demo.generate import generate_demo_export
    from marketmap.settings import inbox_dir

    inbox = inbox_dir("demo")
    marker = inbox / ".generated"
    wanted = f"seed={args.seed} accounts={args.accounts}"
    if marker.exists() and marker.read_text() == wanted and not args.force:
        print(f"demo export already in {inbox} ({wanted})")
        return 0
    counts = generate_demo_export(inbox, seed=args.seed, n_accounts=args.accounts)
    marker.write_text(wanted)
    print(f"demo export written to {inbox}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


def _airflow_db_stamp() -> tuple[Path, str]:
    """Where the CLI notes that Airflow's metadata DB was migrated, and what it notes: the Airflow
    version and a hash of the database URL and the auth manager (FAB migrates its own tables), so a
    new version, another database or another auth manager migrates again."""
    import hashlib
    from importlib.metadata import version

    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or "sqlite:///" + str(
        Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    )
    auth = os.environ.get("AIRFLOW__CORE__AUTH_MANAGER", "")
    digest = hashlib.sha256(f"{conn}|{auth}".encode()).hexdigest()[:16]
    return Path(os.environ["AIRFLOW_HOME"]) / ".marketmap-db-migrated", f"airflow {version('apache-airflow-core')} db {digest}"


def _airflow_db_migrate(force: bool = False) -> bool:
    """``airflow db migrate`` (~5 s) only when this Airflow version has not migrated this database
    yet (stamp file in AIRFLOW_HOME; a SQLite file that disappeared counts as not migrated).
    True when it ran."""
    stamp, wanted = _airflow_db_stamp()
    sqlite_file = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    uses_sqlite = not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith(("postgres", "mysql"))
    if (
        not force
        and stamp.exists()
        and stamp.read_text(encoding="utf-8") == wanted
        and (sqlite_file.exists() or not uses_sqlite)
    ):
        return False
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"airflow db migrate failed (exit {proc.returncode})")
    from marketmap.settings import airflow_sqlite_wal

    airflow_sqlite_wal(os.environ["AIRFLOW_HOME"])
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted, encoding="utf-8")
    return True


def warehouse_urls(client_ids: list[str] | None = None) -> list[str]:
    """Every distinct warehouse the clients use (their ``warehouse_conn_id`` or the default)."""
    import marketmap.orchestration  # noqa: F401 - Airflow's connection lookup for warehouse_conn_id
    from marketmap.config import ConfigError, client_files, clients_dir, load_client_file, load_defaults
    from marketmap.warehouse import client_url, default_url

    urls: list[str] = []
    defaults = load_defaults(clients_dir())
    for path in client_files():
        if client_ids and path.stem not in client_ids:
            continue
        try:
            cfg = load_client_file(path, defaults)
        except ConfigError:
            continue  # `marketmap validate` says why; its DAG is a config_error DAG that needs no warehouse
        url = client_url(cfg) or default_url()
        if url not in urls:
            urls.append(url)
    if not client_ids and default_url() not in urls:
        urls.append(default_url())  # the portfolio digest keeps its state there
    return urls


def migrate_all(client_ids: list[str] | None = None, airflow_db: bool = True) -> list[str]:
    """Deploy-time migration: Airflow's metadata DB (when needed) and every client's warehouse
    to the migrations' head. Returns one line per database."""
    from marketmap.warehouse import get_engine, head_revisions, safe_url, schema_revisions

    lines = []
    if airflow_db:
        ran = _airflow_db_migrate()
        lines.append("airflow metadata: " + ("migrated" if ran else "already migrated (stamp matches)"))
    for url in warehouse_urls(client_ids):
        eng = get_engine(url, migrate_schema=True)
        lines.append(f"warehouse {safe_url(eng)}: at {', '.join(sorted(schema_revisions(eng)))} (head {', '.join(sorted(head_revisions()))})")
    return lines


def cmd_migrate(args: argparse.Namespace) -> int:
    """Migrate at deploy time (docker-compose airflow-init, `make migrate`): tasks only check."""
    _default_env()
    if args.force_airflow:
        _airflow_db_migrate(force=True)
    for line in migrate_all(args.client or None, airflow_db=not args.warehouse_only):
        print(line)
    return 0


def run_dag(
    client_id: str,
    pipeline: str = "build",
    conf: dict | None = None,
    verbose: bool = False,
    logical_date: str | None = None,
) -> int:
    """Run ``<client>__<pipeline>`` once, in this process, through Airflow's dag.test().

    ``logical_date`` (``YYYY-MM-DD`` or ISO time, in the client's timezone) runs a scheduled
    pipeline as the scheduler would on that date: the data interval is the cadence that ended
    then (``--date 2027-01-01`` runs the monthly maintenance of December 2026).
    """
    _default_env()
    if not verbose:  # Airflow's per-task INFO lines drown the summary; --verbose brings them back
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    migrate_all([client_id])  # the embedded default runs in this process: migrate before, never in a task
    from marketmap.config import load_client
    from marketmap.settings import marketmap_home

    cfg = load_client(client_id)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    log_file = marketmap_home() / "logs" / "cli" / f"{client_id}__{pipeline}-{stamp}.log"
    with _output_to(None if verbose else log_file):  # Airflow's import warnings and task logs: to the log file
        import pendulum
        from sqlalchemy import select

        from marketmap.orchestration.build_tasks import format_summary
        from marketmap.orchestration.factory import build_client_dags, dag_id
        from marketmap.orchestration.resources import warehouse
        from marketmap.warehouse import schema as t

        dags = build_client_dags(cfg, only=dag_id(client_id, pipeline))
    if not dags:
        raise SystemExit(f"no pipeline {pipeline!r} for client {client_id!r}")
    dag = dags[dag_id(client_id, pipeline)]
    failures: list[tuple[str, str]] = []  # (step, error) in the order the steps failed
    for task in dag.tasks:  # fail fast here: dag.test() would sit out the scheduler's retry delays
        task.retries = 0
        task.on_failure_callback = [*_callbacks(task.on_failure_callback), _remember_failure(failures)]
    when = pendulum.parse(logical_date, tz=cfg.timezone) if logical_date else None
    with _output_to(None if verbose else log_file):
        dag_run = dag.test(run_conf=conf or {}, logical_date=when)
    state = str(getattr(dag_run, "state", "unknown"))
    tis = dag_run.get_task_instances()
    if not state.endswith("success"):
        _close_failed_run(cfg, dag_run.run_id)
        print(failure_summary(dag.dag_id, dag_run.run_id, tis, failures, None if verbose else log_file))
    timed = sorted(((ti.end_date - ti.start_date).total_seconds(), ti.task_id) for ti in tis if ti.start_date and ti.end_date)
    print("step times: " + ", ".join(f"{task} {secs:.1f}s" for secs, task in reversed(timed)))
    published = [ti for ti in tis if ti.task_id == "publish_scores"]
    if published and str(published[0].state).endswith("success"):
        # The scheduler runs <client>__reports on the scores asset; dag.test() does not, so run it here.
        reports = build_client_dags(cfg, only=dag_id(client_id, "reports"))[dag_id(client_id, "reports")]
        for task in reports.tasks:
            task.retries = 0
        with _output_to(None if verbose else log_file):
            reports_run = reports.test()
        print(f"scores changed: {reports.dag_id} finished with state {reports_run.state}")
    with warehouse(cfg).connect() as conn:
        row = conn.execute(
            select(t.runs.c.summary).where(t.runs.c.client_id == client_id, t.runs.c.run_id == dag_run.run_id)
        ).first()
    print()
    if row and row.summary:
        print(format_summary(row.summary))
    print(f"\n{dag.dag_id}: run {dag_run.run_id} finished with state {state}")
    print(f"Airflow home: {os.environ['AIRFLOW_HOME']} (start the UI with `make ui`)")
    return 0 if state.endswith("success") else 1


def _callbacks(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value] if value else []


def _remember_failure(failures: list[tuple[str, str]]):
    """A failure callback (run in this process by dag.test) noting the step and its error in one line."""

    def remember(context: dict) -> None:
        from marketmap.redact import redact

        ti = context.get("ti") or context.get("task_instance")
        exc = context.get("exception")
        text = f"{type(exc).__name__}: {exc}" if exc else "unknown error"
        line = next((part.strip() for part in text.splitlines() if part.strip()), text)
        failures.append((getattr(ti, "task_id", "?"), redact(line)[:300]))

    return remember


@contextlib.contextmanager
def _output_to(path: Path | None):
    """Send everything Airflow prints (task logs, tracebacks) to ``path`` instead of the terminal."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a", encoding="utf-8") as fh:
        try:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                yield
        finally:
            fh.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def failure_summary(dag_id: str, run_id: str, tis, failures: list[tuple[str, str]], log_file: Path | None) -> str:
    """A short summary of a failed run: which step failed, why in one line, where the details are."""
    failed = [ti.task_id for ti in tis if str(ti.state).endswith(".failed") or str(ti.state) == "failed"]
    step, why = failures[0] if failures else (failed[0] if failed else "?", "see the log")
    skipped = sum(1 for ti in tis if "upstream_failed" in str(ti.state))
    lines = [f"FAILED: {dag_id} stopped at step {step}: {why}"]
    if skipped:
        lines.append(f"{skipped} later step(s) did not run; the run is recorded as failed in the warehouse.")
    if log_file is not None:
        lines.append(f"Details (task logs, traceback): {log_file}")
    lines.append(f"Run {run_id}; fix the cause and run the command again (finished work is not repeated).")
    return "\n".join(lines)


def _close_failed_run(cfg, run_id: str) -> None:
    """A run that failed is recorded as failed (the failure callback does it too; idempotent)."""
    from marketmap.ingest.pipeline import close_failed_run
    from marketmap.orchestration.resources import warehouse

    close_failed_run(warehouse(cfg), cfg.client_id, run_id)


def run_build(client_id: str, conf: dict | None = None, verbose: bool = False) -> int:
    """Run ``<client>__build`` once through dag.test()."""
    return run_dag(client_id, "build", conf, verbose)


def cmd_demo(args: argparse.Namespace) -> int:
    rc = cmd_demo_data(args)
    return rc or run_build("demo", {"dry_run": False}, args.verbose)


def cmd_build(args: argparse.Namespace) -> int:
    conf = params(args.param)
    if args.dry_run:
        conf["dry_run"] = True
    if args.override_qa:
        conf["override_qa"] = True
    conf.setdefault("dry_run", False)
    return run_build(args.client, conf, args.verbose)


def cmd_run(args: argparse.Namespace) -> int:
    return run_dag(args.client, args.pipeline, params(args.param), args.verbose, args.date)


def params(items: list[str] | None) -> dict:
    """``--param k=v`` options as a DAG run conf."""
    conf = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--param {item!r}: expected K=V, e.g. --param dry_run=true")
        conf[key.strip()] = yaml_value(value)
    return conf


def yaml_value(text: str):
    """A ``--param k=v`` value as YAML reads it (true, 3, 0.5, text)."""
    import yaml

    return yaml.safe_load(text) if text else ""


def cmd_preview(args: argparse.Namespace) -> int:
    """ICP data review: what the current or a candidate rubric does to the warehouse TAM (writes nothing)."""
    _default_env()
    from marketmap.config import ConfigError
    from marketmap.orchestration.resources import load_effective, warehouse
    from marketmap.reports.preview import format_preview, run_preview

    try:
        cfg = load_effective(args.client)  # with any applied valuation calibration
        result, html = run_preview(
            cfg, warehouse(cfg), Path(args.rubric) if args.rubric else None, args.output, suggest=args.suggest
        )
    except ConfigError as e:
        for f, key, msg in e.problems:
            print(f"{f}: {key + ': ' if key else ''}{msg}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        from marketmap import units

        with units.use_currency(units.client_currency(cfg)):
            print(format_preview(result))
    print(f"\nHTML report: {html}")
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    """Every account field a rubric can use, with its type, fill rate and example values."""
    _default_env()
    from marketmap import storage
    from marketmap.config import ConfigError, load_client
    from marketmap.ingest.fields import as_dicts, field_table, format_table
    from marketmap.ingest.reader import IngestError
    from marketmap.warehouse import client_engine

    try:
        cfg = load_client(args.client)
        engine = client_engine(cfg)
        inbox = storage.path(args.inbox) if args.inbox else None  # a folder or a URL (s3://…), as the root
        fields, origin = field_table(cfg, engine, inbox)
    except ConfigError as e:
        for f, key, msg in e.problems:
            print(f"{f}: {key + ': ' if key else ''}{msg}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IngestError) as e:
        print(str(e), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"origin": origin, "fields": as_dicts(fields)}, indent=2, default=str))
    else:
        print(format_table(fields, origin))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    """The client's review queue: list open look-alike pairs side by side, or decide one."""
    _default_env()
    import getpass

    from marketmap.config import ConfigError
    from marketmap.ingest.review import DECIDED, ReviewError, decide, format_pairs, pairs
    from marketmap.orchestration.resources import load_effective, warehouse

    try:
        cfg = load_effective(args.client)
    except ConfigError as e:
        for f, key, msg in e.problems:
            print(f"{f}: {key + ': ' if key else ''}{msg}", file=sys.stderr)
        return 1
    engine = warehouse(cfg)
    todo = [("merge", i) for i in args.merge or []] + [("keep_apart", i) for i in args.keep_apart or []]
    if args.interactive:
        for p in pairs(engine, cfg.client_id):
            print(format_pairs([p], cfg.client_id).split("\n", 2)[2])
            answer = input("merge (m), keep apart (k), skip (s), quit (q)? ").strip().lower()[:1]
            if answer == "q":
                break
            if answer in ("m", "k"):
                todo.append(("merge" if answer == "m" else "keep_apart", p.id))
    failed = 0
    for decision, pid in todo:
        try:
            p = decide(engine, cfg.client_id, pid, decision, by=f"{getpass.getuser()} (marketmap review)")
        except ReviewError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        then = "merged on the next build" if p.status == "same" else "never asked again"
        print(f"{p.id}: {DECIDED[p.status]} — {p.left_name} / {p.right_name} ({then})")
    if not todo and not args.interactive:
        print(format_pairs(pairs(engine, cfg.client_id), cfg.client_id))
    return 1 if failed else 0


def cmd_pools(args: argparse.Namespace) -> int:
    """The Airflow pools every client's DAGs use (one per paid provider and per CRM API)."""
    from marketmap.config import load_all
    from marketmap.pools import all_pools

    pools = all_pools(load_all())
    if not pools:
        print("no pools needed (no paid provider or CRM API configured)")
    for name, slots in sorted(pools.items()):
        print(f"{name}: {slots} slot(s)")
        if args.apply:
            _default_env()
            airflow = Path(sys.executable).with_name("airflow")
            cmd = [str(airflow), "pools", "set", name, str(slots), "Market Map rate limit (marketmap pools)"]
            subprocess.run(cmd, check=True, capture_output=True)
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    """Per-client access under the FAB auth manager: roles from the client configs, users per client."""
    _default_env()
    if os.environ.get("MARKETMAP_AUTH", "").lower() == "fab":  # the switch `make ui AUTH=fab` uses
        from marketmap.orchestration.access import FAB_AUTH_MANAGER

        os.environ.setdefault("AIRFLOW__CORE__AUTH_MANAGER", FAB_AUTH_MANAGER)
    from marketmap.config import client_files
    from marketmap.orchestration import access

    clients = sorted(p.stem for p in client_files())
    try:
        if args.access_command == "sync":
            for r in access.sync_roles(clients):
                what = "created" if r.created else "updated" if r.added or r.removed else "unchanged"
                print(f"{r.role}: {what} ({r.total} permissions, {r.added} added, {r.removed} removed)")
            return 0
        if args.client is not None and args.client not in clients:
            print(f"--client {args.client!r}: no such client (clients: {', '.join(clients) or 'none'})",
                  file=sys.stderr)  # fmt: skip
            return 1
        password = ""
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif sys.stdin.isatty():
            import getpass

            password = getpass.getpass(f"Password for {args.username}: ")
            if password != getpass.getpass("Repeat it: "):
                print("the passwords do not match", file=sys.stderr)
                return 1
        outcome = access.add_user(args.client, args.username, args.email, password,
                                  args.first_name or "", args.last_name or "")  # fmt: skip
    except access.AccessError as e:
        print(f"marketmap access: {e}", file=sys.stderr)
        return 1
    role = access.role_name(args.client) if args.client else access.ADMIN_ROLE
    print({"created": f"user {args.username} created with role {role}",
           "role added": f"user {args.username} already existed: role {role} added",
           "unchanged": f"user {args.username} already has role {role}"}[outcome])  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="marketmap", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check client config files")
    p.add_argument("files", nargs="*", help="client YAML files (default: every file in include/clients)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print or write the JSON Schema of a client file")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_schema)

    for name, func in (("demo-data", cmd_demo_data), ("demo", cmd_demo)):
        p = sub.add_parser(
            name, help="demo client: " + ("write its CRM export" if name == "demo-data" else "run it")
        )
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--accounts", type=int, default=20_000)
        p.add_argument("--force", action="store_true", help="regenerate the export even if present")
        if name == "demo":
            p.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
        p.set_defaults(func=func)

    p = sub.add_parser("build", help="run a client's build DAG once through Airflow")
    p.add_argument("--client", required=True)
    p.add_argument("--dry-run", action="store_true", help="compute everything, write nothing to the CRM")
    p.add_argument("--override-qa", action="store_true", help="go on even if a QA gate fails")
    p.add_argument("--param", action="append", metavar="K=V", help="a DAG param, e.g. --param dry_run=true")
    p.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "run", help="run any pipeline of a client once through Airflow, optionally for a logical date"
    )
    p.add_argument("--client", required=True)
    p.add_argument("--pipeline", default="build",
                   help="build, monthly, quarterly_personas, drift, valuation, territories, reports")
    p.add_argument("--date", help="logical date (YYYY-MM-DD in the client's timezone): run as scheduled then")
    p.add_argument("--param", action="append", metavar="K=V", help="a DAG param, e.g. --param dry_run=true")
    p.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "preview", help="ICP data review: score the warehouse TAM with the current or a candidate rubric"
    )
    p.add_argument("--client", required=True)
    p.add_argument(
        "--rubric",
        help="candidate rubric: YAML with icp (and optionally valuation), merged over the client's config",
    )
    p.add_argument(
        "-o",
        "--output",
        help="folder or URL for the HTML report (default: <storage root>/reports/<client>/preview-<time>/)",
    )
    p.add_argument("--json", action="store_true", help="print the preview as JSON instead of text")
    p.add_argument("--suggest", action="store_true",
                   help="also suggest a rubric learned from the client's outcomes, back-tested out of sample")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser(
        "migrate", help="deploy-time migration: Airflow's metadata DB (once) and every client warehouse"
    )
    p.add_argument("--client", action="append", help="only this client's warehouse (repeatable)")
    p.add_argument("--warehouse-only", action="store_true", help="leave Airflow's metadata DB alone")
    p.add_argument("--force-airflow", action="store_true", help="run `airflow db migrate` even if stamped")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("fields", help="every account field a rubric can use: type, fill rate, examples")
    p.add_argument("--client", required=True)
    p.add_argument("--inbox", help="folder or URL of the exports (default: the client's inbox in storage)")
    p.add_argument("--json", action="store_true", help="print the fields as JSON")
    p.set_defaults(func=cmd_fields)

    p = sub.add_parser("review", help="the review queue: open look-alike pairs side by side; decide them")
    p.add_argument("--client", required=True)
    p.add_argument("--merge", action="append", metavar="ID", help="the pair is one company: merge on the next build")
    p.add_argument("--keep-apart", action="append", metavar="ID", help="two companies: never ask again")
    p.add_argument("--interactive", "-i", action="store_true", help="decide the open pairs one by one")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("pools", help="list (or --apply: create) the Airflow pools the clients' DAGs use")
    p.add_argument("--apply", action="store_true")
    p.set_defaults(func=cmd_pools)

    p = sub.add_parser("access", help="per-client access (FAB auth manager): roles and users")
    acc = p.add_subparsers(dest="access_command", required=True)
    a = acc.add_parser("sync", help="create or update the role client_<id> of every client")
    a.set_defaults(func=cmd_access)
    a = acc.add_parser("add-user", help="create a user with a client's role (or add the role to a user)")
    who = a.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", help="the client whose role (client_<id>) the user gets")
    who.add_argument("--admin", action="store_true", help="FAB's Admin role instead: every client (architects)")
    a.add_argument("--username", required=True)
    a.add_argument("--email", required=True)
    a.add_argument("--first-name")
    a.add_argument("--last-name")
    a.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    a.set_defaults(func=cmd_access)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
