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
import threading
import time
import uuid

import psycopg
import pytest
from integration.test_quality_gate import (
    AS_OF,
    KPI_CORRUPTIONS,
    QUARTER,
    RAW_CORRUPTIONS,
    execute,
    raw_warehouse,
    reporting_snapshot,
)
from scratch_databases import scratch_database

from winback import warehouse
from winback.orchestration import run_dag
from winback.tasks import quarterly as quarterly_tasks

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
    home = tmp_path_factory.mktemp("quarterly_home")
    with raw_warehouse(pg_admin_dsn, "wb_qdag") as (name, dsn):
        with pytest.MonkeyPatch.context() as patch:
            _point_pipeline_at(patch, dsn, home)
            run = _run({"quarter": QUARTER.isoformat(), "reason": "first publication"})
        assert str(run.state) == "success"
        yield {"name": name, "dsn": dsn, "home": home}


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
    with scratch_database(pg_admin_dsn, "wb_qdag", template=published["name"]) as (_, dsn):
        _point_pipeline_at(monkeypatch, dsn, tmp_path)
        before = reporting_snapshot(dsn)
        execute(dsn, *statements)
        with caplog.at_level(logging.ERROR, logger="winback.dag_policy"):
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


class _Reviewer:
    """The person answering in the Airflow UI: responds through the HITL REST API's handler."""

    def __init__(self, choice: str, token: str):
        self.choice, self.token = choice, token  # answers only the run whose conf carries the token
        self.answered, self.body, self.error = threading.Event(), None, None

    def get_id(self) -> str:
        return "sales-director"

    def get_name(self) -> str:
        return "Sales Director"

    def respond_when_asked(self, timeout: float = 300) -> None:
        try:
            self._respond(timeout)
        except BaseException as exc:  # noqa: BLE001 - reported by the test, which must not hang
            self.error = exc
            self._end_waiting()

    def _end_waiting(self) -> None:
        """Fail the parked approval task, so a broken responder ends the run instead of hanging it."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            for ti in session.query(TaskInstance).filter(TaskInstance.task_id == quarterly_tasks.APPROVAL_TASK,
                                                         TaskInstance.state == TaskInstanceState.AWAITING_INPUT):
                ti.state = TaskInstanceState.FAILED

    def _respond(self, timeout: float) -> None:
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.dagrun import DagRun
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import String, cast, select

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                waiting = session.execute(
                    select(TaskInstance.id, TaskInstance.dag_id, TaskInstance.run_id)
                    .join(DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id))
                    .where(TaskInstance.dag_id == "winback_quarterly_kpis",
                           TaskInstance.task_id == quarterly_tasks.APPROVAL_TASK,
                           TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                    .where(cast(DagRun.conf, String).contains(self.token))).first()
            if waiting is not None:
                with create_session() as session:  # a session of its own, as the API server's request has
                    self.body = session.execute(select(HITLDetail.body).where(HITLDetail.ti_id == waiting.id)).scalar()
                    update_hitl_detail(dag_id=waiting.dag_id, dag_run_id=waiting.run_id, task_id=quarterly_tasks.APPROVAL_TASK,
                                       update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[self.choice]),
                                       user=self, session=session)
                self.answered.set()
                return
            time.sleep(0.5)
        raise TimeoutError("no approval task waited for input")


@pytest.mark.parametrize("choice", ["Approve", "Reject"])
def test_a_publication_with_warnings_waits_for_a_persons_approval(choice, published, pg_admin_dsn, monkeypatch,
                                                                   tmp_path):
    with scratch_database(pg_admin_dsn, "wb_qdag", template=published["name"]) as (_, dsn):
        _point_pipeline_at(monkeypatch, dsn, tmp_path)
        monkeypatch.setenv("WINBACK_PUBLISH_APPROVAL", "required")
        execute(dsn, "delete from reporting.kpi_quarterly_breakdown_versions",
                "delete from reporting.kpi_quarterly_versions", "delete from reporting.kpi_publications")
        token = uuid.uuid4().hex
        reviewer = _Reviewer(choice, token)
        responder = threading.Thread(target=reviewer.respond_when_asked, daemon=True)
        responder.start()
        run = _run({"quarter": QUARTER.isoformat(), "reason": "reviewed publication", "review_token": token},
                   mark_success_pattern=r"dbt\..*")
        responder.join(timeout=5)

        assert reviewer.error is None, repr(reviewer.error)
        assert reviewer.answered.is_set(), "the publication never asked for approval"
        # Q1 2025's recovered revenue is not final yet: the warning the person approved.
        assert "kpi_quarterly.recovered_revenue_final" in reviewer.body
        with psycopg.connect(dsn) as conn:
            versions = conn.execute("select version, reason from reporting.kpi_publications").fetchall()
        if choice == "Approve":
            assert str(run.state) == "success" and versions == [(1, "reviewed publication")]
        else:
            assert versions == []  # rejected: reporting exactly as it was
