"""Paths, profiles and the execution shape of the dbt task groups, in one place (after
astronomer/cosmos-demo).

The DAGs render the dbt project from its prebuilt ``target/manifest.json``
(``LoadMode.DBT_MANIFEST``), so parsing a DAG file runs no dbt. The dbt profile is built
from the Airflow connection ``warehouse`` (``AIRFLOW_CONN_WAREHOUSE``): no secrets live in
``profiles.yml``.

Execution shape: Cosmos' ``ExecutionMode.WATCHER``. One task (the *producer*,
``dbt.dbt_producer_watcher``) runs a single ``dbt build`` of the group's selection with
dbt's own threads, in-process (``InvocationMode.DBT_RUNNER``: one parse per run, not one per
model), data tests included, and publishes every node's result when it ends. Every model
keeps its Airflow task (``dbt.<model>_run``), which stands for the model and every data test
on it: a sensor that takes its state from the producer's results, so the UI shows per-model
status while the run costs what one ``dbt build`` costs (one task per model, not one more
per model's tests: half the tasks, BENCHMARKS.md). Under a scheduler they start in the triggerer, all
at once after the build, and end there unless their node failed (:mod:`winback.dbt_watch`):
no worker process per model. A model that failed, or a data test on it, fails its task;
that task's retry runs ``dbt build --select <model>`` alone once the tasks of its dbt
parents have succeeded, so a retry redoes only what failed and
what had not run below it, in the graph's order, never the models that succeeded. The
producer itself never builds twice: a retried producer restores its first attempt's results
and is *skipped* (``dbt.dbt_producer_watcher_done`` absorbs the skip), see
:func:`watch_after_build`. Every dbt task runs in the pool ``winback_dbt`` (one slot,
:data:`winback.dag_policy.DBT_POOL`): the marts and the quarterly DAG never build at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import (
    PRODUCER_WATCHER_DONE_TASK_ID,
    PRODUCER_WATCHER_TASK_ID,
    DbtResourceType,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    TestBehavior,
)
from cosmos.profiles import PostgresUserPasswordProfileMapping

from winback import dbt
from winback.config import WAREHOUSE_CONN_ID, Settings

DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
# dbt events the producer does not forward to the Airflow API (see _results_only).
_PROGRESS_EVENTS = frozenset({"NodeStart", "NodeCompiling", "NodeExecuting"})
# dbt's threads in the producer's ``dbt build`` (the same as dbt_project/profiles.yml, so a
# DAG run and a plain ``dbt build`` run the same way).
DBT_THREADS = 2
# What each DAG builds (dbt selectors): the marts DAG the nightly models and the BI views
# over them (a rebuild that drops a mart recreates its views in the same run); the quarterly
# DAG the whole project for one as-of date, so KPI staging and the marts the gate reconciles
# against describe the same day, and the per-quarter analyses that change only when a
# quarter's horizon ends (tag quarterly, e.g. the early-warning backtest).
# bench/scheduler_runs.py builds the same selections.
MARTS_SELECT = ["tag:staging", "tag:intermediate", "tag:marts", "tag:reporting"]
QUARTERLY_SELECT = [*MARTS_SELECT, "tag:kpi", "tag:quarterly"]
# The task group of a DAG's dbt tasks, and the DAGs that have one (each has its own Cosmos
# cache, where its producer keeps dbt's partial-parse state from run to run).
DBT_GROUP_ID = "dbt"
PRODUCER_DAGS = ("winback_marts", "winback_quarterly_kpis")


def project_config(settings: Settings) -> ProjectConfig:
    return ProjectConfig(
        dbt_project_path=settings.dbt_project_dir,
        manifest_path=dbt.manifest_path(settings),
        project_name="winback",
    )


def profile_config() -> ProfileConfig:
    return ProfileConfig(
        profile_name="winback",
        target_name="airflow",
        profile_mapping=PostgresUserPasswordProfileMapping(
            conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": "staging", "threads": DBT_THREADS}),
    )


@contextlib.contextmanager
def producer_profile(settings: Settings) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The profile flags and environment the DAGs' producers run dbt with: Cosmos' profile
    from the Airflow connection ``warehouse``, the metric overrides as vars.

    dbt reuses a saved partial parse only for the same profile, target, connection and vars
    (``ManifestLoader.is_partial_parsable``); a dbt command run with these shares the
    producers' partial parse instead of parsing the whole project (4-5 s at any size)."""
    config = profile_config()
    with config.ensure_profile() as (profile_path, env):
        flags = ["--profiles-dir", str(profile_path.parent), "--profile", config.profile_name,
                 "--target", config.target_name]
        if settings.metric_overrides:
            flags += ["--vars", json.dumps(dict(settings.metric_overrides), default=str)]
        yield flags, dict(env)


