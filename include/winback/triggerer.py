"""The deployment's triggerer: ``python -m winback.triggerer [airflow triggerer options]``.

``airflow triggerer`` with four changes for the dbt groups' model tasks, which all start in
the triggerer at once when their producer's build ends (:mod:`winback.dbt_watch`):

* **the project's trigger is loaded before the trigger runner starts.** The runner is a
  fork of this process; without this, it imports :mod:`winback.dbt_watch` when the first
  run's triggers arrive, while they wait (3-4 s on a 2-core machine);
* **its in-process task execution API is built before the first trigger.** The triggerer
  answers its triggers' XCom reads through Airflow's task execution API, in process, whose
  versioned routes Cadwyn generates on the first request: ~3 s of CPU, paid by the first
  run's model tasks (:func:`prebuild_execution_api`);
* **one DAG deserialization per serialized DAG, not one per task.** For a task that starts
  from a trigger, Airflow (3.3) hands the runner the whole serialized DAG and deserializes
  it for each task (``TriggerRunner.create_runtime_ti``): 25-75 ms each, one after another,
  48-62 times per run. :func:`cache_start_from_trigger_dags` keeps the last few serialized
  DAGs deserialized, by their content (the DAG Airflow hands over is the run's version,
  not always the task's). The runner only reads the task it takes from the DAG (to build
  the task's template context, which copies the params), so sharing the deserialized DAG
  changes nothing but the time. Only Airflow's method as this copies it is replaced (its
  source's hash is checked); any other is left as it is, with a note in the log;
* **the trigger runner's loop pauses 0.2 s, not 1 s.** The runner takes new triggers and
  hands their events over only between two pauses of its loop (``TriggerRunner.arun``),
  and its supervisor loads the triggers the scheduler created once per message from the
  runner. A task started from a trigger waited 1-2 s to start and up to 1 s more for its
  event to reach the database: 2-3 s of every marts and quarterly run, whatever its size.
  :func:`quicker_runner_loop` runs Airflow's loop with a shorter pause (the same source
  check). An idle triggerer then loops 5 times a second instead of once, each loop about
  7 statements of the metadata database in 3 transactions that find nothing to do.

Measured at size S (BENCHMARKS.md): the marts DAG's model tasks ended 1.9 s after their
triggers loaded, against 2.9 s, and a deployment's first run no longer pays the imports
and the API's build; with the shorter pause they end 1.6-3.2 s after the build, against
3.7-3.9 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import json
import logging
import sys
import time
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)

# Serialized DAGs kept deserialized (the marts and the quarterly DAG, a new version or two each).
CACHED_DAGS = 8
# The source of ``TriggerRunner.create_runtime_ti`` in Airflow 3.3.2, which
# :func:`cached_create_runtime_ti` copies (sha256): another source is not replaced.
_AIRFLOW_METHOD_SHA256 = "af65ff8b8d100ff63424f82ad4bf92d4b5e5c8e1f9082486892b8615949aa192"
# The trigger runner's pause between two rounds of its loop (Airflow: 1 s).
RUNNER_PAUSE_SECONDS = 0.2
# The source of ``TriggerRunner.arun`` in Airflow 3.3.2, which :func:`runner_loop` copies.
_AIRFLOW_LOOP_SHA256 = "2970ea57bd8c68591d9fac34e0e9b7055ec6ceefbf11682cc362a74822824bc5"


def _is_airflows(function: Any, sha256: str) -> bool:
    """Whether ``function``'s source is the Airflow release's that this module copies (no
    source to read: not known to be)."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(source.encode()).hexdigest() == sha256


def _content_key(dag_id: str, encoded_dag: dict) -> tuple[str, str]:
    """A serialized DAG's identity: its DAG id and a hash of its content (~2 ms for the
    quarterly DAG, against 25-75 ms to deserialize it)."""
    content = json.dumps(encoded_dag, sort_keys=True, default=str).encode()
    return dag_id, hashlib.sha256(content).hexdigest()


def cached_create_runtime_ti(deserialize: Any, cache_size: int = CACHED_DAGS):
    """Airflow's ``TriggerRunner.create_runtime_ti`` (3.3.2) with each serialized DAG
    deserialized once (by content, the last ``cache_size`` kept): ``deserialize`` turns a
    serialized DAG into a DAG (Airflow's ``DagSerialization.from_dict``)."""
    dags: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def create_runtime_ti(cls, task_instance: Any, encoded_dag: dict, dag_run_data: dict) -> Any:
        from airflow.api_fastapi.execution_api.datamodels.taskinstance import DagRun as DRDataModel
        from airflow.sdk.api.datamodels._generated import TIRunContext
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        key = _content_key(task_instance.dag_id, encoded_dag)
        dag = dags.get(key)
        if dag is None:
            dag = dags[key] = deserialize(encoded_dag)
            while len(dags) > cache_size:
                dags.popitem(last=False)
        else:
            dags.move_to_end(key)
        task = dag.get_task(task_instance.task_id)
        return RuntimeTaskInstance.model_construct(
            **task_instance.model_dump(exclude_unset=True),
            task=task,
            _ti_context_from_server=TIRunContext.model_construct(
                dag_run=DRDataModel(**dag_run_data),
                max_tries=task.retries,
            ),
        )

    return create_runtime_ti


