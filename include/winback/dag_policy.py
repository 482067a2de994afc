"""What every DAG declares alike: start date, owner, retries, alerting, schedules, Assets.

The DAG files in ``dags/`` are declarations only (schedule, dependencies, Assets); what
they share is here, once: ``@dag(..., **dag_defaults(settings))``. Their task bodies live
in ``winback.tasks`` (one module per DAG). Nothing here touches a database at import time
or when a DAG file calls it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.request
from typing import Any

from winback.config import Settings, get_settings

log = logging.getLogger(__name__)

OWNER = "winback-data-engineering"
# Airflow creates no task instance for a run whose logical date is before the DAG's
# start_date (DagRun.verify_integrity), so that run "succeeds" having done nothing: the
# start date is the epoch, so an as-of date of any year the data covers runs (``winback
# run --as-of 1998-12-31``). Every DAG has ``catchup=False``: a deployed scheduler then
# creates only the latest scheduled run, never the decades since this date.
START_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def dag_defaults(settings: Settings) -> dict[str, Any]:
    """The ``@dag`` arguments every winback DAG shares: one run at a time, no catch-up,
    the epoch as start date, and :func:`default_args` for its tasks."""
    return {"start_date": START_DATE, "catchup": False, "max_active_runs": 1,
            "default_args": default_args(settings)}


def default_args(settings: Settings) -> dict[str, Any]:
    """Every task: an owner, retries with exponential backoff, the failure alert."""
    return {
        "owner": OWNER,
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=30),
        "on_failure_callback": [alert_on_failure],
    }


def alert_on_failure(context: dict[str, Any]) -> None:
    """Failure callback: one clear log line, plus a JSON POST to WINBACK_ALERT_WEBHOOK_URL if set."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    error = context.get("exception")
    message = f"winback ALERT: {dag_id}.{task_id} failed for run {context.get('run_id')}: {error}"
    log.error(message)
    url = get_settings().alert_webhook_url
    if url:
        body = json.dumps({"text": message, "dag_id": dag_id, "task_id": task_id}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (URL is the operator's setting)
        except OSError as exc:  # an alert channel being down must not hide the original failure
            log.error("winback ALERT: webhook %s unreachable: %s", url, exc)


# ----------------------------------------------------------------------------- schedules
def nightly_timetable(settings: Settings):
    from airflow.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable(settings.extract_schedule, timezone=settings.timezone)


def quarterly_timetable(settings: Settings):
    """Early morning of the configured day of the month after each quarter closes."""
    from airflow.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable(f"0 6 {settings.quarterly_publish_day} 1,4,7,10 *", timezone=settings.timezone)


# ----------------------------------------------------------------------------- Assets
def raw_asset(entity: str):
    from airflow.sdk import Asset

    return Asset(name=f"winback.raw.{entity}", uri=f"winback://warehouse/raw/{entity}", group="winback-raw")


def marts_asset():
    from airflow.sdk import Asset

    return Asset(name="winback.marts", uri="winback://warehouse/marts", group="winback-marts")


def reporting_asset():
    from airflow.sdk import Asset

    return Asset(name="winback.reporting.kpis", uri="winback://warehouse/reporting/kpis", group="winback-reporting")


# ----------------------------------------------------------------------------- dbt tasks
# The Airflow pool every dbt task runs in, one slot: the marts DAG (after a nightly extract)
# and the quarterly DAG (on its publication day) build the same models, and two builds at
# once fail ("relation ... already exists"). The later one waits. A deployment creates it
# (winback.deployment, docker/docker-compose.yaml's airflow-init).
DBT_POOL = "winback_dbt"
DBT_POOL_DESCRIPTION = "winback: one dbt build at a time (the marts and quarterly DAGs build the same models)"


def dbt_operator_args(settings: Settings) -> dict[str, Any]:
    """Cosmos operator arguments of a dbt task: the user's metric overrides as dbt vars, and
    the run's as-of date (templated) in the environment, not as a var: the vars stay the same
    from night to night, so each task's dbt keeps its partial parse (macros/as_of_date.sql);
    the :data:`DBT_POOL`; no unit tests in the build (:data:`winback.dbt.PRODUCTION_BUILD_FLAGS`).
    (A model or test task that starts in the triggerer takes no slot: only a retry that runs
    dbt waits for one.)"""
    from winback.dbt import AS_OF_ENV, PRODUCTION_BUILD_FLAGS

    return {"vars": dict(settings.metric_overrides), "dbt_cmd_flags": list(PRODUCTION_BUILD_FLAGS),
            "env": {AS_OF_ENV: "{{ ti.xcom_pull(task_ids='resolve_as_of') }}"},
            "install_deps": False, "pool": DBT_POOL}
