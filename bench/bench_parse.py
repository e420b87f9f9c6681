"""Benchmark: parse time of each loader file (dags/marketmap_clients_<k>.py) with 100 and 1,000 clients.

The DAG processor parses every file of the DAG folder on its own, in a child process, and gives
up on a file after ``[core] dagbag_import_timeout`` (30 s by default). So what matters is the
parse time of each loader file, not of the folder. For each N, N client YAMLs (copies of
demo.yaml with other ids) are generated; each loader file is parsed by ``DagBag`` in a fresh
interpreter (Airflow's import paid before the clock starts, as in the processor's child).

Peer, in the same run: one hand-written DAG file per client (a 9-task chain with the same
default_args and tags kind), spread over as many folders as there are loader files by the same
hash, each folder parsed by
``DagBag`` the same way. The ratio is per DAG: a client has 7 DAGs in Market Map and 1 in the peer.

    python bench/bench_parse.py [--clients 100 1000]
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
import zlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "include" / "clients"
LOADERS = sorted(ROOT.joinpath("dags").glob("marketmap_clients_*.py"), key=lambda f: int(f.stem.rsplit("_", 1)[-1]))
SHARDS = len(LOADERS)  # as marketmap.orchestration.factory.SHARDS

PARSE = textwrap.dedent(
    """
    import json, sys, time
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    t1 = time.perf_counter()
    assert not bag.import_errors, bag.import_errors
    print(json.dumps({"parse_s": t1 - t0, "dags": len(bag.dags),
                      "timeout_s": conf.getfloat("core", "dagbag_import_timeout")}))
    """
)

PEER = textwrap.dedent(
    '''
    """Client {cid}: a hand-written build DAG (the peer)."""
    import datetime as dt

    import pendulum
    from airflow.sdk import DAG, task


    @task
    def step(n: int) -> int:
        return n


    with DAG(
        dag_id="{cid}__build",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["client:{cid}", "pipeline:build"],
        default_args={{"owner": "revops", "retries": 2, "retry_delay": dt.timedelta(minutes=5)}},
        doc_md=__doc__,
    ):
        prev = None
        for i in range(9):
            cur = step.override(task_id=f"step_{{i}}")(i)
            if prev is not None:
                prev >> cur
            prev = cur
    '''
)


def shard_of(client_id: str) -> int:
    return zlib.crc32(client_id.encode()) % SHARDS  # as marketmap.orchestration.factory.shard_of


def make_clients(d: Path, n: int) -> list[str]:
    d.mkdir(parents=True)
    shutil.copy(CLIENTS / "_defaults.yaml", d)
    demo = yaml.safe_load((CLIENTS / "demo.yaml").read_text())
    ids = [f"client_{i:04d}" for i in range(n)]
    for cid in ids:
        demo["client_id"] = cid
        (d / f"{cid}.yaml").write_text(yaml.safe_dump(demo))
    return ids


def run(target: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PARSE, str(target)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(ROOT / "include"),
        }
        env.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
        for n in args.clients:
            ids = make_clients(tmp / f"clients_{n}", n)
            peer_root = tmp / f"peer_{n}"
            for k in range(SHARDS):
                (peer_root / str(k)).mkdir(parents=True)
            for cid in ids:
                (peer_root / str(shard_of(cid)) / f"{cid}.py").write_text(PEER.format(cid=cid))
            e = {**env, "MARKETMAP_CLIENTS_DIR": str(tmp / f"clients_{n}")}
            print(f"{n} clients")
            worst = 0.0
            for k, loader_file in enumerate(LOADERS):
                loader = run(loader_file, e)
                peer = run(peer_root / str(k), env)
                if not loader["dags"] or not peer["dags"]:
                    print(f"  {loader_file.name}: no clients in this shard")
                    continue
                per_dag, peer_per_dag = loader["parse_s"] / loader["dags"], peer["parse_s"] / peer["dags"]
                worst = max(worst, loader["parse_s"] / loader["timeout_s"])
                print(
                    f"  {loader_file.name:<24} {loader['dags']:>5} DAGs {loader['parse_s']:6.2f} s "
                    f"({loader['parse_s'] / loader['timeout_s']:4.0%} of the {loader['timeout_s']:.0f} s timeout), "
                    f"{per_dag * 1000:5.1f} ms/DAG | peer {peer['dags']:>4} files {peer['parse_s']:6.2f} s, "
                    f"{peer_per_dag * 1000:5.1f} ms/DAG | ratio per DAG {per_dag / peer_per_dag:4.2f}x, "
                    f"per client {loader['parse_s'] / peer['parse_s']:4.2f}x"
                )
            print(f"  slowest loader file: {worst:.0%} of the import timeout")


if __name__ == "__main__":
    main()
