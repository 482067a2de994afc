"""What the DAG files share: defaults, Assets, alerting, task bodies, and running DAGs.

DAG files stay thin (schedule, dependencies, Assets); the work is here and in the
modules it calls. Nothing in this module touches a database at import time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
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
# Extract order: reference entities first, so a sales line's client is known when it lands.
EXTRACT_ORDER = ("managers", "clients", "sales_lines", "contacts")


# ----------------------------------------------------------------------------- Airflow setup
def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment of a project-local Airflow (metadata DB: SQLite under the state dir)."""
    return {
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        # In-process runs print the task API client's log: Cosmos' watcher tasks of a test with
        # several parents look up their status before it exists, and each 404 shows as an
        # "XCom not found" error on the user's console. A failed task still fails the run.
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": os.environ.get("AIRFLOW__LOGGING__NAMESPACE_LEVELS",
                                                             "airflow.sdk.api.client=CRITICAL"),
        "WINBACK_PROJECT_DIR": str(settings.project_dir),
        # Cosmos caches the rendered dbt profile by connection id, not by its value; a local
        # run may point the same id at another database (tests do), so build it fresh.
        "AIRFLOW__COSMOS__ENABLE_CACHE_PROFILE": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(settings.state_dir / "cosmos-cache"),
        # The watcher producer would back its XComs up to a Variable on every dbt event (an
        # extra API write each); off, the backup is written once by its retry/failure callback.
        # Only a hard-killed producer loses it: the model tasks then rebuild their models one by one.
        "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "False",
    }


