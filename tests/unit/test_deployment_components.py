"""The deployment's components: the triggerer reads each serialized DAG once, builds its
execution API before the first trigger and loops with a shorter pause, without changing
what a trigger is given or what its loop does (winback.triggerer); the component that forks the tasks has their libraries imported
(winback.preloaded); the Docker stack runs the same."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _serialized(first_retries: int = 2) -> dict:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("triggered", schedule=None, start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
             params={"as_of": "2025-01-01"}) as dag:
        EmptyOperator(task_id="first", retries=first_retries) >> EmptyOperator(task_id="second", retries=5)
    return DagSerialization.to_dict(dag)


@pytest.fixture(scope="module")
def serialized_dag() -> dict:
    return _serialized()


def _task_instance(task_id: str, version: uuid.UUID):
    from airflow.executors.workloads.task import TaskInstanceDTO

    return TaskInstanceDTO(id=uuid.uuid4(), task_id=task_id, dag_id="triggered", run_id="manual__1",
                           try_number=1, dag_version_id=version, map_index=-1, pool_slots=1, queue="default",
                           priority_weight=1)


RUN = {"dag_id": "triggered", "run_id": "manual__1", "logical_date": None, "data_interval_start": None,
       "data_interval_end": None, "run_after": dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
       "start_date": dt.datetime(2025, 1, 2, tzinfo=dt.UTC), "clear_number": 0, "run_type": "manual",
       "state": "running", "conf": {"as_of": "2025-01-01"}, "consumed_asset_events": [],
       "partition_key": None, "end_date": None}


def test_the_cached_runtime_task_instance_is_airflows(serialized_dag):
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.serialized_objects import DagSerialization

    from winback.triggerer import cached_create_runtime_ti

    create = cached_create_runtime_ti(DagSerialization.from_dict)
    version = uuid.uuid4()
    for task_id in ("first", "second"):
        ti = _task_instance(task_id, version)
        ours = create(TriggerRunner, ti, serialized_dag, RUN)
        airflows = TriggerRunner.create_runtime_ti.__func__(TriggerRunner, ti, serialized_dag, RUN)
        assert ours.task.task_id == airflows.task.task_id == task_id
        for field in ("id", "task_id", "dag_id", "run_id", "try_number", "map_index", "dag_version_id"):
            assert getattr(ours, field) == getattr(airflows, field) == getattr(ti, field), field
        assert ours._ti_context_from_server.max_tries == airflows._ti_context_from_server.max_tries
        assert ours._ti_context_from_server.dag_run == airflows._ti_context_from_server.dag_run
        ours_context, airflows_context = ours.get_template_context(), airflows.get_template_context()
        assert set(ours_context) == set(airflows_context)
        assert {"run_id", "params", "task_instance"} <= set(ours_context)
        for key in sorted(set(ours_context) & {"run_id", "ts", "params", "inlets", "outlets", "map_index_template"}):
            assert str(ours_context[key]) == str(airflows_context[key]), key
        assert ours_context["task"].task_id == airflows_context["task"].task_id == task_id
        assert ours_context["dag_run"].conf == airflows_context["dag_run"].conf == {"as_of": "2025-01-01"}


def test_one_deserialization_per_serialized_dag_and_the_least_recent_dropped():
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.serialized_objects import DagSerialization

    from winback.triggerer import cached_create_runtime_ti

    calls = []

    def deserialize(encoded):
        calls.append(encoded)
        return DagSerialization.from_dict(encoded)

    create = cached_create_runtime_ti(deserialize, cache_size=2)
    one, two, three = _serialized(1), _serialized(2), _serialized(3)
    version = uuid.uuid4()  # the task's version: the DAG handed over decides, not it
    for encoded in (one, two, one, two):
        create(TriggerRunner, _task_instance("second", version), encoded, RUN)
    assert len(calls) == 2
    # The same content under another task version: no new deserialization.
    create(TriggerRunner, _task_instance("second", uuid.uuid4()), dict(two), RUN)
    assert len(calls) == 2
    # New content under the same task version: deserialized, and its own task is given.
    made = create(TriggerRunner, _task_instance("first", version), three, RUN)  # drops `one`
    assert len(calls) == 3 and made.task.retries == 3 and made._ti_context_from_server.max_tries == 3
    create(TriggerRunner, _task_instance("first", version), two, RUN)
    assert len(calls) == 3
    assert create(TriggerRunner, _task_instance("first", version), one, RUN).task.retries == 1
    assert len(calls) == 4


def test_installed_on_the_trigger_runner_once():
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from winback.triggerer import cache_start_from_trigger_dags

    before = TriggerRunner.__dict__["create_runtime_ti"]
    try:
        assert cache_start_from_trigger_dags() is True
        installed = TriggerRunner.__dict__["create_runtime_ti"]
        assert installed is not before and installed.__func__.winback_cached
        assert cache_start_from_trigger_dags() is True
        assert TriggerRunner.__dict__["create_runtime_ti"] is installed
    finally:
        TriggerRunner.create_runtime_ti = before


def test_left_alone_when_airflows_method_changed(monkeypatch):
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from winback.triggerer import cache_start_from_trigger_dags

    def create_runtime_ti(cls, task_instance, encoded_dag, dag_run_data, extra):
        raise AssertionError("not called here")

    changed = classmethod(create_runtime_ti)
    monkeypatch.setattr(TriggerRunner, "create_runtime_ti", changed)
    assert cache_start_from_trigger_dags() is False
    assert TriggerRunner.__dict__["create_runtime_ti"] is changed


class _RecordingRunner:
    """What ``TriggerRunner.arun`` drives, recorded: the rounds of the loop, ``rounds`` of them."""

    def __init__(self, rounds: int) -> None:
        import logging

        self.rounds, self.stop, self.triggers, self.calls = rounds, False, {}, []
        self.log = logging.getLogger("recording-runner")
        self.comms_decoder = SimpleNamespace(_reader_task=None)
        self._shared_streams = SimpleNamespace(stop_all=self._stop_all)

    async def init_comms(self):
        import asyncio

        self.calls.append("init_comms")
        self.comms_decoder._reader_task = asyncio.ensure_future(asyncio.sleep(3600))

    async def block_watchdog(self):
        import asyncio

        while not self.stop:
            await asyncio.sleep(0.01)

    async def cleanup_finished_triggers(self):
        self.calls.append("cleanup_finished_triggers")
        return [len(self.calls)]

    async def sync_state_to_supervisor(self, finished_ids):
        self.calls.append(("sync_state_to_supervisor", finished_ids))

    async def create_triggers(self):
        self.calls.append("create_triggers")

    async def cancel_triggers(self):
        self.calls.append("cancel_triggers")
        self.rounds -= 1
        self.stop = self.rounds == 0

    async def _stop_all(self):
        self.calls.append("stop_all")


def _rounds_of(arun, monkeypatch) -> tuple[list, list[float]]:
    """The calls and pauses of three rounds of a runner loop (the pauses cut short)."""
    import asyncio

    import anyio

    pauses, move_on_after = [], anyio.move_on_after

    def recorded(delay, *args, **kwargs):
        pauses.append(delay)
        return move_on_after(0, *args, **kwargs)

    runner = _RecordingRunner(rounds=3)
    with monkeypatch.context() as patched:
        patched.setattr(anyio, "move_on_after", recorded)
        asyncio.run(arun(runner))
    return runner.calls, pauses


def test_the_runner_loop_is_airflows_with_a_shorter_pause(monkeypatch):
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from winback.triggerer import runner_loop

    airflows_calls, airflows_pauses = _rounds_of(TriggerRunner.arun, monkeypatch)
    ours_calls, ours_pauses = _rounds_of(runner_loop(0.2), monkeypatch)
    assert ours_calls == airflows_calls
    assert airflows_calls.count("create_triggers") == 3 and airflows_calls[-1] == "stop_all"
    assert airflows_pauses == [1, 1, 1] and ours_pauses == [0.2, 0.2, 0.2]


def _loop_tree(function, names: dict[str, str], pause: str | None = None) -> str:
    """``function``'s syntax tree without docstring and imports, ``names`` renamed, the
    ``pause`` parameter read as Airflow's constant 1, ``contextlib.suppress`` as ``suppress``."""
    import ast
    import inspect
    import textwrap

    class Normalized(ast.NodeTransformer):
        def visit_Import(self, node):
            return None

        visit_ImportFrom = visit_Import

        def visit_Attribute(self, node):
            if isinstance(node.value, ast.Name) and node.value.id == "contextlib":
                return ast.Name(id=node.attr, ctx=node.ctx)
            return self.generic_visit(node)

        def visit_Name(self, node):
            if node.id == pause:
                return ast.Constant(value=1)
            return ast.Name(id=names.get(node.id, node.id), ctx=node.ctx)

    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        del body[0]  # the docstring
    return ast.dump(Normalized().visit(tree))


