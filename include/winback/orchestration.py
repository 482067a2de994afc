"""Running the DAGs for real in this process: the project-local Airflow (its environment,
metadata DB and the dbt manifest the DAGs render from), one DAG run by ``dag.test()``, and
the run that describes an as-of date.

What the DAG files declare alike is in ``winback.dag_policy``, their task bodies in
``winback.tasks``. Nothing in this module touches a database at import time.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from winback.config import Settings, get_settings


# ----------------------------------------------------------------------------- Airflow setup
def prepare_airflow(settings: Settings | None = None) -> dict[str, str]:
    """Point this process at the project-local Airflow and migrate its metadata DB once.

    Must run before ``airflow`` is imported (Airflow reads its configuration at import).
    """
    from winback import dbt
    from winback.deployment import airflow_env

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
    dbt.ensure_manifest(settings)
    return env


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


def logical_date_for(as_of: dt.date, settings: Settings) -> dt.datetime:
    """The nightly run that describes ``as_of``: the first scheduled time on the next day."""
    from croniter import croniter

    from winback.calendar import day_end

    return croniter(settings.extract_schedule, day_end(as_of, settings.timezone)).get_next(dt.datetime)