def prepare_airflow(settings: Settings | None = None) -> dict[str, str]:
    """Point this process at the project-local Airflow and migrate its metadata DB once.

    Must run before ``airflow`` is imported (Airflow reads its configuration at import).
    """
    settings = settings or get_settings()
    env = airflow_env(settings)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    home = Path(os.environ["AIRFLOW_HOME"])
    if home == settings.airflow_home or not (home / "airflow.cfg").exists():
        # A self-contained home: plain `airflow ...` commands in it find the DAGs, no examples.
        from winback.deployment import cli_config_values, write_airflow_cfg

        write_airflow_cfg(home, cli_config_values(settings, home),
                          "Written by winback (the CLI's local Airflow, metadata in SQLite here); "
                          "make airflow uses ../airflow-local.")
    marker = home / ".winback-migrated"
    if not marker.exists():
        home.mkdir(parents=True, exist_ok=True)
        airflow_bin = Path(sys.executable).with_name("airflow")
        done = subprocess.run([str(airflow_bin), "db", "migrate"], env=os.environ.copy(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stderr[-2000:]}")
        marker.write_text("ok\n")
    ensure_dbt_manifest(settings)
    return env


def ensure_dbt_manifest(settings: Settings) -> Path:
    """Build ``dbt_project/target/manifest.json`` when missing or older than the project.

    The Cosmos DAGs render from this manifest, so parsing them runs no dbt.
    """
    from winback import dbt

    manifest = settings.dbt_project_dir / "target" / "manifest.json"
    sources = [p for pattern in ("models/**/*", "macros/**/*", "tests/**/*", "*.yml")
               for p in settings.dbt_project_dir.glob(pattern) if p.is_file()]
    newest = max((p.stat().st_mtime for p in sources), default=0)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        dbt.build_manifest()
    return manifest


class NoTaskRan(RuntimeError):
    """A DAG run ended without running any task (e.g. its logical date lies before the DAG's
    start_date): whatever its state says, it did nothing for the requested date."""


def run_dag(dag_id: str, logical_date: dt.datetime, conf: dict[str, Any] | None = None,
            mark_success_pattern: str | None = None):
    """Run one DAG run for real, in this process (Airflow's ``dag.test()``); return the DagRun.

    ``mark_success_pattern`` (a full match of the task id) marks matching tasks successful without running them (tests
    use it to keep a deliberately corrupted table from being rebuilt). A run in which no task ran raises
    :class:`NoTaskRan` naming the DAG and the date, never passes for a success.
    """
    from airflow.dag_processing.dagbag import DagBag

    settings = get_settings()
    bag = DagBag(dag_folder=str(settings.dags_dir))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {settings.dags_dir}")
    run = dag.test(logical_date=logical_date, run_conf=conf, mark_success_pattern=mark_success_pattern)
    states = _task_states(dag_id, run.run_id)
    if not any(_ran(state) for state in states.values()):
        found = ", ".join(f"{task}={state}" for task, state in sorted(states.items())) or "no task instance"
        raise NoTaskRan(f"{dag_id} run for {logical_date:%Y-%m-%d %H:%M %Z} ran no task ({found}; "
                        f"the DAG starts {dag.start_date:%Y-%m-%d}): nothing was done for that date")
    return run


def _ran(state: str | None) -> bool:
    """A task instance in this state was run (or marked done): not None (never scheduled),
    'removed' (not in the DAG) or 'skipped' (no winback DAG skips a task it ran)."""
    return state is not None and state not in ("removed", "skipped")


def _task_states(dag_id: str, run_id: str) -> dict[str, str | None]:
    """Every task instance of one DAG run and its state (map index folded: any that ran counts)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    states: dict[str, str | None] = {}
    with create_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.state)
                               .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    for task_id, state in rows:
        value = None if state is None else getattr(state, "value", str(state))
        if task_id not in states or (not _ran(states[task_id]) and _ran(value)):
            states[task_id] = value
    return states


# ----------------------------------------------------------------------------- DAG policy
def nightly_timetable(settings: Settings):
    from airflow.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable(settings.extract_schedule, timezone=settings.timezone)


def quarterly_timetable(settings: Settings):
    """Early morning of the configured day of the month after each quarter closes."""
    from airflow.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable(f"0 6 {settings.quarterly_publish_day} 1,4,7,10 *", timezone=settings.timezone)


def default_args(settings: Settings) -> dict[str, Any]:
    return {
        "owner": OWNER,
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=30),
        "on_failure_callback": [alert_on_failure],
    }


def logical_date_for(as_of: dt.date, settings: Settings) -> dt.datetime:
    """The nightly run that describes ``as_of``: the first scheduled time on the next day."""
    from croniter import croniter

    from winback.extract import day_end

    return croniter(settings.extract_schedule, day_end(as_of, settings.timezone)).get_next(dt.datetime)


def raw_asset(entity: str):
    from airflow.sdk import Asset

    return Asset(name=f"winback.raw.{entity}", uri=f"winback://warehouse/raw/{entity}", group="winback-raw")


def marts_asset():
    from airflow.sdk import Asset

    return Asset(name="winback.marts", uri="winback://warehouse/marts", group="winback-marts")


def reporting_asset():
    from airflow.sdk import Asset

    return Asset(name="winback.reporting.kpis", uri="winback://warehouse/reporting/kpis", group="winback-reporting")


def dbt_operator_args(settings: Settings) -> dict[str, Any]:
    """Cosmos operator arguments of a dbt task: the user's metric overrides as dbt vars, and
    the run's as-of date (templated) in the environment, not as a var: the vars stay the same
    from night to night, so each task's dbt keeps its partial parse (macros/as_of_date.sql)."""
    from winback.dbt import AS_OF_ENV

    return {"vars": dict(settings.metric_overrides),
            "env": {AS_OF_ENV: "{{ ti.xcom_pull(task_ids='resolve_as_of') }}"},
            "install_deps": False}


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


# ----------------------------------------------------------------------------- task bodies
def as_of_from_context(settings: Settings) -> dt.date:
    from airflow.sdk import get_current_context

    from winback.extract import as_of_for

    if settings.as_of_date:
        return settings.as_of_date
    context = get_current_context()
    end = context.get("data_interval_end") or context["logical_date"]
    return as_of_for(end, settings.timezone)


def resolve_as_of_task() -> str:
    """The as-of date of a marts run: ``as_of`` from the run conf, else the fixed setting,
    else the latest date the extract loaded sales lines successfully."""
    from airflow.sdk import get_current_context

    from winback import warehouse

    settings = get_settings()
    conf = (get_current_context().get("dag_run").conf or {}) if get_current_context().get("dag_run") else {}
    if conf.get("as_of"):
        return dt.date.fromisoformat(conf["as_of"]).isoformat()
    if settings.as_of_date:
        return settings.as_of_date.isoformat()
    with warehouse.connect(warehouse.warehouse_dsn(settings)) as conn:
        row = conn.execute("select max(logical_date) from audit.load_runs"
                           " where entity = 'sales_lines' and status = 'success'").fetchone()
    if row[0] is None:
        raise ValueError("no successful sales_lines load yet: run winback_nightly_extract first")
    return row[0].isoformat()


def nightly_as_of_task() -> str:
    """The as-of date this nightly run describes (for the raw quality gate)."""
    return as_of_from_context(get_settings()).isoformat()


def announce_marts_task() -> None:
    """Once every model and test passed (the BI views included: they are dbt models, tag
    reporting), mark the marts updated (the task's outlet Asset)."""


def prepare_warehouse_task() -> None:
    from winback import warehouse

    warehouse.bootstrap(warehouse.warehouse_dsn())


def extract_task(entity: str) -> dict[str, Any]:
    """Extract one entity; contract failures fail the task without retries (retrying
    cannot fix the data), infrastructure failures are retried with backoff."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from winback.extract import DeliveryRejected, QuarantineLimitExceeded, SourceError, extract_entity

    settings = get_settings()
    as_of = as_of_from_context(settings)
    try:
        result = extract_entity(entity, as_of=as_of, settings=settings, dag_run_id=get_current_context()["run_id"])
    except (DeliveryRejected, QuarantineLimitExceeded, SourceError) as exc:
        raise AirflowFailException(str(exc)) from None
    return result.summary()
