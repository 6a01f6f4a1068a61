-- One PostgreSQL server, two databases:
--   airflow  Airflow's metadata (and the Celery result backend), owned by role airflow
--   trebol   the Trébol warehouse (raw, staging, marts, activation schemas), owned by role trebol,
--            which may create roles: its migrations (plugins/trebol/warehouse/ddl.py) make the BI
--            role and the task roles; the tasks log in as trebol_loader_login, … (the erasure
--            DAG's as trebol_eraser_login), made here with their passwords, which the migrations
--            let act as their roles (README, Least privilege)
--
-- The postgres image runs this file once, when its data volume is empty, as the superuser,
-- with psql. Passwords come from the container's environment (set by docker-compose.yml from
-- AIRFLOW_DB_PASSWORD, WAREHOUSE_DB_PASSWORD and the five WAREHOUSE_<ROLE>_DB_PASSWORD) through
-- psql's \getenv, and are quoted by psql (:'name'), so no secret is written in this file. Changing a password later means
-- ALTER ROLE on the running server: this file does not run again.
\set ON_ERROR_STOP on

\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv warehouse_password WAREHOUSE_DB_PASSWORD
\getenv loader_password WAREHOUSE_LOADER_DB_PASSWORD
\getenv transformer_password WAREHOUSE_TRANSFORMER_DB_PASSWORD
\getenv activation_password WAREHOUSE_ACTIVATION_DB_PASSWORD
\getenv checker_password WAREHOUSE_CHECKER_DB_PASSWORD
\getenv eraser_password WAREHOUSE_ERASER_DB_PASSWORD

SELECT :{?airflow_password} AND :{?warehouse_password} AND :{?loader_password}
  AND :{?transformer_password} AND :{?activation_password} AND :{?checker_password}
  AND :{?eraser_password}
  AS passwords_set \gset
\if :passwords_set
\else
  \warn 'AIRFLOW_DB_PASSWORD, WAREHOUSE_DB_PASSWORD and the WAREHOUSE_<ROLE>_DB_PASSWORD must be set in the postgres container'
  SELECT 1 / 0 AS missing_password;
\endif

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;

CREATE ROLE trebol LOGIN PASSWORD :'warehouse_password';
ALTER ROLE trebol CREATEROLE;
CREATE DATABASE trebol OWNER trebol;

-- The task roles' logins, made by trebol so that it may administer them (PostgreSQL 16 and later
-- ask for that; the migrations grant each its role and make it act as that role).
SET ROLE trebol;
CREATE ROLE trebol_loader_login LOGIN PASSWORD :'loader_password';
CREATE ROLE trebol_transformer_login LOGIN PASSWORD :'transformer_password';
CREATE ROLE trebol_activation_login LOGIN PASSWORD :'activation_password';
CREATE ROLE trebol_checker_login LOGIN PASSWORD :'checker_password';
CREATE ROLE trebol_eraser_login LOGIN PASSWORD :'eraser_password';
RESET ROLE;

-- Nobody but the owner (and the superuser) connects to either database; the warehouse's
-- migrations let its roles connect to it.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE trebol FROM PUBLIC;