def test_the_runner_loop_is_airflows_statement_for_statement():
    """The copy differs from Airflow's loop (3.3.2) in the pause only: same statements, same
    order, same error handling and clean-up (comments aside)."""
    import inspect

    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from winback.triggerer import runner_loop

    airflows = inspect.unwrap(TriggerRunner.arun)
    assert _loop_tree(runner_loop(0.2), {"airflow_log": "log"}, pause="pause_seconds") == _loop_tree(airflows, {})


def test_the_runner_loop_installed_once_and_left_alone_when_airflows_changed(monkeypatch):
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from winback.triggerer import RUNNER_PAUSE_SECONDS, quicker_runner_loop

    monkeypatch.setattr(TriggerRunner, "arun", TriggerRunner.arun)  # restored after the test
    assert quicker_runner_loop() is True
    installed = TriggerRunner.arun
    assert installed.winback_pause_seconds == RUNNER_PAUSE_SECONDS < 1
    assert quicker_runner_loop() is True and TriggerRunner.arun is installed

    async def arun(self):
        raise AssertionError("not called here")

    monkeypatch.setattr(TriggerRunner, "arun", arun)
    assert quicker_runner_loop() is False and TriggerRunner.arun is arun


def test_the_execution_api_is_built_once_routes_included(monkeypatch):
    from airflow.jobs import triggerer_job_runner

    from winback.triggerer import prebuild_execution_api

    built = []
    original = triggerer_job_runner.in_process_api_server

    def counting():
        built.append(original())
        return built[-1]

    monkeypatch.setattr(triggerer_job_runner, "in_process_api_server", counting)
    assert prebuild_execution_api() is True
    assert len(built) == 1 and built[0].app._cadwyn_initialized
    assert triggerer_job_runner.in_process_api_server() is built[0]
    assert triggerer_job_runner.in_process_api_server() is built[0]
    assert prebuild_execution_api() is True and len(built) == 1


