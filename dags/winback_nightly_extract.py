"""Nightly extract: sales system tables and CRM file drops into the warehouse's raw layer.

Each entity is loaded incrementally, idempotently and atomically (see
``winback.extract``); bad rows go to ``audit.quarantine``, every load to
``audit.load_runs``. The raw Great Expectations suite then checks the day (freshness,
volume, unknown clients, cancellations); only when it passes are the raw tables announced
as Assets, which schedule the marts DAG.
"""

from airflow.sdk import dag, task

from winback import orchestration as orch
from winback import quarterly
from winback.config import get_settings

settings = get_settings()


@dag(
    dag_id="winback_nightly_extract",
    schedule=orch.nightly_timetable(settings),
    start_date=orch.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=orch.default_args(settings),
    tags=["winback", "extract", "raw"],
    doc_md=__doc__,
)
def winback_nightly_extract():
    prepared = task(task_id="prepare_warehouse")(orch.prepare_warehouse_task)()
    extracted = {entity: task(task_id=f"extract_{entity}")(orch.extract_task)(entity=entity)
                 for entity in orch.EXTRACT_ORDER}
    as_of = task(task_id="resolve_as_of")(orch.nightly_as_of_task)()
    raw_assets = [orch.raw_asset(entity) for entity in orch.EXTRACT_ORDER]
    validated = task(task_id="validate_raw", outlets=raw_assets)(quarterly.validate_raw_task)(as_of)
    prepared >> [extracted["managers"], extracted["clients"]]
    extracted["clients"] >> [extracted["sales_lines"], extracted["contacts"]]
    [extracted["sales_lines"], extracted["contacts"], extracted["managers"]] >> as_of >> validated


winback_nightly_extract()
