"""What the task bodies of several DAGs share: the running task's context, failing a task
for good, the as-of date a run describes, and the raw quality gate."""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

from winback.config import Settings, get_settings


def context() -> dict[str, Any]:
    """The running task's Airflow context."""
    from airflow.sdk import get_current_context

    return get_current_context()


def conf() -> dict[str, Any]:
    """The conf of the running task's DAG run (``{}`` when it has none)."""
    run = context().get("dag_run")
    return dict(run.conf or {}) if run is not None else {}


def fail(message: str) -> NoReturn:
    """Fail the running task without retries: bad data, which retrying cannot fix."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message) from None  # called in an except block too: the message says it all


def as_of_from_context(settings: Settings) -> dt.date:
    """The as-of date of a scheduled run: the fixed setting, else the day before its data
    interval end (``winback.calendar.as_of_for``)."""
    from winback.calendar import as_of_for

    if settings.as_of_date:
        return settings.as_of_date
    current = context()
    end = current.get("data_interval_end") or current["logical_date"]
    return as_of_for(end, settings.timezone)


def resolve_as_of() -> str:
    """The as-of date of a dbt build (marts, quarterly KPIs): ``as_of`` from the run conf,
    else the fixed setting, else the latest date the extract loaded sales lines successfully."""
    from winback import warehouse

    settings = get_settings()
    given = conf().get("as_of")
    if given:
        return dt.date.fromisoformat(given).isoformat()
    if settings.as_of_date:
        return settings.as_of_date.isoformat()
    with warehouse.connect(warehouse.warehouse_dsn(settings)) as conn:
        row = conn.execute("select max(logical_date) from audit.load_runs"
                           " where entity = 'sales_lines' and status = 'success'").fetchone()
    if row[0] is None:
        raise ValueError("no successful sales_lines load yet: run winback_nightly_extract first")
    return row[0].isoformat()


def validate_raw(as_of: str) -> dict[str, Any]:
    """The raw suite for the as-of date (the nightly extract's gate, and the quarterly
    DAG's before it validates the KPIs)."""
    from winback import warehouse
    from winback.quality import run_gate

    result = run_gate(warehouse.warehouse_dsn(), "raw", dt.date.fromisoformat(as_of), None, context()["run_id"])
    if not result.success:
        fail(f"raw data quality gate failed: {result.message}")
    return result.summary()
