"""An Airflow component that starts tasks, with the tasks' libraries already imported:
``python -m winback.preloaded scheduler`` (LocalExecutor) or ``python -m winback.preloaded
celery worker`` (CeleryExecutor), any ``airflow`` options after.

Every task process is a fork of the process that starts it (Airflow on Linux: ``os.fork``,
no new interpreter): under the LocalExecutor an executor worker, itself a fork of the
scheduler; under Celery a pool process of the worker. Whatever that component imported
before it forks, no task imports again. Without this, each dbt producer imported dbt
(~1.8 s on a 2-core machine) and each quality gate Great Expectations (~3.5 s), every run,
while the marts DAG's build at size S takes ~10 s.

Only imports, no connections and no threads (:func:`preload` checks), so a fork copies
nothing it should not.
"""

from __future__ import annotations

import importlib
import sys
import threading

# What the tasks import at run time, the heaviest first: dbt in the producers (Cosmos'
# in-process dbt runner), Great Expectations in the gates. Libraries only: the project's
# own modules stay imported by each task, so an edit reaches the next task without a restart.
TASK_MODULES = ("dbt.cli.main", "dbt.adapters.postgres", "great_expectations")


def preload(modules: tuple[str, ...] = TASK_MODULES) -> None:
    """Import ``modules`` in this process; raise if that started a thread (a fork copies no
    threads, and a lock one held would stay held in the child)."""
    before = set(threading.enumerate())
    for module in modules:
        importlib.import_module(module)
    started = [thread.name for thread in set(threading.enumerate()) - before]
    if started:
        raise RuntimeError(f"preloading {modules} started threads {started}: not safe to fork from")


def run_airflow(args: list[str], modules: tuple[str, ...] = TASK_MODULES) -> None:
    """``airflow <args>`` in this process, ``modules`` preloaded first (:func:`preload`)."""
    from airflow.__main__ import main as airflow_main

    preload(modules)
    sys.argv = ["airflow", *args]
    airflow_main()


def main(argv: list[str] | None = None) -> None:
    run_airflow(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
