"""Marts: the dbt project (staging -> intermediate -> marts -> reporting views) as one
Airflow task per model.

Scheduled on data, not on a clock: it runs when the nightly extract has updated the raw
sales lines and contacts (Assets). The as-of date is the latest date the extract loaded
successfully, or ``as_of`` from the run's conf. Rendered by astronomer-cosmos from the
prebuilt dbt manifest, so parsing this file runs no dbt. The BI views in ``reporting``
(models/reporting, tag ``reporting``) are dbt models downstream of the marts: a rebuild
that drops them with a mart recreates them in the same run. KPI staging models are built
by the quarterly DAG, behind the quality gate, not here.
"""

from airflow.sdk import dag, task
from cosmos import DbtTaskGroup

from winback import cosmos_config
from winback import orchestration as orch
from winback.config import get_settings

settings = get_settings()


@dag(
    dag_id="winback_marts",
    schedule=[orch.raw_asset("sales_lines"), orch.raw_asset("contacts")],
    start_date=orch.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=orch.default_args(settings),
    tags=["winback", "dbt", "marts"],
    doc_md=__doc__,
)
def winback_marts():
    as_of = task(task_id="resolve_as_of")(orch.resolve_as_of_task)()
    marts = cosmos_config.watch_after_build(DbtTaskGroup(
        group_id="dbt",
        project_config=cosmos_config.project_config(settings),
        profile_config=cosmos_config.profile_config(),
        execution_config=cosmos_config.execution_config(),
        render_config=cosmos_config.render_config(
            select=["tag:staging", "tag:intermediate", "tag:marts", "tag:reporting"]),
        operator_args=orch.dbt_operator_args(settings),
        default_args=orch.default_args(settings),
    ))
    publish = task(task_id="announce_marts", outlets=[orch.marts_asset()])(orch.announce_marts_task)
    as_of >> marts >> publish()


winback_marts()
