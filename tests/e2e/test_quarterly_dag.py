"""Real runs of the quarterly DAG: the gate blocks every corruption, the clean run publishes.

Once per module the quality gate's deterministic raw dataset (see
tests/integration/test_quality_gate.py) is loaded into a warehouse and the quarterly DAG
runs for real (dbt through Cosmos, both gates, publish, report) and publishes Q1 2025.
Each corruption test then works on a copy of that warehouse, breaks one thing, and runs
the DAG again for Q1 2025 with the dbt tasks marked done (so the corruption is not simply
rebuilt away): the run must fail, the alert must fire, and the reporting schema must be
exactly as before.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import psycopg
import pytest
from integration.test_quality_gate import (
    AS_OF,
    KPI_CORRUPTIONS,
    QUARTER,
    RAW_CORRUPTIONS,
    _create,
    _drop,
    execute,
    load_raw,
    reporting_snapshot,
)

from winback import warehouse
from winback.orchestration import run_dag

pytestmark = pytest.mark.e2e

# The corruptions the issue names, each mapped to the check that must catch it.
CORRUPTIONS = {
    "duplicated sales lines": KPI_CORRUPTIONS["duplicated_daily_revenue_row"],
    "revenue doubled": KPI_CORRUPTIONS["revenue_doubled"],
    "missing day of data": RAW_CORRUPTIONS["missing_day"],
    "future-dated lines": RAW_CORRUPTIONS["future_dated_lines"],
    "unknown-client spike": RAW_CORRUPTIONS["unknown_client_spike"],
    "mass cancellations": RAW_CORRUPTIONS["mass_cancellations"],
    "stale data": RAW_CORRUPTIONS["stale_data"],
    "KPI rate above 1": KPI_CORRUPTIONS["rate_above_one"],
    "raw/mart revenue not reconciling": KPI_CORRUPTIONS["raw_mart_not_reconciling"],
    "duplicated quarter row": KPI_CORRUPTIONS["duplicated_quarter_row"],
}


def _point_pipeline_at(monkeypatch, dsn: str, home) -> None:
    monkeypatch.setenv("WINBACK_WAREHOUSE_URL", dsn)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.airflow_conn_uri(dsn))
    monkeypatch.setenv("WINBACK_HOME", str(home))


def _run(conf: dict, **kwargs):
    return run_dag("winback_quarterly_kpis", dt.datetime.now(dt.UTC), conf=conf, **kwargs)


@pytest.fixture(scope="module")
def published(pg_admin_dsn, airflow_home, tmp_path_factory):
    name = f"wb_qdag_{uuid.uuid4().hex[:10]}"
    dsn = _create(pg_admin_dsn, name)
    home = tmp_path_factory.mktemp("quarterly_home")
    try:
        warehouse.bootstrap(dsn)
        load_raw(dsn)
        with pytest.MonkeyPatch.context() as patch:
            _point_pipeline_at(patch, dsn, home)
            run = _run({"quarter": QUARTER.isoformat(), "reason": "first publication"})
        assert str(run.state) == "success"
        yield {"name": name, "dsn": dsn, "home": home}
    finally:
        _drop(pg_admin_dsn, name)


def test_the_clean_run_publishes_the_quarter_and_bi_sees_it(published):
    with psycopg.connect(published["dsn"]) as conn:
        rows = conn.execute("select quarter_start, version, as_of_date from reporting.kpi_quarterly").fetchall()
        publication = conn.execute("select version, reason, validation_id from reporting.kpi_publications"
                                   " where quarter_start = %s", (QUARTER,)).fetchone()
        gate = conn.execute("select success from audit.validation_results where validation_id = %s",
                            (publication[2],)).fetchone()
    assert rows == [(QUARTER, 1, AS_OF)]
    assert publication[:2] == (1, "first publication") and gate == (True,)
    reports = list((published["home"] / "output" / "reports").glob("*2025-Q1*.html"))
    assert reports, "the quarterly DAG renders the review report after publishing"


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corruption_blocks_publication_and_leaves_reporting_untouched(
        corruption, published, pg_admin_dsn, monkeypatch, tmp_path, caplog):
    statements, failed_check = CORRUPTIONS[corruption]
    name = f"wb_qdag_{uuid.uuid4().hex[:10]}"
    dsn = _create(pg_admin_dsn, name, template=published["name"])
    try:
        _point_pipeline_at(monkeypatch, dsn, tmp_path)
        before = reporting_snapshot(dsn)
        execute(dsn, *statements)
        with caplog.at_level(logging.ERROR, logger="winback.orchestration"):
            run = _run({"quarter": QUARTER.isoformat(), "reason": f"after {corruption}"},
                       mark_success_pattern=r"dbt\..*")
        assert str(run.state) == "failed"
        assert reporting_snapshot(dsn) == before
        alerts = [r.getMessage() for r in caplog.records if "winback ALERT" in r.getMessage()]
        assert any(failed_check in alert for alert in alerts), alerts
        with psycopg.connect(dsn) as conn:
            failed = conn.execute("select failed_blocking from audit.validation_results"
                                  " where not success order by created_at desc limit 1").fetchone()
        assert failed and failed_check in failed[0]
    finally:
        _drop(pg_admin_dsn, name)
