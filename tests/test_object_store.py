"""The product with its storage root on a real S3 API.

moto's S3 server runs on 127.0.0.1 and the product talks to it over HTTP through the real
client stack (universal-pathlib → s3fs → aiobotocore/botocore), configured only the way a
deployment is: ``MARKETMAP_STORAGE_URL=s3://…``, ``AWS_ENDPOINT_URL_S3`` and the ``AWS_*``
credentials in the environment. ``marketmap demo-data`` writes the demo inbox (in its own
process); the demo build and a monthly maintenance run go through Airflow's ``dag.test()`` in this
process, the reports the scores asset schedules through ``marketmap run`` in another one. The run
outputs, CRM import files, reports and outbox must be objects in the bucket, nothing shared may be
under ``$MARKETMAP_HOME``, and the portfolio app (the api-server's plugin, in this process) must list
and serve reports from the bucket, including those another process wrote after it had listed them.

Skips without moto/s3fs on a developer machine; fails when ``CI`` is set.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pendulum
import pytest

BUCKET = "marketmap-store"
PREFIX = "marketmap"
ACCOUNTS = 1200  # the demo generator at a size that passes its QA gates; same code path as 20,000


def _needs(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {module} is not installed (requirements*.txt): {e}")
        pytest.skip(f"{module} is not installed (pip install -r requirements.txt -r requirements-dev.txt)")


@pytest.fixture()
def s3_root(mm_home, monkeypatch):
    """moto's S3 server on a free local port, a bucket, and the storage root in it; yields a boto3
    client on the server (to look at the bucket the way an operator would)."""
    _needs("s3fs")
    moto_server = _needs("moto.server")
    boto3 = _needs("boto3")
    import s3fs

    quiet = logging.getLogger("werkzeug")  # moto's server logs every request
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # What a deployment sets: botocore reads the S3 endpoint and the credentials from the
        # environment whenever a client is made (fsspec's FSSPEC_S3_* variables are read only once,
        # when fsspec is imported).
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "MARKETMAP_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "MARKETMAP_STORAGE_CONN_ID"):
            monkeypatch.delenv(name, raising=False)
        s3fs.S3FileSystem.clear_instance_cache()  # no client made for another endpoint
        _reset(endpoint)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
        _reset(endpoint)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()
        quiet.setLevel(level)


def _reset(endpoint: str) -> None:
    """Empty moto's S3 (its buckets live in module state that every server of this process shares)."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30)


