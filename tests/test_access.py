"""Per-client access: the roles ``marketmap access sync`` builds from the client configs and the
users ``marketmap access add-user`` creates, on a real FAB auth-manager database.

The browser test (tests/test_browser.py) logs such a user in and checks what they see.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from marketmap.cli import main
from marketmap.orchestration.access import BASE_PERMISSIONS, client_dag_ids, role_name, role_permissions
from marketmap.orchestration.factory import PIPELINES

CLIENTS = Path(__file__).parent / "fixtures" / "report_clients"  # acme and globex
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def test_a_client_role_holds_that_clients_dags_and_no_global_dag_access():
    perms = role_permissions("acme")
    dag_resources = {r for _, r in perms if r.startswith(("DAG:", "DAG Run:"))}
    assert dag_resources == {
        f"{p}acme__{n}" for p in ("DAG:", "DAG Run:") for n in [*PIPELINES, "config_error"]
    }
    assert {("can_read", "DAG:acme__drift"), ("can_edit", "DAG:acme__drift"),
            ("can_create", "DAG Run:acme__drift")} <= perms  # fmt: skip
    # Nothing that opens every DAG or names other clients (assets, dependencies, import errors).
    readable = {r for a, r in perms if a == "can_read"}
    assert not readable & {"DAGs", "Assets", "DAG Dependencies", "ImportError", "Pools", "Cluster Activity"}
    assert not any("globex" in r for _, r in perms)
    assert perms - BASE_PERMISSIONS == {p for p in perms if p[1].startswith(("DAG:", "DAG Run:"))}
    assert role_name("acme") == "client_acme" and "acme__config_error" in client_dag_ids("acme")


def test_sync_under_the_simple_auth_manager_says_what_to_do(monkeypatch, capsys):
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS))
    monkeypatch.delenv("MARKETMAP_AUTH", raising=False)
    assert main(["access", "sync"]) == 1
    err = capsys.readouterr().err
    assert "per-client roles need the FAB auth manager" in err and f"AIRFLOW__CORE__AUTH_MANAGER={FAB}" in err


def test_add_user_for_an_unknown_client_names_the_clients(monkeypatch, capsys):
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS))
    assert main(["access", "add-user", "--client", "initech", "--username", "u", "--email", "u@x.test"]) == 1
    assert "--client 'initech': no such client (clients: acme, globex)" in capsys.readouterr().err


RUN_COMMANDS = """
import json, sys
from marketmap.cli import main
for argv in json.loads(sys.argv[1]):
    if main(argv) != 0:
        sys.exit(f"marketmap {' '.join(argv)} failed")
"""


def _cli(args: list[str], env: dict, stdin: str | None = None) -> str:
    proc = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def _user_dag_resources(db: Path, username: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            """SELECT DISTINCT v.name FROM ab_user u
               JOIN ab_user_role ur ON ur.user_id = u.id
               JOIN ab_permission_view_role pvr ON pvr.role_id = ur.role_id
               JOIN ab_permission_view pv ON pv.id = pvr.permission_view_id
               JOIN ab_view_menu v ON v.id = pv.view_menu_id
               JOIN ab_permission p ON p.id = pv.permission_id
               WHERE u.username = ? AND p.name = 'can_read' AND (v.name LIKE 'DAG:%' OR v.name = 'DAGs')""",
            (username,),
        ).fetchall()
    return {r[0] for r in rows}


def test_sync_and_add_user_on_a_fab_database(tmp_path):
    """The real commands against FAB's tables: roles per client, a user with acme's role only,
    idempotent re-runs, and a permission granted by hand to a client role taken back."""
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__AUTH_MANAGER": FAB,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "MARKETMAP_CLIENTS_DIR": str(CLIENTS),
                "MARKETMAP_HOME": str(tmp_path / "mm")})  # fmt: skip
    _cli([str(bin_dir / "airflow"), "db", "migrate"], env)
    add = ["access", "add-user", "--client", "acme", "--username", "alice", "--email", "alice@acme.test",
           "--password-stdin"]  # fmt: skip
    # `marketmap …` three times in one process (each command builds its own FAB app), to spare
    # two Airflow start-ups; the first add-user reads the password from stdin.
    out = _cli([sys.executable, "-c", RUN_COMMANDS, json.dumps([["access", "sync"], add, add])], env,
               stdin="alice-test-pass\n")  # fmt: skip
    assert "client_acme: created" in out and "client_globex: created" in out
    assert "user alice created with role client_acme" in out
    assert "user alice already has role client_acme" in out

    db = tmp_path / "airflow" / "airflow.db"
    assert _user_dag_resources(db, "alice") == {f"DAG:acme__{p}" for p in [*PIPELINES, "config_error"]}

    # A globex DAG given to client_acme by hand is taken back by the next sync; an unchanged
    # role is left alone.
    with sqlite3.connect(db) as conn:
        role_id = conn.execute("SELECT id FROM ab_role WHERE name = 'client_acme'").fetchone()[0]
        pv = conn.execute(
            """SELECT pv.id FROM ab_permission_view pv JOIN ab_view_menu v ON v.id = pv.view_menu_id
               JOIN ab_permission p ON p.id = pv.permission_id
               WHERE v.name = 'DAG:globex__drift' AND p.name = 'can_read'"""
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO ab_permission_view_role (permission_view_id, role_id) VALUES (?, ?)", (pv, role_id)
        )
    assert "DAG:globex__drift" in _user_dag_resources(db, "alice")
    out = _cli([str(bin_dir / "marketmap"), "access", "sync"], env)
    assert f"client_acme: updated ({len(role_permissions('acme'))} permissions, 0 added, 1 removed)" in out, (
        out
    )
    assert "client_globex: unchanged" in out
    assert "DAG:globex__drift" not in _user_dag_resources(db, "alice")
