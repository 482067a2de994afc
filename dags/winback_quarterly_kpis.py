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

from winback import cosmos_config
from winback.config import get_settings
from winback.dag_policy import dag_defaults, quarterly_timetable, reporting_asset
from winback.tasks import common
from winback.tasks import quarterly as tasks

settings = get_settings()


@dag(
    dag_id="winback_quarterly_kpis",
    schedule=quarterly_timetable(settings),
    tags=["winback", "kpi", "quality", "publish"],
    doc_md=__doc__,
    **dag_defaults(settings),
)
def winback_quarterly_kpis():
    as_of = task(task_id="resolve_as_of")(common.resolve_as_of)()
    build = cosmos_config.dbt_build_group(settings, cosmos_config.QUARTERLY_SELECT)
    # Planned after the build: a backfill lists the closed quarters staged but unpublished.
    quarters = task(task_id="plan_quarters")(tasks.plan)(as_of)
    raw_gate = task(task_id="validate_raw")(common.validate_raw)(as_of)
    validations = task(task_id="validate_kpi")(tasks.validate_kpi)(as_of, quarters)
    # A publication with warnings or waivers waits for a person's approval (setting
    # publish_approval); a rejection skips it and leaves reporting as it was.
    review = task.branch(task_id="review_publication")(tasks.review)(as_of, validations)
    approve = ApprovalOperator(
        task_id=tasks.APPROVAL_TASK,
        subject="Publish the quarterly KPIs despite these warnings or waivers?",
        body="{{ ti.xcom_pull(task_ids='review_publication', key='review') }}",
    )
    straight_on = EmptyOperator(task_id=tasks.NO_REVIEW_TASK)
    published = task(task_id="publish", outlets=[reporting_asset()],
                     trigger_rule="none_failed_min_one_success")(tasks.publish)(validations)
    uplift = task(task_id="measure_campaign_uplift")(tasks.measure_campaign_uplift)()
    report = task(task_id="render_report")(tasks.report)(published)
    as_of >> build >> [quarters, raw_gate, uplift]
    uplift >> report
    raw_gate >> validations >> review >> [approve, straight_on] >> published


winback_quarterly_kpis()
