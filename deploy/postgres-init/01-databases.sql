-- One PostgreSQL server, two databases:
--   airflow  Airflow's metadata (and the Celery result backend), owned by role airflow
--   trebol   the Trébol warehouse (raw, staging, marts, activation schemas), owned by role trebol
--
-- The postgres image runs this file once, when its data volume is empty, as the superuser,
-- with psql. Passwords come from the container's environment (set by docker-compose.yml from
-- AIRFLOW_DB_PASSWORD and WAREHOUSE_DB_PASSWORD) through psql's \getenv, and are quoted by
-- psql (:'name'), so no secret is written in this file. Changing a password later means
-- ALTER ROLE on the running server: this file does not run again.
\set ON_ERROR_STOP on

\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv warehouse_password WAREHOUSE_DB_PASSWORD

SELECT :{?airflow_password} AND :{?warehouse_password} AS passwords_set \gset
\if :passwords_set
\else
  \warn 'AIRFLOW_DB_PASSWORD and WAREHOUSE_DB_PASSWORD must be set in the postgres container'
  SELECT 1 / 0 AS missing_password;
\endif

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;

CREATE ROLE trebol LOGIN PASSWORD :'warehouse_password';
CREATE DATABASE trebol OWNER trebol;

-- Nobody but the owner (and the superuser) connects to either database.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE trebol FROM PUBLIC;
