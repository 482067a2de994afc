"""The dbt group's model and test tasks as cheap as Airflow allows: read from the triggerer,
all at once after the build, and retried in the dbt graph's order.

Cosmos' watcher mode (see :mod:`winback.cosmos_config`) runs one ``dbt build`` in its
*producer* task and keeps a sensor task per model and per model's tests that reads that
node's result. Under a scheduler each such task used to cost a worker process (start, DAG
parse, API calls), and the tasks waited for one another along the dbt graph, about 15
levels each costing a scheduling round: 83 tasks after the build took longer than the build
(BENCHMARKS.md, "The DAGs as users run them"). Here, for a run that goes well:

* **no worker**: every model and test task starts in the triggerer (Airflow's
  ``start_from_trigger``) with :class:`NodeResultTrigger`, which reads the node's result
  the producer published and ends the task there (``TaskSuccessEvent`` /
  ``TaskSkippedEvent``). Only a failure resumes the task on a worker, where Cosmos raises
  with the node's error, so a retry and its callbacks run as for any task;
* **one level**: each task depends on the producer only, not on the tasks of its dbt
  parents, so all of them finish together as the build ends.

Without the graph's edges, the order a retry needs comes from :func:`upstream_verdict`:
a task's retry (or a clear from the UI) first waits until the tasks of its dbt parents
(``waits_for``, the edges Cosmos drew) have succeeded, then runs dbt for its node alone
(``dbt run`` / ``dbt test --select <model>``), so a model is never rebuilt over a parent
that is still failing. The wait is in the trigger under a scheduler, and a reschedule of
the sensor on a worker (``dag.test()``, which runs no triggerer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from cosmos.listeners.dag_run_listener import EventStatus
from cosmos.operators._watcher.state import _log_dbt_event, get_dbt_event_xcom_key
from cosmos.operators._watcher.triggerer import WatcherEventReason, WatcherTrigger

# A retry that waits for its dbt parents' tasks looks again after this many seconds.
RETRY_WAIT_SECONDS = 2
# How often a trigger polls the producer's results (they are final when it starts: the
# tasks start after the producer; the poll only matters for a producer still writing).
POLL_SECONDS = 1.0

_DONE = frozenset({"success", "skipped"})
_FAILED = frozenset({"failed", "upstream_failed", "removed"})
# The producer's XCom holding every node's result at once (publish_results), and the
# suffixes of Cosmos' per-node keys it copies: status, aggregated test status, dbt event.
RESULTS_XCOM_KEY = "winback_node_results"
_RESULT_KEY_SUFFIXES = ("_status", "_tests_status", "_dbt_event")
# The reads of the latest runs' results in the triggerer (futures): one read per run, shared
# by all its tasks' triggers.
_CACHED_RUNS = 20
_reads_by_run: dict[tuple[str, str, str], Any] = {}


def publish_results(context: Any, result: Any = None) -> None:
    """The producer's ``post_execute`` hook: every node's result in one XCom.

    Cosmos' producer publishes a node's status, its model's aggregated test status and its
    dbt event under keys of their own, and keeps them in memory as it goes (its retry
    backup). Reading them one by one cost every model and test task two or more calls
    through the API server, serialized in the triggerer: 17 s for the ~100 tasks of the
    marts DAG at size S. One XCom is one call per run. Only after a build that succeeded
    (a failed build raises before this hook): then the tasks read the per-node keys."""
    ti = context["ti"]
    buffer = getattr(ti, "_cosmos_xcom_backup_buffer", None) or {}
    ti.xcom_push(key=RESULTS_XCOM_KEY,
                 value={key: value for key, value in buffer.items() if key.endswith(_RESULT_KEY_SUFFIXES)})


def node_outcome(results: Mapping[str, Any], node: str, tests: bool) -> tuple[str | None, Any]:
    """The status of ``node`` (a model, or a model's tests with ``tests``) and its dbt event in
    :func:`publish_results`' XCom."""
    from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
    from cosmos.operators._watcher.state import get_status_xcom_key

    if tests:
        status = results.get(get_tests_status_xcom_key(node))
    else:
        status = (results.get(get_status_xcom_key(node)) or {}).get("status")
    return status, results.get(get_dbt_event_xcom_key(node))


def _remember(cache: dict[tuple[str, str, str], Any], key: tuple[str, str, str], value: Any) -> None:
    cache[key] = value
    while len(cache) > _CACHED_RUNS:
        cache.pop(next(iter(cache)))


def upstream_verdict(states: Mapping[str, str | None], waits_for: Iterable[str]) -> str:
    """``go`` when every task in ``waits_for`` succeeded (or was skipped), ``failed`` when one
    of them ended failed, else ``wait``. ``states``: task id -> state (missing: not started)."""
    found = [states.get(task_id) for task_id in waits_for]
    if any(state in _FAILED for state in found):
        return "failed"
    return "go" if all(state in _DONE for state in found) else "wait"


def _task_states(dag_id: str, run_id: str, task_ids: list[str]) -> dict[str, str | None]:
    """The states of ``task_ids`` in one DAG run, through the task SDK (worker or triggerer)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    if not task_ids:
        return {}
    found = RuntimeTaskInstance.get_task_states(dag_id=dag_id, task_ids=task_ids, run_ids=[run_id])
    states = found.get(run_id, {})
    return {task_id: (str(getattr(state, "value", state)) if state is not None else None)
            for task_id, state in states.items()}


class NodeResultTrigger(WatcherTrigger):
    """Cosmos' watcher trigger, started by the scheduler itself and ending the task itself.

    First try: the node's result (:meth:`_first_try`); success and skip end the task in the
    triggerer, a failure resumes it on a worker (Cosmos' ``execute_complete`` raises with the
    node's error). A retry: wait for ``waits_for`` (see the module docstring),
    then resume on a worker, where Cosmos runs dbt for this node alone.
    """

    def __init__(self, model_unique_id: str, producer_task_id: str, waits_for: list[str] | None = None,
                 is_test_sensor: bool = False, poke_interval: float = POLL_SECONDS,
                 dag_id: str = "", run_id: str = "", map_index: int | None = -1) -> None:
        super().__init__(model_unique_id=model_unique_id, producer_task_id=producer_task_id, dag_id=dag_id,
                         run_id=run_id, map_index=map_index, poke_interval=poke_interval,
                         is_test_sensor=is_test_sensor)
        self.waits_for = list(waits_for or [])

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"model_unique_id": self.model_unique_id, "producer_task_id": self.producer_task_id,
                 "waits_for": self.waits_for, "is_test_sensor": self.is_test_sensor,
                 "poke_interval": self.poke_interval, "dag_id": self.dag_id, "run_id": self.run_id,
                 "map_index": self.map_index})

    async def run(self) -> AsyncIterator[Any]:
        from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent

        ti = self.task_instance  # the triggerer sets it for a task started from the trigger
        self.dag_id, self.run_id, self.map_index = ti.dag_id, ti.run_id, ti.map_index
        if ti.try_number > 1:
            verdict = await self._wait_for_parents()
            if verdict == "failed":
                self.log.error("a dbt parent's task of %s failed: not retrying it", self.model_unique_id)
                yield TaskFailedEvent()
                return
            # On a worker, Cosmos' fallback for a producer that did not run: dbt for this node.
            yield TriggerEvent({"status": EventStatus.FAILED, "reason": WatcherEventReason.PRODUCER_SKIPPED})
            return
        outcome = await self._first_try()
        if outcome == EventStatus.SUCCESS:
            yield TaskSuccessEvent()
        elif outcome == EventStatus.SKIPPED:
            yield TaskSkippedEvent()
        else:
            yield TriggerEvent(outcome)

    async def _first_try(self) -> Any:
        """The node's outcome, in as few API calls as the answer needs (one or two when the
        build is over: every call goes through the API server, ~100 tasks at once).

        :class:`WatcherTrigger.run` also logs dbt's version lines and reads the compiled SQL
        and the producer's state on every poll, five calls or more a task."""
        from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
        from cosmos.operators._watcher.state import (
            ProducerTaskState,
            is_dbt_node_status_failed,
            is_dbt_node_status_skipped,
            is_dbt_node_status_success,
        )

        results = await self._published_results()
        if results is not None:
            status, event = node_outcome(results, self.model_unique_id, self.is_test_sensor)
            if status is None or is_dbt_node_status_success(status):
                _log_dbt_event(event)
                return EventStatus.SUCCESS  # (None: a node the build did not run, as Cosmos)
        while True:
            if self.is_test_sensor:
                status = await self.get_xcom_val(get_tests_status_xcom_key(self.model_unique_id))
            else:
                status = await self._get_node_status()
            if is_dbt_node_status_success(status):
                _log_dbt_event(await self.get_xcom_val(get_dbt_event_xcom_key(self.model_unique_id)))
                return EventStatus.SUCCESS
            if is_dbt_node_status_skipped(status):
                return EventStatus.SKIPPED
            if is_dbt_node_status_failed(status):
                return {"status": EventStatus.FAILED, "reason": WatcherEventReason.NODE_FAILED}
            producer = await self._get_producer_task_status()
            if producer == ProducerTaskState.FAILED:
                return {"status": EventStatus.FAILED, "reason": WatcherEventReason.PRODUCER_FAILED}
            if producer == ProducerTaskState.SKIPPED:
                return {"status": EventStatus.FAILED, "reason": WatcherEventReason.PRODUCER_SKIPPED}
            if producer == ProducerTaskState.SUCCESS:
                self.log.info("the build did not run %s (an ephemeral or empty model)", self.model_unique_id)
                return EventStatus.SUCCESS
            await asyncio.sleep(self.poke_interval)

    async def _published_results(self) -> Any:
        """:func:`publish_results`' XCom, read once per run by all the triggers of this process
        (they await the same read); ``None`` when the build did not publish it (failed)."""
        key = (self.dag_id, self.run_id, self.producer_task_id)
        read = _reads_by_run.get(key)
        if read is None:
            read = asyncio.ensure_future(self.get_xcom_val(RESULTS_XCOM_KEY))
            _remember(_reads_by_run, key, read)
        results = await read
        if results is None:
            _reads_by_run.pop(key, None)
        return results

    async def _wait_for_parents(self) -> str:
        while True:
            states = await sync_to_async(_task_states)(self.dag_id, self.run_id, self.waits_for)
            verdict = upstream_verdict(states, self.waits_for)
            if verdict != "wait":
                return verdict
            self.log.info("waiting for the tasks of %s's dbt parents: %s", self.model_unique_id,
                          {t: states.get(t) for t in self.waits_for if states.get(t) not in _DONE})
            await asyncio.sleep(RETRY_WAIT_SECONDS)


def wait_for_parents(context: Any) -> None:
    """The ``pre_execute`` hook of a model or test task: on a retry, wait for its dbt parents'
    tasks (its ``waits_for``) as :class:`NodeResultTrigger` does in the triggerer, by
    rescheduling itself while they run and failing for good when one of them failed. This is
    the order under ``dag.test()``, which runs no triggerer. (A hook rather than a wrapped
    method: the task runner executes a copy of the task, with its templates rendered.)"""
    from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

    ti, task = context["ti"], context["task"]
    if ti.try_number <= 1:
        return
    waits_for = list((task.start_trigger_args.trigger_kwargs or {}).get("waits_for", []))
    verdict = upstream_verdict(_task_states(ti.dag_id, ti.run_id, waits_for), waits_for)
    if verdict == "failed":
        raise AirflowFailException(f"a dbt parent's task of {task.task_id} failed, of {waits_for}")
    if verdict == "wait":
        raise AirflowRescheduleException(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=RETRY_WAIT_SECONDS))


# The hook as the tasks name it: the serialized DAG stores a hook's source with every task.
def _wait_for_parents(context):
    return wait_for_parents(context)


def start_from_trigger(sensor: Any, waits_for: list[str]) -> None:
    """Start ``sensor`` (a Cosmos watcher sensor) in the triggerer with :class:`NodeResultTrigger`,
    and make its retries wait for ``waits_for`` (:func:`wait_for_parents`)."""
    from airflow.triggers.base import StartTriggerArgs

    sensor.start_from_trigger = True
    sensor.start_trigger_args = StartTriggerArgs(
        trigger_cls=f"{NodeResultTrigger.__module__}.{NodeResultTrigger.__qualname__}",
        trigger_kwargs={"model_unique_id": sensor.model_unique_id, "producer_task_id": sensor.producer_task_id,
                        "waits_for": waits_for, "is_test_sensor": bool(sensor.is_test_sensor)},
        next_method="execute_complete", next_kwargs=None, timeout=None)
    sensor._pre_execute_hook = _wait_for_parents