def parse_target(settings: Settings) -> Path:
    """Where :func:`prime_partial_parse` keeps its parse (manifest and partial-parse state)."""
    return settings.state_dir / "dbt-parse"


def primed_parse(settings: Settings) -> Path:
    """dbt's partial-parse state :func:`prime_partial_parse` leaves (``partial_parse.msgpack``)."""
    return parse_target(settings) / "partial_parse.msgpack"


def partial_parse_cache(dag_id: str) -> Path:
    """The Cosmos cache folder of a DAG's dbt group (Cosmos: ``<dag_id>__<group_id>``)."""
    from cosmos import cache
    from cosmos import settings as cosmos_settings

    return cache._obtain_cache_dir_path(f"{dag_id}__{DBT_GROUP_ID}", base_dir=cosmos_settings.cache_dir)


def prime_partial_parse(settings: Settings) -> Path:
    """Parse the project as the producers do and leave dbt's partial-parse state in each
    producer's Cosmos cache; return the parse's target folder.

    A producer keeps the state of its last run in its cache, but the first run of a fresh
    home has none, and the project's own ``target/`` was parsed without a connection (any
    values do for a manifest): its first ``dbt build`` would parse the whole project. The CLI
    runs this in the background while the extract runs (:func:`winback.cli.start_priming`).
    """
    from cosmos import cache

    target = parse_target(settings)
    with producer_profile(settings) as (flags, env):
        dbt.run_dbt_env(["parse", *flags, "--target-path", str(target), "--log-path", str(target)], env, target)
    for dag_id in PRODUCER_DAGS:
        cache._update_partial_parse_cache(primed_parse(settings), partial_parse_cache(dag_id))
    return target


def render_config(select: list[str]) -> RenderConfig:
    # One task per model, no task per test: a model's task stands for the model and every
    # data test on it (watch_after_build), as ``dbt build --select <model>`` does. The DAGs
    # publish their own Assets; Cosmos would derive one per model from OpenLineage URIs,
    # which Airflow 3 rejects for a Unix-socket host.
    return RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=select, test_behavior=TestBehavior.NONE,
                        emit_datasets=False)


def execution_config() -> ExecutionConfig:
    return ExecutionConfig(
        execution_mode=ExecutionMode.WATCHER,
        invocation_mode=InvocationMode.DBT_RUNNER,
        dbt_executable_path=str(DBT_EXECUTABLE),
        # Only for the producer: its retry runs no dbt (it restores the first attempt's
        # results and skips), so it need not wait for the usual backoff before the model
        # tasks can read those results and retry what failed.
        setup_operator_args={"retry_delay": dt.timedelta(seconds=1), "retry_exponential_backoff": False},
    )


def dbt_build_group(settings: Settings, select: list[str]) -> DbtTaskGroup:
    """The task group ``dbt`` of a DAG: one ``dbt build`` of ``select`` (watcher mode, see the
    module docstring) for the as-of date the DAG's ``resolve_as_of`` task returns, its tasks
    with the DAGs' default arguments. Call inside a DAG."""
    from winback import dag_policy

    return watch_after_build(DbtTaskGroup(
        group_id=DBT_GROUP_ID,
        project_config=project_config(settings),
        profile_config=profile_config(),
        execution_config=execution_config(),
        render_config=render_config(select),
        operator_args=dag_policy.dbt_operator_args(settings),
        default_args=dag_policy.default_args(settings),
    ))


