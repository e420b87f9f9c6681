"""Market Map: every client's Airflow DAGs, built from include/clients/<client>.yaml.

Wiring only: the factory in marketmap.orchestration builds ``<client>__<pipeline>`` DAGs.
"""

from marketmap.orchestration.factory import build_all_dags

globals().update(build_all_dags())
