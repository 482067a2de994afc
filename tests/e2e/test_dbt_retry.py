"""A model that fails once is retried alone: the marts DAG's retry redoes only what failed.

The marts DAG runs its dbt selection as one ``dbt build`` (Cosmos' watcher producer) and
keeps a task per model (the model and its data tests). Here either the raw ``managers``
table is missing for that build, so ``stg_erp__managers`` fails, or it holds a duplicate
manager, so the model builds and its ``unique`` test fails; either way dbt skips the models
below it. The table is mended when the failed model task goes up for retry (an ``on_retry_callback``
added to the DAG's default arguments for this test only), as an operator fixing a source
would. The run must then succeed, having rebuilt ``stg_erp__managers`` and its
descendants on their tasks' retries, and nothing else: every other relation keeps the
physical identity (``pg_class`` oid; a dbt table or view rebuild replaces it) it had when
the build ended, and every other model task succeeded on its first try without running dbt.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from integration.test_quality_gate import AS_OF, raw_warehouse

from winback import dag_policy, orchestration, warehouse
from winback.config import get_settings
from winback.orchestration import run_dag

pytestmark = pytest.mark.e2e

FAILING = "stg_erp__managers"
# The marts DAG's selection (tags), which are also the schemas its models are built in.
SCHEMAS = ("staging", "intermediate", "marts", "reporting")


def _relations(dsn: str) -> dict[str, int]:
    """Every dbt relation of the marts schemas and its oid (a rebuilt table or view gets a new one)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select c.relname, c.oid::bigint from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                            " where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p')",
                            (list(SCHEMAS),)).fetchall()
    return dict(rows)


def _manifest() -> dict:
    return json.loads((get_settings().dbt_project_dir / "target" / "manifest.json").read_text())


def _selected_models() -> set[str]:
    """The models the marts DAG builds (its selection: these tags)."""
    return {node["name"] for node in _manifest()["nodes"].values()
            if node["resource_type"] == "model" and set(SCHEMAS) & set(node["tags"])}


def _descendants(model: str) -> set[str]:
    manifest = _manifest()
    found: set[str] = set()
    todo = [f"model.winback.{model}"]
    while todo:
        for child in manifest["child_map"].get(todo.pop(), []):
            if child.startswith("model.") and child not in found:
                found.add(child)
                todo.append(child)
    return {uid.split(".")[-1] for uid in found if set(SCHEMAS) & set(manifest["nodes"][uid]["tags"])}


def _task_instances(dag_id: str, run_id: str) -> dict[str, tuple[str, int]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number)
                               .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    return {task_id: (getattr(state, "value", str(state)), tries) for task_id, state, tries in rows}


@pytest.fixture
def loaded_warehouse(pg_admin_dsn, airflow_home, monkeypatch, tmp_path):
    with raw_warehouse(pg_admin_dsn, "wb_retry") as (_, dsn):
        monkeypatch.setenv("WINBACK_WAREHOUSE_URL", dsn)
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.airflow_conn_uri(dsn))
        monkeypatch.setenv("WINBACK_HOME", str(tmp_path))
        yield dsn


# How the build breaks and how the operator mends it (SQL run on the warehouse), and whether
# the failing model itself was built in the first build (its data test failed, not the model).
BREAKAGES = {
    # the raw table is missing: the model fails
    "model fails": ("alter table raw.managers rename to managers_hidden",
                    "alter table raw.managers_hidden rename to managers", False),
    # a duplicate manager: the model builds, its unique test fails, dbt skips what reads it
    "data test fails": ("alter table raw.managers drop constraint managers_pkey;"
                        " insert into raw.managers select * from raw.managers limit 1",
                        "delete from raw.managers m using raw.managers d"
                        " where m.manager_id = d.manager_id and m.ctid > d.ctid", True),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_model_that_fails_once_is_retried_alone(loaded_warehouse, monkeypatch, breakage):
    dsn = loaded_warehouse
    break_sql, mend_sql, built_first = BREAKAGES[breakage]
    failed_task = f"dbt.{FAILING}_run"
    at_retry: dict[str, dict[str, int]] = {}

    def mend(context):
        # Runs when a task goes up for retry; only the failed model's first failure acts.
        if context["ti"].task_id == failed_task and not at_retry:
            at_retry["relations"] = _relations(dsn)
            with psycopg.connect(dsn) as conn:
                conn.execute(mend_sql)

    default_args = dag_policy.default_args

    def with_retry_hook(settings):
        return {**default_args(settings), "on_retry_callback": mend}

    monkeypatch.setattr(dag_policy, "default_args", with_retry_hook)
    with psycopg.connect(dsn) as conn:
        conn.execute(break_sql)

    run = run_dag("winback_marts", orchestration.logical_date_for(AS_OF, get_settings()),
                  conf={"as_of": AS_OF.isoformat()})

    tasks = _task_instances("winback_marts", run.run_id)
    assert str(run.state) == "success", {t: s for t, s in tasks.items() if s[0] != "success"}
    assert at_retry, f"{failed_task} never went up for retry"
    redone = {FAILING, *_descendants(FAILING)}
    # the view on raw.managers and the models below it (int_clients and the marts and BI
    # views that read client attributes), not the whole selection
    assert {"int_clients", "dim_clients"} < redone < _selected_models(), redone

    # In Airflow: the build ran once (its retry only hands the first attempt's results on),
    # the failed model and the models dbt skipped below it were retried, nothing else was.
    assert tasks["dbt.dbt_producer_watcher"] == ("skipped", 2)
    model_tasks = {t.split(".")[1].removesuffix("_run"): s for t, s in tasks.items() if t.endswith("_run")}
    assert set(model_tasks) == _selected_models(), sorted(model_tasks)
    retried = {model for model, (_, tries) in model_tasks.items() if tries > 1}
    assert retried == redone, retried ^ redone
    assert all(state == "success" for state, _ in model_tasks.values()), model_tasks

    # In the warehouse: those were built on retry; every other relation is exactly the one
    # the build left (same oid), so no retry rebuilt it.
    before, after = at_retry["relations"], _relations(dsn)
    assert redone <= set(after) and not (redone - {FAILING}) & set(before), redone & set(before)
    # the failing model: built by the first build when only its test failed, and built again
    assert (FAILING in before) == built_first
    assert before.get(FAILING) != after[FAILING]
    others = _selected_models() - redone
    assert others and others <= set(before)
    assert {r: before.get(r) for r in others} == {r: after[r] for r in others}
    with psycopg.connect(dsn) as conn:
        moves = conn.execute("select count(*) from reporting.manager_segment_moves").fetchone()[0]
        managers = conn.execute(f"select count(*) from staging.{FAILING}").fetchone()[0]
    assert managers > 0 and moves >= 0
