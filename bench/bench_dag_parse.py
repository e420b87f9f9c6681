"""Benchmark: parsing the DAG file with N client configs (default 1, 10, 100).

For each N, in a fresh interpreter: the time `DagBag` takes to parse dags/ (the DAG
processor's view: every client's DAGs), the time a task process takes (parsing
context set to one DAG id: only that client's file is read and one DAG is built),
and a peer in the same run: a hand-written file defining one equivalent DAG.

    python bench/bench_dag_parse.py [--clients 1 10 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "include" / "clients"

PARSE = textwrap.dedent(
    """
    import json, os, sys, time
    t0 = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag
    t1 = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    t2 = time.perf_counter()
    assert not bag.import_errors, bag.import_errors
    print(json.dumps({"import_airflow_s": t1 - t0, "parse_s": t2 - t1, "dags": len(bag.dags)}))
    """
)

PEER = textwrap.dedent(
    '''
    """A hand-written DAG of the same shape, for comparison (airflow dag)."""
    import pendulum
    from airflow.sdk import DAG, task

    @task
    def step(n: int) -> int:
        return n

    with DAG(dag_id="peer__build", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
        prev = None
        for i in range(9):
            cur = step.override(task_id=f"step_{i}")(i)
            if prev is not None:
                prev >> cur
            prev = cur
    '''
)


def make_clients(d: Path, n: int) -> None:
    d.mkdir(parents=True)
    shutil.copy(CLIENTS / "_defaults.yaml", d)
    demo = yaml.safe_load((CLIENTS / "demo.yaml").read_text())
    for i in range(n):
        demo["client_id"] = f"client_{i:03d}"
        (d / f"client_{i:03d}.yaml").write_text(yaml.safe_dump(demo))


def run(folder: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PARSE, str(folder)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 10, 100])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "AIRFLOW_HOME": str(tmp / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        peer_dir = tmp / "peer"
        peer_dir.mkdir()
        (peer_dir / "peer.py").write_text(PEER)
        peer = run(peer_dir, env)
        print(f"peer: one hand-written DAG                     parse {peer['parse_s'] * 1000:7.0f} ms")
        for n in args.clients:
            clients = tmp / f"clients_{n}"
            make_clients(clients, n)
            e = {**env, "MARKETMAP_CLIENTS_DIR": str(clients)}
            full = run(ROOT / "dags", e)
            one = run(ROOT / "dags", {**e, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "client_000__build"})
            print(
                f"{n:>4} clients: dag processor ({full['dags']:>4} DAGs)  parse {full['parse_s'] * 1000:7.0f} ms"
                f"  ({full['parse_s'] / full['dags'] * 1000:5.1f} ms per DAG = "
                f"{full['parse_s'] / full['dags'] / peer['parse_s']:4.2f}x the peer's one DAG)"
                f";  task process (1 DAG) {one['parse_s'] * 1000:6.0f} ms ({one['parse_s'] / peer['parse_s']:.1f}x the peer)"
            )
        print(
            f"import airflow.dag_processing (paid once per process, not counted above): {peer['import_airflow_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
