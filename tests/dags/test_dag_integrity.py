"""Every DAG imports cleanly and follows the house policy (after astronomer/cosmos-demo)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psycopg
import pytest

from winback.dbt import manifest_path

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    """Parse the dags/ folder with every database and network call forbidden: a DAG file
    that queries or connects at import time fails to import and so fails this test."""
    from airflow.dag_processing.dagbag import DagBag

    def forbidden(*args, **kwargs):
        raise RuntimeError("DAG files must not open database or network connections at import time")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg, "connect", forbidden)
        patch.setattr(socket.socket, "connect", forbidden)
        return DagBag(dag_folder=str(DAGS_DIR))


def test_there_are_dag_files():
    assert DAG_FILES, "no DAG files found"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_file_defines_a_dag(dagbag):
    files_with_dags = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert files_with_dags == {p.name for p in DAG_FILES}


def test_dag_files_only_declare():
    # Task bodies live in winback.tasks (one module per DAG), what the DAGs declare alike in
    # winback.dag_policy: a DAG file defines its DAG function, named as the file, and nothing else.
    import ast

    for path in DAG_FILES:
        nodes = list(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
        defined = [n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        lambdas = [n for n in nodes if isinstance(n, ast.Lambda)]
        assert defined == [path.stem] and not lambdas, f"{path.name} defines {defined} and {len(lambdas)} lambdas"


def test_no_dag_file_is_named_like_a_dbt_module():
    # Cosmos imports dbt internals; a dags/dbt_*.py module would shadow them.
    assert not [p.name for p in DAG_FILES if p.name.startswith("dbt")]


def test_policy_tags_owner_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "winback" in dag.tags, f"{dag_id} lacks the 'winback' tag"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        assert dag.max_active_runs == 1, f"{dag_id} may run concurrently with itself"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries {task.retries} < 2"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure alert"


def test_extract_dag_publishes_the_raw_tables_as_assets(dagbag):
    dag = dagbag.get_dag("winback_nightly_extract")
    outlets = {a.name for t in dag.tasks for a in t.outlets}
    assert {"winback.raw.sales_lines", "winback.raw.contacts", "winback.raw.clients"} <= outlets


def test_dbt_tasks_get_the_as_of_date_in_the_environment_not_as_a_var(dagbag):
    # A dbt var that changes every night makes each dbt task parse the whole project
    # again; the environment variable keeps dbt's partial parse (macros/as_of_date.sql).
    from winback.dbt import AS_OF_ENV

    for dag_id in ("winback_marts", "winback_quarterly_kpis"):
        # Every task of the dbt group runs dbt (the producer) or may on retry (a model or test
        # task), except Cosmos' gate that absorbs the producer's skip.
        dbt_tasks = [t for t in dagbag.get_dag(dag_id).tasks
                     if t.task_id.startswith("dbt.") and t.task_id != "dbt.dbt_producer_watcher_done"]
        assert dbt_tasks, f"{dag_id} has no dbt tasks"
        for task in dbt_tasks:
            assert "resolve_as_of" in task.env.get(AS_OF_ENV, ""), f"{dag_id}.{task.task_id}: {task.env}"
            assert "as_of_date" not in (task.vars or {}), f"{dag_id}.{task.task_id}: {task.vars}"


def _waited_for(tasks: dict, task_id: str) -> set[str]:
    """The dbt group's tasks a model or test task waits for before it may run dbt itself
    (its retry), transitively: the edges of the dbt graph (winback.dbt_watch)."""
    found: set[str] = set()
    todo = [task_id]
    while todo:
        args = tasks[todo.pop()].start_trigger_args
        for parent in (args.trigger_kwargs or {}).get("waits_for", []) if args else []:
            if parent not in found:
                found.add(parent)
                todo.append(parent)
    return found


@pytest.mark.parametrize("dag_id", ["winback_marts", "winback_quarterly_kpis"])
def test_dags_that_rebuild_the_marts_rebuild_the_bi_views_after_them(dagbag, dag_id):
    # A dbt rebuild of a mart drops the BI views on it (CASCADE): every DAG that builds the
    # marts builds the views (dbt models, tag reporting) too, each after the marts it reads
    # (in the producer's dbt build, and on a retry: its task waits for theirs).
    import json

    from winback.config import get_settings
    from winback.report import bi_views

    manifest = json.loads((get_settings().dbt_project_dir / "target" / "manifest.json").read_text())
    tasks = {t.task_id: t for t in dagbag.get_dag(dag_id).tasks}

    def run_task(model: str):
        return tasks.get(f"dbt.{model}_run")

    views = bi_views(nightly_only=dag_id == "winback_marts")
    assert sorted(views) == sorted(f"reporting.{n['name']}" for n in manifest["nodes"].values()
                                   if n["resource_type"] == "model" and n["schema"] == "reporting"
                                   and ("reporting" in n["tags"] or ("quarterly" in n["tags"]
                                                                     and dag_id != "winback_marts")))
    for view in views:
        model = view.split(".")[1]
        node = manifest["nodes"][f"model.winback.{model}"]
        assert node["config"]["materialized"] == "view" and node["schema"] == "reporting", view
        run = run_task(model)
        assert run is not None, f"{dag_id} does not build {view}"
        upstream = _waited_for(tasks, run.task_id)
        parents = [parent.split(".")[-1] for parent in node["depends_on"]["nodes"]]
        assert parents, view
        for parent in parents:
            assert run_task(parent) is not None and run_task(parent).task_id in upstream, (view, parent)


@pytest.mark.parametrize("dag_id", ["winback_marts", "winback_quarterly_kpis"])
def test_dbt_runs_as_one_build_with_a_task_per_model_and_its_tests(dagbag, dag_id):
    # Cosmos' watcher mode: one producer runs ``dbt build`` in-process, data tests included;
    # each model keeps a task (a sensor reading the producer's result for the model and every
    # test on it, running ``dbt build --select <model>`` only on retry). The sensors start
    # after the producer, which dag.test() needs (a sensor that ran first would wait for
    # ever for a producer that cannot start).
    from cosmos.constants import InvocationMode
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    from winback.dbt_watch import ModelBuildWatcher

    dag = dagbag.get_dag(dag_id)
    producer = dag.get_task("dbt.dbt_producer_watcher")
    assert isinstance(producer, DbtProducerWatcherOperator)
    assert producer.invocation_mode == InvocationMode.DBT_RUNNER
    assert producer.upstream_task_ids == {"resolve_as_of"}
    assert "--resource-type" not in producer.add_cmd_flags(), "the producer's build must run the data tests"
    # ... but not dbt's unit tests, in the build and in a model task's retry alike
    from winback.dbt import PRODUCTION_BUILD_FLAGS

    model_task = next(task for task in dag.tasks if isinstance(task, ModelBuildWatcher))
    for task in (producer, model_task):
        flags = task.dbt_cmd_flags
        assert any(flags[i:i + 2] == list(PRODUCTION_BUILD_FLAGS) for i in range(len(flags))), task.task_id
    # its in-process build starts the longest chain first, as the pipeline's other dbt runs
    from winback import dbt_schedule

    assert producer._pre_execute_hook is dbt_schedule.pre_execute
    # its Cosmos cache is where the CLI primes the partial parse, and it logs through Cosmos'
    # event callback only (no dbt log file, no dbt log on stdout)
    from winback import cosmos_config

    assert dag_id in cosmos_config.PRODUCER_DAGS
    assert producer.cache_dir == cosmos_config.partial_parse_cache(dag_id)
    flags = producer.dbt_cmd_flags
    assert flags[flags.index("--log-level-file") + 1] == "none" and flags[flags.index("--log-level") + 1] == "none"
    group = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    models = [t for t in group if isinstance(t, ModelBuildWatcher)]
    assert {t.task_id for t in group} - {t.task_id for t in models} == {producer.task_id,
                                                                      "dbt.dbt_producer_watcher_done"}
    # A task for every model the DAG's selection names in the manifest (by its tags), marked
    # tested exactly when a data test in the manifest depends on the model.
    manifest = json.loads(manifest_path().read_text())
    selected = {f"tag:{tag}" for tag in ("staging", "intermediate", "marts", "reporting")} | (
        {"tag:kpi", "tag:quarterly"} if dag_id == "winback_quarterly_kpis" else set())
    chosen = {uid: node for uid, node in manifest["nodes"].items()
              if node["resource_type"] == "model" and {f"tag:{t}" for t in node["tags"]} & selected}
    assert {t.task_id for t in models} == {f"dbt.{node['name']}_run" for node in chosen.values()}
    # Every data test on the selection counts for exactly one model task, one of its parents:
    # the parent dbt builds last (a relationships test from lost_clients to dim_clients is
    # lost_clients'), and the task is marked tested.
    owner = {test: model for model, tests in producer.tests_per_model.items() for test in tests}
    assert sum(len(tests) for tests in producer.tests_per_model.values()) == len(owner)
    on_selection = {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "test"
                    and set(node["depends_on"]["nodes"]) & set(chosen)}
    assert set(owner) == set(on_selection) and len(owner) >= 150
    for test, node in on_selection.items():
        assert owner[test] in node["depends_on"]["nodes"], test
    by_name = {node["name"]: uid for uid, node in on_selection.items()}
    assert owner[by_name["relationships_lost_clients_client_id__client_id__ref_dim_clients_"]] == "model.winback.lost_clients"
    assert owner[by_name["assert_lost_clients_are_the_open_episodes"]] == "model.winback.lost_clients"
    assert {t.model_unique_id for t in models if t.tested} == set(owner.values())
    assert ModelBuildWatcher.base_cmd == ["build"]  # a retry: the model and its tests
    # Each starts in the triggerer right after the producer (one level, not one per dbt
    # level), and waits for its dbt parents' tasks only on a retry (winback.dbt_watch).
    tasks = {t.task_id: t for t in dag.tasks}
    for sensor in models:
        assert sensor.upstream_task_ids == {producer.task_id}, sensor.task_id
        assert sensor.trigger_rule == "none_failed", sensor.task_id
        assert sensor.start_from_trigger, sensor.task_id
        assert sensor.start_trigger_args.trigger_cls == "winback.dbt_watch.NodeResultTrigger"
        assert sensor.start_trigger_args.trigger_kwargs["tested"] == sensor.tested
        assert set(sensor.start_trigger_args.trigger_kwargs["waits_for"]) <= set(tasks), sensor.task_id
    # The waits follow the manifest: a model's task waits for its parents' tasks.
    waits = {t.task_id: set(t.start_trigger_args.trigger_kwargs["waits_for"]) for t in models}
    dim_parents = {p.split(".")[-1] for p in manifest["nodes"]["model.winback.dim_clients"]["depends_on"]["nodes"]}
    assert {w.split(".")[1].removesuffix("_run") for w in waits["dbt.dim_clients_run"]} == dim_parents