def test_the_deployment_and_the_compose_file_run_the_same_components_and_scheduling_options():
    from winback.deployment import SCHEDULING_OPTIONS, component_commands

    local, celery = component_commands("local"), component_commands("celery")
    assert local["triggerer"][1:3] == celery["triggerer"][1:3] == ["-m", "winback.triggerer"]
    assert local["scheduler"][1:] == ["-m", "winback.preloaded", "scheduler", "--skip-serve-logs"]
    assert celery["celery-worker"][1:5] == ["-m", "winback.preloaded", "celery", "worker"]
    assert celery["scheduler"][1:] == ["scheduler", "--skip-serve-logs"]  # forks no task under Celery
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert services["airflow-triggerer"]["command"].split() == ["python", "-m", "winback.triggerer"]
    assert services["airflow-worker"]["command"].split() == ["python", "-m", "winback.preloaded", "celery", "worker"]
    environment = compose["x-airflow-common"]["environment"]
    for section, options in SCHEDULING_OPTIONS.items():
        for option, value in options.items():
            assert environment[f"AIRFLOW__{section.upper()}__{option.upper()}"] == value, (section, option)


def test_preloading_imports_the_modules_and_refuses_one_that_starts_a_thread(tmp_path, monkeypatch):
    import sys

    from winback.preloaded import TASK_MODULES, preload

    (tmp_path / "quiet_module.py").write_text("VALUE = 1\n")
    (tmp_path / "threaded_module.py").write_text(
        "import threading\nEVENT = threading.Event()\n"
        "threading.Thread(target=EVENT.wait, name='left-running', daemon=True).start()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    preload(("quiet_module",))
    assert "quiet_module" in sys.modules
    with pytest.raises(RuntimeError, match="left-running"):
        preload(("threaded_module",))
    sys.modules["threaded_module"].EVENT.set()
    assert "great_expectations" in TASK_MODULES and "dbt.cli.main" in TASK_MODULES
    # Libraries only: the project's own code is imported by each task, edits reach it.
    assert not any(module.split(".")[0] == "winback" for module in TASK_MODULES)


def test_the_tasks_libraries_import_without_starting_a_thread():
    """In a fresh interpreter, as the scheduler or the Celery worker starts."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from winback.preloaded import preload; preload(); print('ok')"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
