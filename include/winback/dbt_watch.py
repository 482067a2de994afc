"""The dbt group's model tasks as cheap as Airflow allows: one per model (the model and its
data tests), read from the triggerer, all at once after the build, and retried in the dbt
graph's order.

Cosmos' watcher mode (see :mod:`winback.cosmos_config`) runs one ``dbt build`` in its
*producer* task and keeps a sensor task per model that reads that model's result (here:
and its tests', :class:`ModelBuildWatcher`; Cosmos would add a task per model's tests).
Under a scheduler each such task used to cost a worker process (start, DAG
parse, API calls), and the tasks waited for one another along the dbt graph, about 15
levels each costing a scheduling round: 83 tasks after the build took longer than the build
(BENCHMARKS.md, "The DAGs as users run them"). Here, for a run that goes well:

* **no worker**: every model task starts in the triggerer (Airflow's
  ``start_from_trigger``) with :class:`NodeResultTrigger`, which reads the node's result
  the producer published and ends the task there (``TaskSuccessEvent`` /
  ``TaskSkippedEvent``). Only a failure resumes the task on a worker, where Cosmos raises
  with the node's error, so a retry and its callbacks run as for any task;
* **one level**: each task depends on the producer only, not on the tasks of its dbt
  parents, so all of them finish together as the build ends.

Without the graph's edges, the order a retry needs comes from :func:`upstream_verdict`:
a task's retry (or a clear from the UI) first waits until the tasks of its dbt parents
(``waits_for``, the edges Cosmos drew) have succeeded, then runs dbt for its model alone
(``dbt build --select <model>``: the model and its tests), so a model is never rebuilt over a parent
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
from cosmos.operators.watcher import DbtRunWatcherOperator

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
# The producer's XCom holding every model's compiled SQL at once (Cosmos' per-node keys
# ``<node>_compiled_sql``): for a person reading the run, no task reads it.
COMPILED_SQL_XCOM_KEY = "winback_compiled_sql"
_COMPILED_SQL_SUFFIX = "_compiled_sql"
# The reads of the latest runs' results in the triggerer (futures): one read per run, shared
# by all its tasks' triggers.
_CACHED_RUNS = 20
_reads_by_run: dict[tuple[str, str, str], Any] = {}


class HeldResults:
    """The producer's task instance as Cosmos' dbt event handler sees it: each node's result
    is kept in memory (Cosmos' own retry backup buffer) instead of being sent as an XCom of
    its own, on dbt's threads, under one lock, while the build runs; :func:`publish_results`
    sends them all at once when it ends. Measured at 70k lines under ``dag.test()``: ~420
    calls, the producer 41 s against 21-23 s for ``dbt build`` alone. A build that fails
    keeps Cosmos' path: its failure callback saves the buffer, the retry restores every key.
    Without a backup buffer (Cosmos did not set one up) nothing is held."""

    def __init__(self, ti: Any) -> None:
        self._ti = ti

    def xcom_push(self, key: str, value: Any, **kwargs: Any) -> None:
        if getattr(self._ti, "_cosmos_xcom_backup_buffer", None) is not None and _is_held(key):
            return  # safe_xcom_push puts it in the buffer next
        self._ti.xcom_push(key=key, value=value, **kwargs)

    def xcom_pull(self, *args: Any, **kwargs: Any) -> Any:
        buffer = getattr(self._ti, "_cosmos_xcom_backup_buffer", None) or {}
        key = kwargs.get("key")
        return buffer[key] if key in buffer and _is_held(key) else self._ti.xcom_pull(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)


def is_node_result_key(key: str) -> bool:
    """A key of Cosmos' per-node results (``<resource>__<project>__<name>_<suffix>``)."""
    return "__" in key and key.endswith(_RESULT_KEY_SUFFIXES)


def _is_held(key: str) -> bool:
    """A per-node key the producer holds until the build ends: a result or compiled SQL."""
    return is_node_result_key(key) or ("__" in key and key.endswith(_COMPILED_SQL_SUFFIX))


def holding_results(extra_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Cosmos' event handler arguments with the task instance wrapped in :class:`HeldResults`."""
    context = extra_kwargs.get("context")
    if not context or isinstance(context.get("ti"), HeldResults):
        return extra_kwargs
    held = HeldResults(context["ti"])
    return {**extra_kwargs, "context": {**context, "ti": held, "task_instance": held}}


def publish_results(context: Any, result: Any = None) -> None:
    """The producer's ``post_execute`` hook: every model's result in one XCom.

    Cosmos' producer keeps each node's status, its model's aggregated test status and its
    dbt event in memory as it goes (its retry backup; :class:`HeldResults` keeps them from
    being sent one by one). Reading them one by one cost every model task two or more calls
    through the API server, serialized in the triggerer. One XCom is one call per run. Only
    after a build that succeeded (a failed build raises before this hook; its retry restores
    the per-node keys, which the tasks then read). The tests' own events stay out: a
    model's task reads its tests' aggregated status. The models' compiled SQL, one XCom
    per model in Cosmos (~300 calls for the quarterly selection), is one more XCom."""
    ti = context["ti"]
    buffer = getattr(ti, "_cosmos_xcom_backup_buffer", None) or {}
    ti.xcom_push(key=RESULTS_XCOM_KEY,
                 value={key: value for key, value in buffer.items()
                        if is_node_result_key(key) and not key.startswith("test__")})
    ti.xcom_push(key=COMPILED_SQL_XCOM_KEY,
                 value={key.removesuffix(_COMPILED_SQL_SUFFIX): value for key, value in buffer.items()
                        if _is_held(key) and not is_node_result_key(key)})


def test_owners(parents: Mapping[str, Iterable[str]], tests: Iterable[str],
                models: Iterable[str]) -> dict[str, tuple[str, list[str]]]:
    """The model task each data test belongs to: ``test -> (model, others)``, ``others``
    being the test's other parents outside that model's lineage (``parents``: node -> the
    nodes it depends on; ``models``: the models that have a task).

    A test on one model belongs to it. A test on several (a relationships test, a singular
    test joining two models) belongs to the parent that has the others among its ancestors:
    the one dbt builds last, whose ``dbt build --select <model> --indirect-selection
    buildable`` runs it. Cosmos would count it for every parent, so the retry of a model
    built before the others would run a test on relations not rebuilt yet. Parents not in
    each other's lineage: the one with the most ancestors (then the highest id); its task's
    retry names the test and waits for the other parents (:func:`watch_model_and_tests`)."""
    models = set(models)
    ancestors: dict[str, set[str]] = {}

    def lineage(node: str) -> set[str]:
        if node not in ancestors:
            ancestors[node] = set()
            for parent in parents.get(node, ()):
                ancestors[node] |= {parent, *lineage(parent)}
        return ancestors[node]

    owners: dict[str, tuple[str, list[str]]] = {}
    for test in tests:
        candidates = sorted(p for p in parents.get(test, ()) if p in models)
        if not candidates:
            continue
        last = [p for p in candidates if all(q == p or q in lineage(p) for q in candidates)]
        owner = last[0] if last else max(candidates, key=lambda p: (len(lineage(p)), p))
        owners[test] = (owner, [p for p in candidates if p != owner and p not in lineage(owner)])
    return owners


def combined_status(model_status: str | None, tests_status: str | None, tested: bool) -> str | None:
    """The status of a model's task, which stands for the model and every data test on it
    (as ``dbt build --select <model>``): the model's own status when it did not succeed or
    has no tests, else its tests' aggregated status (Cosmos': ``pass`` when all passed or
    warned, ``fail`` otherwise); ``None`` while something has not reported."""
    from cosmos.operators._watcher.state import is_dbt_node_status_success

    if model_status is None or not tested or not is_dbt_node_status_success(model_status):
        return model_status
    if tests_status is None or not is_dbt_node_status_success(tests_status):
        return tests_status
    return model_status


def node_outcome(results: Mapping[str, Any], node: str, tested: bool) -> tuple[str | None, Any]:
    """The status of a model's task (:func:`combined_status`) and the model's dbt event in
    :func:`publish_results`' XCom."""
    from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
    from cosmos.operators._watcher.state import get_status_xcom_key

    status = (results.get(get_status_xcom_key(node)) or {}).get("status")
    return (combined_status(status, results.get(get_tests_status_xcom_key(node)), tested),
            results.get(get_dbt_event_xcom_key(node)))


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
                 tested: bool = False, poke_interval: float = POLL_SECONDS,
                 dag_id: str = "", run_id: str = "", map_index: int | None = -1) -> None:
        super().__init__(model_unique_id=model_unique_id, producer_task_id=producer_task_id, dag_id=dag_id,
                         run_id=run_id, map_index=map_index, poke_interval=poke_interval)
        self.waits_for = list(waits_for or [])
        self.tested = tested

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"model_unique_id": self.model_unique_id, "producer_task_id": self.producer_task_id,
                 "waits_for": self.waits_for, "tested": self.tested,
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
            status, event = node_outcome(results, self.model_unique_id, self.tested)
            if status is None or is_dbt_node_status_success(status):
                _log_dbt_event(event)
                return EventStatus.SUCCESS  # (None: a node the build did not run, as Cosmos)
        while True:
            status = await self._get_node_status()
            if self.tested and is_dbt_node_status_success(status):
                status = combined_status(status, await self.get_xcom_val(
                    get_tests_status_xcom_key(self.model_unique_id)), self.tested)
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


class ModelBuildWatcher(DbtRunWatcherOperator):
    """A model's task: the model and every data test on it, as ``dbt build --select <model>``.

    Cosmos' watcher sensor for a model (its ``dbt.<model>_run`` task), reading the model's
    tests' aggregated result too, so that one task (not one for the model and one for its
    tests) shows per-model status: half the tasks, half the per-task cost in a run
    (BENCHMARKS.md). Its retry runs ``dbt build --select <model>``: the model and its tests.
    ``tested``: the model has data tests (their result is awaited)."""

    base_cmd = ["build"]
    tested = False

    def poke(self, context: Any) -> bool:
        """A first try reads the published results (one call; where there are none, the build
        failed: Cosmos' poke reads the keys its retry restored)."""
        from airflow.sdk.exceptions import AirflowException
        from cosmos.operators._watcher.state import is_dbt_node_status_success

        ti = context["ti"]
        if ti.try_number <= 1:
            results = ti.xcom_pull(task_ids=self.producer_task_id, key=RESULTS_XCOM_KEY)
            if results is not None:
                status, event = node_outcome(results, self.model_unique_id, self.tested)
                _log_dbt_event(event)
                if status is None or is_dbt_node_status_success(status):
                    return True
                raise AirflowException(f"dbt model '{self.model_unique_id}' finished with status '{status}'")
        return super().poke(context)

    def _get_node_status(self, ti: Any, context: Any) -> Any:
        from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
        from cosmos.operators._watcher.state import ProducerTaskState, get_xcom_val

        model_status = super()._get_node_status(ti, context)
        tests_status = get_xcom_val(ti, self.producer_task_id, get_tests_status_xcom_key(self.model_unique_id)) \
            if self.tested and model_status is not None else None
        status = combined_status(model_status, tests_status, self.tested)
        if status is None and model_status is not None \
                and self._get_producer_task_status(context) == ProducerTaskState.SUCCESS:
            # The build is over and not every test on the model reported: never a silent pass.
            raise RuntimeError(f"the build of {self.model_unique_id} ended without every data test on it "
                               "reporting; see the producer's log")
        return status


def watch_model_and_tests(sensor: Any, waits_for: list[str], tested: bool, named_tests: list[str]) -> None:
    """Make Cosmos' watcher sensor of a model a :class:`ModelBuildWatcher` (the model and the
    tests :func:`test_owners` gives it), started in the triggerer with
    :class:`NodeResultTrigger`, its retries waiting for ``waits_for``
    (:func:`wait_for_parents`). Its retry builds the model with the tests whose parents are
    all built by then (``--indirect-selection buildable``), and ``named_tests`` (tests on
    parents outside the model's lineage). (Cosmos builds the sensor itself and offers no way
    to choose its class in watcher mode; the subclass adds only the methods above.)"""
    from airflow.triggers.base import StartTriggerArgs

    sensor.__class__ = ModelBuildWatcher
    sensor.tested = tested
    sensor.indirect_selection = "buildable"
    sensor.dbt_cmd_flags = [*sensor.dbt_cmd_flags, *(flag for test in named_tests for flag in ("--select", test))]
    sensor.start_from_trigger = True
    sensor.start_trigger_args = StartTriggerArgs(
        trigger_cls=f"{NodeResultTrigger.__module__}.{NodeResultTrigger.__qualname__}",
        trigger_kwargs={"model_unique_id": sensor.model_unique_id, "producer_task_id": sensor.producer_task_id,
                        "waits_for": waits_for, "tested": tested},
        next_method="execute_complete", next_kwargs=None, timeout=None)
    sensor._pre_execute_hook = _wait_for_parents
