"""Paths and profiles for astronomer-cosmos, in one place (after astronomer/cosmos-demo).

The DAGs render the dbt project from its prebuilt ``target/manifest.json``
(``LoadMode.DBT_MANIFEST``), so parsing a DAG file runs no dbt. The dbt profile is built
from the Airflow connection ``warehouse`` (``AIRFLOW_CONN_WAREHOUSE``): no secrets live in
``profiles.yml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior
from cosmos.profiles import PostgresUserPasswordProfileMapping

from winback.config import WAREHOUSE_CONN_ID, Settings

DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")


def manifest_path(settings: Settings) -> Path:
    return settings.dbt_project_dir / "target" / "manifest.json"


def project_config(settings: Settings) -> ProjectConfig:
    return ProjectConfig(
        dbt_project_path=settings.dbt_project_dir,
        manifest_path=manifest_path(settings),
        project_name="winback",
    )


def profile_config() -> ProfileConfig:
    return ProfileConfig(
        profile_name="winback",
        target_name="airflow",
        profile_mapping=PostgresUserPasswordProfileMapping(
            conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": "staging", "threads": 2}),
    )


def render_config(select: list[str]) -> RenderConfig:
    # Each model runs, then its tests run right after it (a failed test stops its children).
    # The DAGs publish their own Assets; Cosmos would derive one per model from OpenLineage
    # URIs, which Airflow 3 rejects for a Unix-socket host.
    # A test with several parents (a relationships test) runs once all of them are built.
    return RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=select, test_behavior=TestBehavior.AFTER_EACH,
                        should_detach_multiple_parents_tests=True, emit_datasets=False)


def execution_config() -> ExecutionConfig:
    # In-process dbt runner: no subprocess per task, so a model task costs little more than dbt itself.
    return ExecutionConfig(dbt_executable_path=str(DBT_EXECUTABLE), invocation_mode=InvocationMode.DBT_RUNNER)
