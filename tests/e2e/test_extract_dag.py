"""Real Airflow runs (dag.test) of the nightly extract DAG against a real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from winback.config import get_settings
from winback.orchestration import logical_date_for, run_dag

pytestmark = pytest.mark.e2e


@pytest.fixture
def pipeline_env(monkeypatch, warehouse_dsn, source_dsn, tmp_path, airflow_home):
    monkeypatch.setenv("WINBACK_WAREHOUSE_URL", warehouse_dsn)
    monkeypatch.setenv("WINBACK_SOURCE_URL", source_dsn)
    monkeypatch.setenv("WINBACK_LANDING_URL", str(tmp_path))
    monkeypatch.setenv("WINBACK_TIMEZONE", "UTC")
    with psycopg.connect(source_dsn) as conn:
        conn.execute("create table sales_lines (line_id text, order_id text, client_id text, order_date date,"
                     " quantity numeric, net_amount numeric, status text, updated_at timestamptz)")
        conn.execute("create table clients (client_id text, region text, updated_at timestamptz)")
        conn.execute("create table managers (manager_id text, name text)")
        conn.execute("insert into clients values ('C1', 'North', '2025-01-01 08:00+00'),"
                     " ('C2', 'South', '2025-01-01 08:00+00')")
        conn.execute("insert into managers values ('M1', 'Ann')")
        conn.execute("insert into sales_lines values ('L1','O1','C1','2025-01-09',1,100,'completed',"
                     "'2025-01-09 10:00+00'), ('L2','O2','C2','2025-01-10',1,50,'completed','2025-01-10 10:00+00')")
    (tmp_path / "contacts_20250110.csv").write_text(
        "contact_id,client_id,manager_id,contact_at,channel\nK1,C1,M1,2025-01-10 09:00,call\n")
    return warehouse_dsn, source_dsn, tmp_path


def counts(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("select (select count(*) from raw.sales_lines), (select count(*) from raw.contacts),"
                            " (select count(*) from raw.clients), (select count(*) from raw.managers)").fetchone()


def test_nightly_runs_load_incrementally_and_rerun_is_idempotent(pipeline_env):
    warehouse_dsn, source_dsn, landing = pipeline_env
    settings = get_settings()
    run = run_dag("winback_nightly_extract", logical_date_for(dt.date(2025, 1, 10), settings))
    assert str(run.state) == "success"
    assert counts(warehouse_dsn) == (2, 1, 2, 1)

    with psycopg.connect(source_dsn) as conn:
        conn.execute("insert into sales_lines values ('L3','O3','C1','2025-01-11',1,70,'completed',"
                     "'2025-01-11 10:00+00')")
    run = run_dag("winback_nightly_extract", logical_date_for(dt.date(2025, 1, 11), settings))
    assert str(run.state) == "success"
    assert counts(warehouse_dsn) == (3, 1, 2, 1)

    with psycopg.connect(warehouse_dsn) as conn:
        before = conn.execute("select * from raw.sales_lines order by line_id").fetchall()
    run = run_dag("winback_nightly_extract", logical_date_for(dt.date(2025, 1, 11), settings))
    assert str(run.state) == "success"
    with psycopg.connect(warehouse_dsn) as conn:
        assert conn.execute("select * from raw.sales_lines order by line_id").fetchall() == before
        loads = conn.execute("select entity, status from audit.load_runs where entity = 'sales_lines'").fetchall()
    assert loads == [("sales_lines", "success")] * 3


def test_a_rejected_file_fails_the_run_with_the_column_named(pipeline_env):
    warehouse_dsn, _, landing = pipeline_env
    (landing / "contacts_20250111.csv").write_text("contact_id,client_id,channel\nK2,C1,call\n")
    run = run_dag("winback_nightly_extract", logical_date_for(dt.date(2025, 1, 11), get_settings()))
    assert str(run.state) == "failed"
    with psycopg.connect(warehouse_dsn) as conn:
        status, message = conn.execute(
            "select status, message from audit.load_runs where entity = 'contacts'").fetchone()
    assert status == "rejected" and "'contact_at'" in message
    assert counts(warehouse_dsn)[1] == 1  # the good contacts file still loaded
