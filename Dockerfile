# syntax=docker/dockerfile:1
#
# Trébol image: Airflow 3 + the `trebol` package + the project (DAGs, dbt project, Great
# Expectations context), installed from the hash-locked requirements.lock. One image runs every
# Airflow component; docker-compose.yml picks the command (api-server, scheduler, dag-processor,
# triggerer, celery worker, db migrate).
#
#   docker build -t trebol-airflow:local .
#
# Layout:
#   /opt/trebol    the project (TREBOL_PROJECT_DIR): dags/, dbt_project/, expectations/, plugins/,
#                  config/ (the demo configuration, TREBOL_CONFIG_DIR by default)
#   /opt/airflow   AIRFLOW_HOME and the home of the non-root user `airflow` (uid 50000, gid 0);
#                  logs/ and trebol/ (TREBOL_HOME) are mount points for named volumes
FROM python:3.11-slim

ARG UV_VERSION=0.13.8
ARG AIRFLOW_UID=50000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    AIRFLOW_HOME=/opt/airflow \
    TREBOL_PROJECT_DIR=/opt/trebol \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/trebol/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/trebol/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False \
    GX_ANALYTICS_ENABLED=False \
    DO_NOT_TRACK=1 \
    TQDM_DISABLE=1

# gid 0 as in the official Airflow image, so the image also runs under an arbitrary uid.
RUN useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /opt/airflow --create-home \
        --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/trebol /opt/trebol \
    && chown -R airflow:0 /opt/airflow \
    && chmod -R g+rwX /opt/airflow

WORKDIR /opt/trebol

# Dependencies first (their layer is reused while requirements.lock is unchanged). The lock
# pins every package with hashes; `sync` installs exactly it (and removes anything else, such
# as the base image's pip and setuptools: nothing at run time needs them).
COPY requirements.lock pyproject.toml ./
RUN pip install "uv==${UV_VERSION}" \
    && uv pip sync --system --require-hashes --compile-bytecode requirements.lock

# The project. dags/ and plugins/ stay root-owned (read-only for the runtime user); dbt and
# Great Expectations write into their project folders (dbt target/, GX uncommitted/ and the
# datasource entry in great_expectations.yml), so those two belong to the runtime user.
COPY dags/ dags/
COPY plugins/ plugins/
# the demo configuration; a company mounts its own folder and sets TREBOL_CONFIG_DIR
COPY config/ config/
COPY --chown=airflow:0 dbt_project/ dbt_project/
COPY --chown=airflow:0 expectations/ expectations/

# The `trebol` package (plugins/trebol) and its `trebol` command; editable, so the code Airflow
# imports from the plugins folder and the installed package are the same files.
RUN uv pip install --system --no-deps -e . \
    && mkdir -p expectations/gx/uncommitted \
    && chown -R airflow:0 expectations/gx/uncommitted \
    && python -c "import trebol.settings"

USER airflow
WORKDIR /opt/airflow

CMD ["airflow", "version"]
