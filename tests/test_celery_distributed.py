"""No shared filesystem: a real CeleryExecutor with two workers whose local directories differ.

Natively started processes (no containers): ``airflow dag-processor``, ``airflow scheduler``,
``airflow api-server`` (the workers' execution API and the portfolio app) and two ``airflow
celery worker`` processes, each with its own AIRFLOW_HOME, MARKETMAP_HOME, TMPDIR and working
directory. Broker: the local Redis; result backend, Airflow metadata and the warehouse: fresh
PostgreSQL databases (dropped at the end). The storage root (``MARKETMAP_STORAGE_URL``) is a
``file://`` directory outside every process's home: it stands in for the object store.

A cluster policy (``airflow_local_settings.task_policy``, test-only) routes the demo's tasks to
two Celery queues, one per worker, so hand-overs between workers are certain, not left to luck:
the CRM canary runs on one worker and the rest of the push on the other; the reports written
on one worker are served by the api-server. The deploy steps are the product's own:
``marketmap migrate`` (Airflow's DB and the warehouse; the tasks only check the schema),
``marketmap pools --apply``, ``marketmap demo-data``.

Slow (about 3-4 minutes on 2 cores): marked ``slow``. Fails, never skips, under CI when Redis or
PostgreSQL is unreachable.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("MARKETMAP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("MARKETMAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ACCOUNTS = 3000  # the demo generator at a size that keeps the run short; same code path as 20,000

pytestmark = pytest.mark.slow

POLICY = '''
"""Test-only cluster policy: route the demo's tasks to two Celery queues (one per worker)."""
import os
import zlib

QUEUES = os.environ["MM_TEST_QUEUES"].split(",")
# The hand-overs that broke with worker-local files: the canary's rows and the rest of the
# push; ingest and the load; the reports written by one worker and summarised by another.
PINNED = {"crm_canary": 0, "crm_push": 1, "ingest": 0, "normalise_dedupe": 1, "validation_report": 0, "summary": 1}


def task_policy(task):
    if not task.dag_id.startswith("demo__"):
        return
    name = task.task_id.rsplit(".", 1)[-1]
    task.queue = QUEUES[PINNED.get(name, zlib.crc32(name.encode()) % 2)]
'''

NODE = '''
import os


def name():
    """The worker's name in task_instance.hostname (both workers share this machine's hostname)."""
    return os.environ.get("MM_TEST_NODE") or os.uname().nodename
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_services() -> None:
    """Redis and PostgreSQL must answer: skip on a laptop without them, fail under CI."""
    import redis
    from sqlalchemy import create_engine, text

    problems = []
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except Exception as e:  # noqa: BLE001 - any failure means "no broker"
        problems.append(f"Redis at {REDIS}: {e}")
    eng = create_engine(PG_ADMIN)
    try:
        with eng.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as e:  # noqa: BLE001
        problems.append(f"PostgreSQL at {PG_ADMIN}: {e}")
    finally:
        eng.dispose()
    if problems:
        if os.environ.get("CI"):
            pytest.fail("CI is set but a service the Celery test needs is unreachable: " + "; ".join(problems))
        pytest.skip("; ".join(problems))


class Cluster:
    """The processes of the deployment and the directories each of them sees."""

    def __init__(self, base: Path):
        from sqlalchemy.engine import make_url

        self.base = base
        self.tag = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.meta_db, self.wh_db = f"mm_celery_{self.tag}", f"mm_celery_wh_{self.tag}"
        admin = make_url(PG_ADMIN)
        self.meta_url = admin.set(drivername="postgresql+psycopg2", database=self.meta_db)
        self.wh_url = admin.set(database=self.wh_db).render_as_string(hide_password=False)
        self.storage = base / "object-store"  # outside every process's home
        self.port = _free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.queues = [f"mmq_{self.tag}_a", f"mmq_{self.tag}_b"]
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        (base / "py").mkdir(parents=True)
        (base / "py" / "airflow_local_settings.py").write_text(POLICY)
        (base / "py" / "mm_test_node.py").write_text(NODE)

    def home(self, node: str) -> Path:
        return self.base / node

    def env(self, node: str) -> dict[str, str]:
        home = self.home(node)
        for d in ("airflow", "mm", "tmp"):
            (home / d).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MARKETMAP_"))}
        meta = self.meta_url.render_as_string(hide_password=False)
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=os.pathsep.join([str(ROOT / "include"), str(self.base / "py")]),
            AIRFLOW_HOME=str(home / "airflow"),
            MARKETMAP_HOME=str(home / "mm"),
            TMPDIR=str(home / "tmp"),
            MM_TEST_NODE=node,
            MM_TEST_QUEUES=",".join(self.queues),
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__HOSTNAME_CALLABLE="mm_test_node.name",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=meta,
            AIRFLOW__CELERY__BROKER_URL=REDIS,
            AIRFLOW__CELERY__RESULT_BACKEND="db+" + meta,
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
            AIRFLOW__OPERATORS__DEFAULT_QUEUE=self.queues[0],
            AIRFLOW__API_AUTH__JWT_SECRET=self.jwt_secret,
            AIRFLOW__API__SECRET_KEY=self.jwt_secret,
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.api,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.api}/execution/",
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="600",
            MARKETMAP_WAREHOUSE_URL=self.wh_url,
            MARKETMAP_STORAGE_URL=f"file://{self.storage}",
            MARKETMAP_CLIENTS_DIR=str(ROOT / "include" / "clients"),
        )
        return env

    jwt_secret = secrets.token_urlsafe(32)

    def run(self, node: str, *cmd: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            list(cmd), env=self.env(node), cwd=self.home(node), capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout

    def start(self, name: str, node: str, *cmd: str) -> None:
        log = self.base / f"{name}.log"
        self.logs[name] = log
        with open(log, "w") as out:
            self.procs[name] = subprocess.Popen(
                list(cmd), env=self.env(node), cwd=self.home(node), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.logs[name].read_text()[-3000:]}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def tail(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-1500:]}" for n, p in self.logs.items())


