"""Quarterly KPIs: build KPI staging, gate it with Great Expectations, publish atomically,
then render the review report from the published tables.

Runs on a configurable day after each quarter closes (``WINBACK_QUARTERLY_PUBLISH_DAY``)
and publishes the quarter that just closed. Trigger it by hand with conf
``{"quarter": "2025-01-01", "reason": "late corrections"}`` for any closed quarter, or
``{"backfill": true}`` for every closed quarter not yet published. A failed gate fails the
run naming the failed expectations, alerts, and leaves the reporting schema untouched.
"""

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import dag, task
from cosmos import DbtTaskGroup

from winback import cosmos_config, quarterly
from winback import orchestration as orch
from winback.config import get_settings

settings = get_settings()


@dag(
    dag_id="winback_quarterly_kpis",
    schedule=orch.quarterly_timetable(settings),
    start_date=orch.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=orch.default_args(settings),
    tags=["winback", "kpi", "quality", "publish"],
    doc_md=__doc__,
)
def winback_quarterly_kpis():
    as_of = task(task_id="resolve_as_of")(orch.resolve_as_of_task)()
    # The whole project for one as-of date, so KPI staging and the marts the gate
    # reconciles against describe the same day; the BI views over the marts (tag
    # reporting) too, as rebuilding a mart drops the views on it.
    build = cosmos_config.watch_after_build(DbtTaskGroup(
        group_id="dbt",
        project_config=cosmos_config.project_config(settings),
        profile_config=cosmos_config.profile_config(),
        execution_config=cosmos_config.execution_config(),
        render_config=cosmos_config.render_config(
            select=["tag:staging", "tag:intermediate", "tag:marts", "tag:reporting", "tag:kpi"]),
        operator_args=orch.dbt_operator_args(settings),
        default_args=orch.default_args(settings),
    ))
    # Planned after the build: a backfill lists the closed quarters staged but unpublished.
    quarters = task(task_id="plan_quarters")(quarterly.plan_task)(as_of)
    raw_gate = task(task_id="validate_raw")(quarterly.validate_raw_task)(as_of)
    validations = task(task_id="validate_kpi")(quarterly.validate_kpi_task)(as_of, quarters)
    # A publication with warnings or waivers waits for a person's approval (setting
    # publish_approval); a rejection skips it and leaves reporting as it was.
    review = task.branch(task_id="review_publication")(quarterly.review_task)(as_of, validations)
    approve = ApprovalOperator(
        task_id=quarterly.APPROVAL_TASK,
        subject="Publish the quarterly KPIs despite these warnings or waivers?",
        body="{{ ti.xcom_pull(task_ids='review_publication', key='review') }}",
    )
    straight_on = EmptyOperator(task_id=quarterly.NO_REVIEW_TASK)
    published = task(task_id="publish", outlets=[orch.reporting_asset()],
                     trigger_rule="none_failed_min_one_success")(quarterly.publish_task)(validations)
    task(task_id="render_report")(quarterly.report_task)(published)
    as_of >> build >> [quarters, raw_gate]
    raw_gate >> validations >> review >> [approve, straight_on] >> published


winback_quarterly_kpis()