def watch_after_build(group: DbtTaskGroup) -> DbtTaskGroup:
    """Start the group's model tasks once the producer's ``dbt build`` (data tests included)
    is over, all at once, each from the triggerer, each standing for its model and the data
    tests on it (:mod:`winback.dbt_watch`).

    Cosmos leaves them unordered with the producer, to poll (deferred) while it runs, and
    chains them along the dbt graph. Here each depends on the producer alone:

    * under ``dag.test()`` (how ``winback run`` and the tests run DAGs: one process, one
      task at a time, in no set order) a sensor that happened to start first would wait for
      ever for a producer that cannot start;
    * after the producer every result is known, so the graph's edges only made each task
      wait a scheduling round per dbt level. They are kept as each task's ``waits_for``,
      which orders the retries (:func:`winback.dbt_watch.upstream_verdict`).

    They start when the producer succeeded or was skipped (its retry), not when it failed.
    Call before wiring the group to other tasks.
    """
    from airflow.sdk import TriggerRule

    from winback import dbt_schedule, dbt_watch

    prefix = f"{group.group_id}." if group.group_id else ""
    producer = group.dag.get_task(f"{prefix}{PRODUCER_WATCHER_TASK_ID}")
    producer._make_parse_callable = _results_only(producer._make_parse_callable)
    producer._post_execute_hook = dbt_watch.publish_results
    # The build's order of ready nodes: the longest chain below first (winback.dbt_schedule).
    producer._pre_execute_hook = dbt_schedule.pre_execute
    # Cosmos keeps the tests out of the producer's build when they have no tasks
    # (``--resource-type`` flags); here each model's task stands for its tests, so they run.
    producer.dbt_cmd_flags = _without_resource_types(producer.dbt_cmd_flags)
    # No dbt log file and no dbt log on stdout: the task log's dbt lines come from Cosmos'
    # event callback, which sees every event whatever the log levels. The file sits in a
    # temporary copy of the project, deleted after the run, and the stdout lines are JSON
    # that Cosmos discards; at 70k lines they cost ~7 s of the build's CPU (a JSON line, a
    # secrets scrub and a locked, flushed write per event, on dbt's threads).
    producer.dbt_cmd_flags += ["--log-level-file", "none", "--log-level", "none"]
    done = f"{prefix}{PRODUCER_WATCHER_DONE_TASK_ID}"
    inside = {task.task_id for task in group.iter_tasks()}
    sensors = [task for task in group.iter_tasks() if task.task_id not in (producer.task_id, done)]
    task_of = {task.model_unique_id: task.task_id for task in sensors}
    nodes = group.dbt_graph.nodes
    owners = dbt_watch.test_owners({uid: node.depends_on for uid, node in nodes.items()},
                                   [uid for uid, node in nodes.items() if node.resource_type == DbtResourceType.TEST], task_of)
    # The producer aggregates each model's test results over the tests its task stands for
    # (Cosmos: over every test on it, including those dbt runs after a later model).
    producer.tests_per_model = {}
    named: dict[str, list[str]] = {}
    waits_for_others: dict[str, set[str]] = {}
    for test, (model, others) in sorted(owners.items()):
        producer.tests_per_model.setdefault(model, []).append(test)
        if others:  # a test on models outside each other's lineage: named on the retry
            named.setdefault(model, []).append(test.split(".")[2])
            waits_for_others.setdefault(model, set()).update(task_of[p] for p in others)
    for task in sensors:
        uid = task.model_unique_id
        waits_for = sorted(task.upstream_task_ids & inside - {producer.task_id} | waits_for_others.get(uid, set()))
        for parent in waits_for:
            task.upstream_task_ids.discard(parent)
            group.dag.get_task(parent).downstream_task_ids.discard(task.task_id)
        producer >> task
        task.trigger_rule = TriggerRule.NONE_FAILED
        dbt_watch.watch_model_and_tests(task, waits_for, tested=uid in producer.tests_per_model,
                                        named_tests=named.get(uid, []))
    return group


def _without_resource_types(flags: list[str]) -> list[str]:
    """``flags`` without any ``--resource-type <type>`` pair."""
    kept: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag == "--resource-type":
            skip = True
        else:
            kept.append(flag)
    return kept


def _results_only(make_parse_callable: Callable[[], Callable[[str, Any], None]]):
    """The producer's dbt event handler without the per-node progress events, its results
    held in memory until the build ends (:class:`winback.dbt_watch.HeldResults`).

    Cosmos' producer stores an XCom (an Airflow API call, made on dbt's thread, under one
    lock) for every start/compiling/executing/finished event of every node: ~960 calls for
    the marts selection, ~425 without the progress events. Measured at size S under
    ``dag.test()`` (with the incremental XCom backup off): producer 35 s with them, 16 s
    without, against 13-14 s for ``dbt build`` alone. The model tasks only ever read a node's
    final status (and its final event, for their log), so the progress events are dropped
    here before Cosmos sees them; the results, skips, compiled SQL and test aggregation
    are Cosmos' own. (Cosmos 1.15.1: ``DbtProducerWatcherOperator._make_parse_callable``.)
    """
    from winback import dbt_watch

    def make() -> Callable[[str, Any], None]:
        parse = make_parse_callable()

        def handle(line: str, extra_kwargs: Any) -> None:
            if '"Node' in line:
                try:
                    if json.loads(line).get("info", {}).get("name") in _PROGRESS_EVENTS:
                        return
                except ValueError:
                    pass
            parse(line, dbt_watch.holding_results(extra_kwargs))

        return handle

    return make
