"""Market Map: the Airflow DAGs of the clients in loader shard 3 of 32 (include/clients/<client>.yaml).

Wiring only: the factory in marketmap.orchestration builds ``<client>__<pipeline>`` DAGs. Clients
are spread over 32 loader files by a hash of their id, so each file parses well inside the DAG
processor's import timeout even with 1,000 clients (bench/bench_parse.py), and one slow or
broken parse hides only the clients of its own file.
"""

from marketmap.orchestration.factory import build_all_dags

globals().update(build_all_dags(shard=3))
