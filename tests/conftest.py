"""Test settings: a throw-away Airflow home and warehouse per test session.

The environment is set before anything imports Airflow, so no test touches the
project's own .airflow folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
_HOME = Path(tempfile.mkdtemp(prefix="marketmap-tests-"))

os.environ["AIRFLOW_HOME"] = str(_HOME / "airflow")
os.environ["MARKETMAP_HOME"] = str(_HOME / "marketmap")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
os.environ.pop("MARKETMAP_WAREHOUSE_URL", None)
os.environ.pop("MARKETMAP_STORAGE_URL", None)
# Deployments migrate once at deploy time and tasks only check the schema (marketmap.warehouse);
# the tests' throw-away warehouses migrate on first use. tests/test_storage_migrate.py unsets it.
os.environ["MARKETMAP_MIGRATE_ON_CONNECT"] = "1"
# `make test` exports the UI settings of `make ui` (base URL, port); tests that need links set their own.
os.environ.pop("AIRFLOW__API__BASE_URL", None)
os.environ.pop("MARKETMAP_CLIENTS_DIR", None)

PG_ADMIN_URL = os.environ.get(
    "MARKETMAP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database (SQLite) migrated once per session."""
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture()
def mm_home(tmp_path, monkeypatch) -> Path:
    """A fresh MARKETMAP_HOME (default SQLite warehouse, inbox, outbox) for one test."""
    from marketmap.warehouse import dispose_engines

    home = tmp_path / "mm"
    monkeypatch.setenv("MARKETMAP_HOME", str(home))
    yield home
    dispose_engines()


@pytest.fixture()
def fixture_clients(monkeypatch) -> Path:
    """Use tests/fixtures/clients (the 'sample' client on the real Salesforce export)."""
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(FIXTURES / "clients"))
    return FIXTURES / "clients"


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database on the local server for this session.

    Skips when the server is unreachable on a developer machine; fails when CI is set,
    so the PostgreSQL tests can never silently skip in CI.
    """
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as e:  # noqa: BLE001 - any connection failure means "no server"
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL at {PG_ADMIN_URL} is unreachable: {e}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}")
    name = f"marketmap_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    from marketmap.warehouse import dispose_engines

    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def hs():
    """A local HubSpot server (the vendor's documented API shapes) holding the custom properties
    the test clients' push mapping writes; its token is ``servers.world.HS_TOKEN``."""
    from servers.hubspot import HubSpotServer
    from servers.world import HS_TOKEN, hubspot_custom_properties

    server = HubSpotServer(token=HS_TOKEN, rate_limit=None)
    hubspot_custom_properties(server)
    with server:
        yield server