def _keys(client, prefix: str = PREFIX + "/") -> set[str]:
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def _object(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _run(pipeline: str, when=None, conf: dict | None = None):
    from marketmap.config import load_client
    from marketmap.orchestration.factory import build_client_dags, dag_id

    dag = build_client_dags(load_client("demo"), only=dag_id("demo", pipeline))[dag_id("demo", pipeline)]
    for task in dag.tasks:
        task.retries = 0  # dag.test() would wait out real retry delays
    run = dag.test(logical_date=when, run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state).endswith("success"), (pipeline, states)
    return run, states


def _portfolio():
    """The api-server's portfolio app (Airflow's own app, our plugin mounted) and an admin's cookie."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    http = TestClient(create_app())
    admin = SimpleAuthManagerUser(username="admin", role="admin")
    http.cookies.set("_token", get_auth_manager().generate_jwt(admin))
    return http


def _cli(*args: str) -> str:
    """``marketmap …`` in its own process (another machine, as far as storage is concerned)."""
    proc = subprocess.run([sys.executable, "-m", "marketmap.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_demo_build_reports_and_monthly_on_s3(airflow_db, mm_home, s3_root, monkeypatch):
    from marketmap import cli, storage
    from marketmap.storage import safe_run_id

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test:8080")
    assert str(storage.root()) == f"s3://{BUCKET}/{PREFIX}"
    reports_at = f"{PREFIX}/reports/demo/"

    # The demo inbox, written into the bucket by the product's own command, in its own process.
    _cli("demo-data", "--accounts", str(ACCOUNTS))
    inbox = _keys(s3_root, f"{PREFIX}/inbox/demo/")
    assert {f"{PREFIX}/inbox/demo/{f}" for f in ("Account.csv", "Contact.csv", "Opportunity.csv")} <= inbox
    # `marketmap fields` reads an export given by URL (before a build: from the export file)
    url = f"s3://{BUCKET}/{PREFIX}/inbox/demo"
    fields = json.loads(_cli("fields", "--client", "demo", "--inbox", url, "--json"))
    assert fields["origin"].startswith(f"export file {url}/Account.csv")

    # The build, through Airflow.
    build, states = _run("build", conf={"dry_run": False})
    assert states["crm_push"].endswith("success") and states["publish_scores"].endswith("success")
    out = f"{PREFIX}/runs/demo/{safe_run_id(build.run_id)}/"
    keys = _keys(s3_root)
    summary = json.loads(_object(s3_root, out + "summary.json"))
    assert summary["outputs"] == f"s3://{BUCKET}/{out.rstrip('/')}"
    assert summary["steps"]["score"]["accounts"] > 1000
    # the bought data file was read from the bucket
    assert sum(summary["steps"]["enrich"]["fields_filled"].values()) > 0
    assert {out + "rejected_rows.csv", out + "warnings.csv", out + "crm_import/Account_update.csv"} <= keys
    # The CRM import file: one file holds the canary's rows and the rest of the push (two tasks).
    rows = list(csv.DictReader(io.StringIO(_object(s3_root, out + "crm_import/Account_update.csv").decode())))
    canary = summary["steps"]["canary"]["canary"]["account"]["result"]
    pushed = summary["steps"]["push"]["account"]["result"]
    assert pushed["status"] == "success", pushed
    assert len(rows) == canary["updated"] + pushed["updated"] > 1000
    assert len({r["Id"] for r in rows}) == len(rows) and all(r["Id"].startswith("001") for r in rows)
    assert {r["Account_Tier__c"] for r in rows} <= {"Tier 1", "Tier 2", "Tier 3", ""}
    assert all(r["ICP_Fit_Score__c"].isdigit() for r in rows)
    validation = f"{reports_at}{safe_run_id(build.run_id)}/validation.html"
    assert validation in keys

    # This process is now the api-server: its portfolio app lists and serves the build's report...
    http = _portfolio()
    page = http.get("/marketmap/clients/demo")
    assert page.status_code == 200
    link = f"/marketmap/clients/demo/reports/{safe_run_id(build.run_id)}/validation.html"
    assert link in page.text and http.get(link).content == _object(s3_root, validation)

    # ...and those a worker writes afterwards: the reports the scores asset schedules, run in another
    # process (`marketmap run`, as a worker on another host would).
    before = {k for k in _keys(s3_root, reports_at) if k.endswith("/executive.html")}
    _cli("run", "--client", "demo", "--pipeline", "reports")
    (executive,) = {k for k in _keys(s3_root, reports_at) if k.endswith("/executive.html")} - before
    link = "/marketmap/clients/demo/reports/" + executive.removeprefix(reports_at)
    page = http.get("/marketmap/clients/demo")
    assert link in page.text, "a report written after the app listed the folder is missing from the page"
    served = http.get(link)
    assert served.status_code == 200 and served.content == _object(s3_root, executive)
    served = http.get(link.replace("executive.html", "distribution.html"))
    assert served.status_code == 200 and b"<svg" in served.content

    # A month of maintenance (December 2026, as the scheduler runs it on the 1st).
    monthly, _ = _run("monthly", pendulum.datetime(2027, 1, 1, 6, tz="America/New_York"))
    month = f"{reports_at}{safe_run_id(monthly.run_id)}/"
    assert {month + "credit_burn.json", month + "data_quality.json"} <= _keys(s3_root)
    served = http.get(f"/marketmap/clients/demo/reports/{safe_run_id(monthly.run_id)}/data_quality.json")
    assert served.status_code == 200
    assert served.json() == json.loads(_object(s3_root, month + "data_quality.json"))
    # its alerts went to the outbox in the bucket
    outbox = [json.loads(line) for line in _object(s3_root, f"{PREFIX}/outbox/demo.jsonl").splitlines()]
    assert outbox and all(m["channel"].startswith("#") for m in outbox)

    # The ICP review with its report written to a URL.
    assert cli.main(["preview", "--client", "demo", "-o", f"s3://{BUCKET}/review/demo"]) == 0
    assert "review/demo/preview.html" in _keys(s3_root, "review/")

    # Nothing another process reads was written on this worker's disk: only the SQLite warehouse and
    # logs are in MARKETMAP_HOME, and no URL was taken for a local folder name ("s3:").
    local = {p.name for p in mm_home.iterdir()}
    assert local <= {"warehouse.db", "warehouse.db-wal", "warehouse.db-shm", "logs"}, sorted(local)
    assert not (Path.cwd() / "s3:").exists()


def test_a_failed_write_leaves_the_object_as_it_was(mm_home, s3_root):
    """A report or CRM import file whose writer fails half-way keeps its previous content (an fsspec
    file would upload its first half on close) and a new one is not created."""
    from marketmap import storage

    def half(target) -> None:
        with target.open("w", newline="", encoding="utf-8") as fh:
            fh.write("Id,Tier__c\r\n001A,T1\r\n")
            raise RuntimeError("the task was killed")

    p = storage.run_dir("demo", "r1") / "crm_import" / "Account_update.csv"
    storage.replace_atomically(p, lambda t: t.write_text("Id,Tier__c\n001A,T2\n001B,T3\n", encoding="utf-8"))
    for path in (p, p.with_name("Account_insert.csv")):
        with pytest.raises(RuntimeError, match="killed"):
            storage.replace_atomically(path, half)
    key = f"{PREFIX}/runs/demo/r1/crm_import/Account_update.csv"
    assert _object(s3_root, key) == b"Id,Tier__c\n001A,T2\n001B,T3\n"
    assert _keys(s3_root) == {key}  # and no Account_insert.csv


def test_crm_import_files_have_the_bytes_of_a_local_root(mm_home, s3_root, tmp_path, monkeypatch):
    """Batches written to an import file (appended, or merged on a retry) give the same bytes on S3 as
    on a local root: CRLF rows and a value with a line break in it are kept as they are."""
    from marketmap import storage
    from marketmap.config import load_client
    from marketmap.crm.base import WriteRecord
    from marketmap.crm.csv_adapter import CsvAdapter

    written = {}
    for url in (f"file://{tmp_path / 'shared'}", f"s3://{BUCKET}/{PREFIX}"):
        monkeypatch.setenv("MARKETMAP_STORAGE_URL", url)
        adapter = CsvAdapter(load_client("demo"))
        adapter.start_run("demo", "r1")
        adapter.write("account", "update", [WriteRecord("a", crm_id="001A", fields={"Name": "two\r\nlines"})])
        # the same adapter's next batch is appended
        adapter.write("account", "update", [WriteRecord("b", crm_id="001B", fields={"Name": "B"})])
        again = CsvAdapter(load_client("demo"))  # a retry in another task: merged
        again.start_run("demo", "r1")
        again.write("account", "update", [WriteRecord("b", crm_id="001B", fields={"Name": "B2"})])
        path = storage.run_dir("demo", "r1") / "crm_import" / "Account_update.csv"
        written[url.split(":")[0]] = path.read_bytes()
    assert written["s3"] == written["file"] == b'Id,Name\r\n001A,"two\r\nlines"\r\n001B,B2\r\n'


def test_paths_bound_to_an_airflow_connection_see_what_other_processes_write(mm_home, s3_root, monkeypatch):
    """With MARKETMAP_STORAGE_CONN_ID the paths are Airflow ObjectStoragePaths on the amazon provider's
    filesystem for that connection (its endpoint and keys, not the environment's). That filesystem is
    made once per process and would keep fsspec's listings: a report another worker writes after this
    process (the api-server) listed the folder must still be listed, and exist."""
    _needs("airflow.providers.amazon")
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import store

    import marketmap.orchestration  # noqa: F401 - registers the path factory
    from marketmap import storage
    from marketmap.reports.render import list_reports

    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    monkeypatch.setenv("AIRFLOW_CONN_MM_S3", json.dumps({"conn_type": "aws", "login": "testing",
                                                        "password": "testing", "extra": extra}))  # fmt: skip
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)  # only the connection says where the store is
    monkeypatch.setenv("MARKETMAP_STORAGE_CONN_ID", "mm_s3")
    monkeypatch.setattr(store, "_STORE_CACHE", {})  # no filesystem of an earlier test's server
    root = storage.root()
    assert isinstance(root, ObjectStoragePath) and root.conn_id == "mm_s3"

    first = storage.reports_root("demo") / "run_1" / "executive.html"
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_text("<html>one</html>", encoding="utf-8")
    assert [r["run_id"] for r in list_reports("demo")] == ["run_1"]
    # another worker writes the next report (its own client, straight to the bucket)
    s3_root.put_object(Bucket=BUCKET, Key=f"{PREFIX}/reports/demo/run_2/executive.html", Body=b"<html>two</html>")
    assert sorted(r["run_id"] for r in list_reports("demo")) == ["run_1", "run_2"]
    second = storage.reports_root("demo") / "run_2" / "executive.html"
    assert second.exists() and second.read_text(encoding="utf-8") == "<html>two</html>"


def test_alerts_written_at_once_to_an_outbox_on_s3_are_all_kept(mm_home, s3_root):
    """Tasks of one client alerting at the same moment (the monthly DAG's checks run in parallel on
    several workers) append to the same outbox object: S3 cannot append, so each append reads,
    adds and rewrites — conditionally, so a line another writer added in between is never lost."""
    from concurrent.futures import ThreadPoolExecutor

    from marketmap.alerts.delivery import outbox_path, write_outbox

    def alert(worker: int) -> None:
        for i in range(8):
            write_outbox("demo", "#revops", f"alert {worker}-{i}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(alert, range(6)))
    lines = [json.loads(x)["text"] for x in outbox_path("demo").read_text(encoding="utf-8").splitlines()]
    assert sorted(lines) == sorted(f"alert {w}-{i}" for w in range(6) for i in range(8))
