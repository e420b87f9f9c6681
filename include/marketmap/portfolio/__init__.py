"""The architects' portfolio view: status of every client, served inside the Airflow UI."""
