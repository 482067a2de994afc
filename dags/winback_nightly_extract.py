"""Nightly extract: sales system tables and CRM file drops into the warehouse's raw layer.

Each entity is loaded incrementally, idempotently and atomically (see
``winback.extract``); bad rows go to ``audit.quarantine``, every load to
``audit.load_runs``. The raw Great Expectations suite then checks the day (freshness,
volume, unknown clients, cancellations); only when it passes are the raw tables announced
as Assets, which schedule the marts DAG.
"""

from airflow.sdk import dag, task

from winback.config import get_settings
from winback.dag_policy import dag_defaults, nightly_timetable, raw_asset
from winback.tasks import common
from winback.tasks import extract as tasks
from winback.tasks.extract import EXTRACT_ORDER

settings = get_settings()


@dag(
    dag_id="winback_nightly_extract",
    schedule=nightly_timetable(settings),
    tags=["winback", "extract", "raw"],
    doc_md=__doc__,
    **dag_defaults(settings),
)
def winback_nightly_extract():
    prepared = task(task_id="prepare_warehouse")(tasks.prepare_warehouse)()
    extracted = {entity: task(task_id=f"extract_{entity}")(tasks.extract)(entity=entity) for entity in EXTRACT_ORDER}
    as_of = task(task_id="resolve_as_of")(tasks.nightly_as_of)()
    raw_assets = [raw_asset(entity) for entity in EXTRACT_ORDER]
    validated = task(task_id="validate_raw", outlets=raw_assets)(common.validate_raw)(as_of)
    prepared >> [extracted["managers"], extracted["clients"], extracted["campaigns"]]
    extracted["clients"] >> [extracted["sales_lines"], extracted["contacts"]]
    extracted["campaigns"] >> extracted["contacts"]
    [extracted["sales_lines"], extracted["contacts"], extracted["managers"]] >> as_of >> validated


winback_nightly_extract()
