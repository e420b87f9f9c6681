# Market Map's Airflow image: the official image extended with the project's pinned runtime
# dependencies and the marketmap package ("extending the image", Airflow docker-stack docs).
# The tag must name the apache-airflow version pinned in requirements.txt and a Python that
# pyproject.toml's requires-python allows (tests/test_compose.py checks both).
FROM apache/airflow:3.3.2-python3.11

# pip runs as the airflow user: the official image refuses pip installs as root.
USER airflow
WORKDIR /opt/airflow

# Dependencies first, in their own layer, so code changes do not reinstall them.
# Naming apache-airflow at the image's own version stops pip from ever swapping Airflow out.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt

# The marketmap package, installed editable from /opt/airflow/include, exactly as locally
# (Makefile: pip install --no-deps -e .). docker-compose.yaml bind-mounts ./include over
# this copy for live edits; without the mount the baked-in copy is used.
COPY --chown=airflow:0 pyproject.toml /opt/airflow/pyproject.toml
COPY --chown=airflow:0 include /opt/airflow/include
RUN pip install --no-cache-dir --no-deps -e /opt/airflow \
 && python -c "import marketmap, airflow.providers.celery, airflow.providers.fab, airflow.providers.postgres"

# DAGs, plugins and SQL are baked in too, so the image runs without bind mounts.
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 sql /opt/airflow/sql

# MARKETMAP_HOME: working files (CSV inboxes, reports). Created here so that a named volume
# mounted on it starts out owned by airflow.
ENV MARKETMAP_HOME=/opt/airflow/marketmap \
    MARKETMAP_CLIENTS_DIR=/opt/airflow/include/clients
RUN mkdir -p "${MARKETMAP_HOME}/inbox" && chmod -R g+rwX "${MARKETMAP_HOME}"