def cache_start_from_trigger_dags() -> bool:
    """Install :func:`cached_create_runtime_ti` on Airflow's trigger runner, in this process
    (and the runner forked from it); ``False`` when Airflow's method is not the expected one."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.serialized_objects import DagSerialization

    original = inspect.getattr_static(TriggerRunner, "create_runtime_ti")
    function = getattr(original, "__func__", None)
    if getattr(function, "winback_cached", False):
        return True
    if not isinstance(original, classmethod) or not _is_airflows(function, _AIRFLOW_METHOD_SHA256):
        log.warning("TriggerRunner.create_runtime_ti is not Airflow 3.3.2's, which winback.triggerer copies: "
                    "left as it is (a DAG deserialized per start-from-trigger task)")
        return False
    replacement = functools.wraps(original.__func__)(cached_create_runtime_ti(DagSerialization.from_dict))
    replacement.winback_cached = True
    TriggerRunner.create_runtime_ti = classmethod(replacement)
    return True


def runner_loop(pause_seconds: float = RUNNER_PAUSE_SECONDS):
    """Airflow's ``TriggerRunner.arun`` (3.3.2), the runner's main loop, pausing
    ``pause_seconds`` between its rounds instead of 1 s. Each round hands the finished
    triggers' events to the supervisor, which answers with the triggers to start."""

    async def arun(self):  # as Airflow's, statement for statement (a test compares the two)
        import anyio
        from airflow.jobs.triggerer_job_runner import log as airflow_log

        await self.init_comms()

        watchdog = asyncio.create_task(self.block_watchdog())
        stop_event = self._stop_event = anyio.Event()

        last_status = time.monotonic()
        try:
            while not self.stop:
                if watchdog.done():
                    watchdog.result()

                if self.comms_decoder._reader_task.done():
                    self.comms_decoder._reader_task.result()
                    raise RuntimeError("Supervisor connection lost")

                finished_ids = await self.cleanup_finished_triggers()
                await self.sync_state_to_supervisor(finished_ids)
                await self.create_triggers()
                await self.cancel_triggers()
                with anyio.move_on_after(pause_seconds):  # the one change: Airflow pauses 1 s
                    await stop_event.wait()
                if (now := time.monotonic()) - last_status >= 60:
                    watchers = len([trigger for trigger in self.triggers.values() if trigger["is_watcher"]])
                    triggers = len(self.triggers) - watchers
                    self.log.info("%i triggers currently running", triggers)
                    self.log.info("%i watchers currently running", watchers)
                    last_status = now

        except Exception:
            with contextlib.suppress(BrokenPipeError):
                await airflow_log.aexception("Trigger runner failed")
            self.stop = True
            raise
        finally:
            if (reader_task := self.comms_decoder._reader_task) is not None:
                reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader_task
            await self._shared_streams.stop_all()
        await watchdog

    return arun


def quicker_runner_loop(pause_seconds: float = RUNNER_PAUSE_SECONDS) -> bool:
    """Install :func:`runner_loop` on Airflow's trigger runner, in this process (and the runner
    forked from it), once: a second call changes nothing; ``False`` when Airflow's loop is
    not the expected one."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    original = TriggerRunner.arun
    if getattr(original, "winback_pause_seconds", None) is not None:
        return True
    if not _is_airflows(original, _AIRFLOW_LOOP_SHA256):
        log.warning("TriggerRunner.arun is not Airflow 3.3.2's, which winback.triggerer copies: left as it is "
                    "(the trigger runner pauses 1 s between rounds)")
        return False
    replacement = functools.wraps(original)(runner_loop(pause_seconds))
    replacement.winback_pause_seconds = pause_seconds
    TriggerRunner.arun = replacement
    return True


def prebuild_execution_api() -> bool:
    """Build the triggerer's in-process task execution API now, routes included, and have the
    triggerer use that one (it builds one, once, when its first trigger reads an XCom);
    ``False`` when Airflow or Cadwyn are not the ones this was written against."""
    from airflow.jobs import triggerer_job_runner

    build = getattr(triggerer_job_runner, "in_process_api_server", None)
    if build is None or getattr(build, "winback_prebuilt", False):
        return build is not None
    try:
        api = build()
        if api.app._cadwyn_initialized is False:
            api.app._cadwyn_initialize()
    except Exception as error:  # noqa: BLE001 (best effort: the triggerer builds it on first use)
        log.warning("the triggerer's execution API could not be built ahead (%s): left to its first use", error)
        return False

    def prebuilt() -> Any:
        return api

    prebuilt.winback_prebuilt = True
    triggerer_job_runner.in_process_api_server = prebuilt
    return True


def main(argv: list[str] | None = None) -> None:
    from winback.preloaded import run_airflow

    cache_start_from_trigger_dags()
    quicker_runner_loop()
    prebuild_execution_api()
    # The trigger class, loaded before the runner forks.
    run_airflow(["triggerer", *(sys.argv[1:] if argv is None else argv)], modules=("winback.dbt_watch",))


if __name__ == "__main__":
    main()
