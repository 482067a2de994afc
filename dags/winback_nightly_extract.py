"""Nightly extract: sales system tables and CRM file drops into the warehouse's raw layer.

Each entity is loaded incrementally, idempotently and atomically (see
``winback.extract``); bad rows go to ``audit.quarantine``, every load to
``audit.load_runs``. The raw tables are published as Assets, which schedule the marts DAG.
"""

from airflow.sdk import dag, task

from winback import orchestration as orch
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
    extracted = {}
    for entity in orch.EXTRACT_ORDER:
        extract = task(task_id=f"extract_{entity}", outlets=[orch.raw_asset(entity)])(orch.extract_task)
        extracted[entity] = extract(entity=entity)
    prepared >> [extracted["managers"], extracted["clients"]]
    extracted["clients"] >> [extracted["sales_lines"], extracted["contacts"]]


winback_nightly_extract()
