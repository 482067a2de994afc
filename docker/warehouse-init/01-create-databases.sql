-- Runs once, when the warehouse volume is first initialised (docker-entrypoint-initdb.d),
-- as the superuser POSTGRES_USER (WAREHOUSE_USER). Creates the two databases the compose
-- connections point at:
--   winback         the warehouse (AIRFLOW_CONN_WAREHOUSE): raw, audit, dbt layers, reporting
--   winback_source  the demo sales system (AIRFLOW_CONN_SALES_SOURCE)
-- Schemas, roles and tables are created by `winback bootstrap` (airflow-init runs it, and
-- every extract run repeats it idempotently), not here.
-- CREATE DATABASE cannot run inside a transaction or a DO block: \gexec runs it only when
-- the database does not exist yet.
SELECT 'CREATE DATABASE winback'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'winback')\gexec

SELECT 'CREATE DATABASE winback_source'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'winback_source')\gexec