@pytest.fixture()
def cluster(tmp_path):
    _need_services()
    from sqlalchemy import create_engine, text

    c = Cluster(tmp_path / "cluster")  # pytest keeps the last runs' tmp_path: the logs stay readable
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{c.meta_db}"'))
        conn.execute(text(f'CREATE DATABASE "{c.wh_db}"'))
    try:
        yield c
    finally:
        c.stop()
        with admin.connect() as conn:
            for db in (c.meta_db, c.wh_db):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def _wait(what: str, cluster: Cluster, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        got = check()
        if got:
            return got
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{cluster.tail()}")


def _runs(meta, dag_id: str) -> list:
    from sqlalchemy import text

    with meta.connect() as conn:
        return conn.execute(
            text("select run_id, state, run_type from dag_run where dag_id = :d order by id"), {"d": dag_id}
        ).all()


def _finished(meta, dag_id: str, cluster: Cluster):
    def check():
        runs = _runs(meta, dag_id)
        done = [r for r in runs if r.state in ("success", "failed")]
        if done and done[-1].state == "failed":
            failed = _task_rows(meta, dag_id, done[-1].run_id)
            pytest.fail(f"{dag_id} run {done[-1].run_id} failed: {[(r.task_id, r.state, r.hostname) for r in failed]}"
                        f"\n{_task_logs(cluster, dag_id, done[-1].run_id)}")  # fmt: skip
        return done[-1] if done else None

    return check


def _task_rows(meta, dag_id: str, run_id: str | None = None) -> list:
    from sqlalchemy import text

    q = "select dag_id, run_id, task_id, state, hostname, queue from task_instance where dag_id = :d"
    params = {"d": dag_id}
    if run_id:
        q += " and run_id = :r"
        params["r"] = run_id
    with meta.connect() as conn:
        return conn.execute(text(q), params).all()


def _task_logs(cluster: Cluster, dag_id: str, run_id: str) -> str:
    """The failed task's log, from whichever worker's own log folder holds it."""
    out = []
    for node in ("worker-a", "worker-b"):
        folder = cluster.home(node) / "airflow" / "logs" / f"dag_id={dag_id}"
        for log in sorted(folder.rglob("*.log")) if folder.exists() else []:
            text = log.read_text(errors="replace")
            if "error" in text.lower():
                out.append(f"--- {node}: {log.relative_to(folder)}\n{text[-2500:]}")
    return "\n".join(out[-3:])


def test_demo_build_and_monthly_run_on_two_celery_workers_without_shared_files(cluster):
    import httpx
    from sqlalchemy import create_engine

    airflow, marketmap = str(BIN / "airflow"), str(BIN / "marketmap")
    t0 = time.monotonic()  # phase times are printed (-s), never asserted
    # Deploy: migrate once (the tasks only check), pools, the client's export into storage.
    out = cluster.run("core", marketmap, "migrate")
    assert "airflow metadata: migrated" in out and "warehouse postgresql" in out
    cluster.run("core", marketmap, "pools", "--apply")
    cluster.run("core", marketmap, "demo-data", "--accounts", str(ACCOUNTS))
    assert (cluster.storage / "inbox" / "demo" / "Account.csv").is_file()

    cluster.start("dag-processor", "core", airflow, "dag-processor")
    cluster.start("api-server", "core", airflow, "api-server", "--host", "127.0.0.1", "--port", str(cluster.port),
                  "--workers", "1")  # fmt: skip
    cluster.start("scheduler", "core", airflow, "scheduler")
    for node, queue in zip(("worker-a", "worker-b"), cluster.queues, strict=True):
        cluster.start(node, node, airflow, "celery", "worker", "--queues", queue, "--concurrency", "2",
                      "--celery-hostname", f"{node}@%h", "--skip-serve-logs")  # fmt: skip

    meta = create_engine(cluster.meta_url)
    print(f"deployed (migrate, pools, demo data) after {time.monotonic() - t0:.0f} s")
    try:
        wanted = {"demo__build", "demo__reports", "demo__monthly"}
        _wait("the demo DAGs to be parsed", cluster, lambda: _dag_ids(meta) >= wanted, 240)
        for dag in ("demo__build", "demo__reports"):
            cluster.run("core", airflow, "dags", "unpause", dag)
        cluster.run("core", airflow, "dags", "trigger", "demo__build")
        build = _wait("demo__build to finish", cluster, _finished(meta, "demo__build", cluster), 420)
        print(f"build done after {time.monotonic() - t0:.0f} s")
        # The scheduler's own monthly run: unpausing schedules the most recent 1st of the month.
        cluster.run("core", airflow, "dags", "unpause", "demo__monthly")
        reports = _wait("demo__reports (scheduled by the scores asset)", cluster,
                        _finished(meta, "demo__reports", cluster), 240)  # fmt: skip
        monthly = _wait("demo__monthly to finish", cluster, _finished(meta, "demo__monthly", cluster), 420)
        print(f"reports and monthly done after {time.monotonic() - t0:.0f} s")
        assert monthly.run_type == "scheduled"

        tis = [*_task_rows(meta, "demo__build"), *_task_rows(meta, "demo__reports"), *_task_rows(meta, "demo__monthly")]
        ran = [ti for ti in tis if ti.state == "success"]
        assert {ti.hostname for ti in ran} == {"worker-a", "worker-b"}, [(t.task_id, t.hostname) for t in ran]
        by_task = {ti.task_id.rsplit(".", 1)[-1]: ti for ti in _task_rows(meta, "demo__build", build.run_id)}
        assert by_task["crm_canary"].hostname == "worker-a" and by_task["crm_push"].hostname == "worker-b"
        assert by_task["ingest"].hostname != by_task["normalise_dedupe"].hostname

        # The canary's rows (worker-a) and the rest of the push (worker-b) are in one import file.
        from marketmap.storage import safe_run_id

        import_file = cluster.storage / "runs" / "demo" / safe_run_id(build.run_id) / "crm_import" / "Account_update.csv"
        rows = import_file.read_text(encoding="utf-8").splitlines()
        pushed = _pushed(cluster.wh_url, build.run_id)
        assert pushed > 100 and len(rows) - 1 == pushed

        # Nothing another process needs was written under a worker's own home.
        for node in ("worker-a", "worker-b"):
            local = cluster.home(node) / "mm"
            assert not any((local / d).exists() for d in ("inbox", "runs", "reports", "outbox")), list(local.rglob("*"))

        # The api-server serves reports the workers wrote (validation: build; executive: reports DAG).
        with httpx.Client(base_url=cluster.api, follow_redirects=True, timeout=30) as http:
            token = _admin_token(http)
            auth = {"Authorization": f"Bearer {token}"}
            for run_id, name, title in ((build.run_id, "validation.html", "Validation"),
                                        (reports.run_id, "executive.html", "Executive")):  # fmt: skip
                r = http.get(f"/marketmap/clients/demo/reports/{safe_run_id(run_id)}/{name}", headers=auth)
                assert r.status_code == 200, (name, r.status_code, r.text[:300])
                assert title.lower() in r.text.lower() and "<svg" in r.text
            bad = http.get(f"/marketmap/clients/demo/reports/{safe_run_id(build.run_id)}/..%2Fsummary.json", headers=auth)
            assert bad.status_code == 404
    finally:
        meta.dispose()


def _dag_ids(meta) -> set[str]:
    from sqlalchemy import text

    with meta.connect() as conn:
        try:
            return {r[0] for r in conn.execute(text("select dag_id from serialized_dag"))}
        except Exception:  # noqa: BLE001 - table not there yet
            return set()


def _pushed(wh_url: str, run_id: str) -> int:
    from sqlalchemy import create_engine, text

    eng = create_engine(wh_url)
    try:
        with eng.connect() as conn:
            return conn.execute(
                text("select count(*) from push_log where client_id = 'demo' and run_id = :r and object = 'account' "
                     "and operation = 'update' and status = 'success'"), {"r": run_id},
            ).scalar_one()  # fmt: skip
    finally:
        eng.dispose()


def _admin_token(http) -> str:
    """An API token from the api-server itself (all-admins mode of the simple auth manager)."""
    r = http.get("/auth/token")
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    return r.json()["access_token"]
