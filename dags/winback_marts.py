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

from winback import cosmos_config
from winback.config import get_settings
from winback.dag_policy import dag_defaults, marts_asset, raw_asset
from winback.tasks import common, marts

settings = get_settings()


@dag(
    dag_id="winback_marts",
    schedule=[raw_asset("sales_lines"), raw_asset("contacts")],
    tags=["winback", "dbt", "marts"],
    doc_md=__doc__,
    **dag_defaults(settings),
)
def winback_marts():
    as_of = task(task_id="resolve_as_of")(common.resolve_as_of)()
    build = cosmos_config.dbt_build_group(settings, cosmos_config.MARTS_SELECT)
    announce = task(task_id="announce_marts", outlets=[marts_asset()])(marts.announce_marts)
    as_of >> build >> announce()


winback_marts()
