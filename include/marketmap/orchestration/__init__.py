"""The only part of marketmap that imports Airflow: DAG building, task callables, callbacks."""
