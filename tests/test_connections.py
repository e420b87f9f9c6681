"""Connections without Airflow (env vars in Airflow's two forms) and through Airflow's lookup."""

import pytest

from marketmap import connections


def test_environment_json_and_uri_forms(monkeypatch):
    monkeypatch.setattr(connections, "_resolver", None)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MM_JSON",
        '{"conn_type": "postgres", "host": "db", "login": "u", "password": "p w", "schema": "wh", '
        '"port": 5432, "extra": {"timeout": 5}}',
    )
    monkeypatch.setenv("AIRFLOW_CONN_MM_URI", "postgres://u:p%20w@db:5432/wh?timeout=5")
    a, b = connections.get_connection("mm_json"), connections.get_connection("mm_uri")
    assert (a.host, a.login, a.password, a.schema, a.port) == ("db", "u", "p w", "wh", 5432)
    assert (b.host, b.login, b.password, b.schema, b.port) == ("db", "u", "p w", "wh", 5432)
    assert a.extra_dejson == {"timeout": 5} and b.extra == {"timeout": "5"}
    assert a.get_uri() == b.get_uri() == "postgres://u:p%20w@db:5432/wh"
    with pytest.raises(connections.ConnectionNotFound, match="AIRFLOW_CONN_MM_NONE"):
        connections.get_connection("mm_none")


def test_orchestration_installs_airflows_lookup(monkeypatch):
    import marketmap.orchestration  # noqa: F401 - importing it registers Airflow's lookup

    monkeypatch.setenv("AIRFLOW_CONN_MM_SLACK", '{"conn_type": "slack", "password": "xoxb-fake"}')
    assert connections._resolver is not None
    conn = connections.get_connection("mm_slack")  # through airflow.sdk.BaseHook
    assert conn.conn_type == "slack" and conn.password == "xoxb-fake"
