"""A local Airflow deployment of winback: ``make airflow`` (``python -m winback.deployment``).

Runs the DAGs under a real scheduler, as a deployment would, on this machine:

* a self-contained ``AIRFLOW_HOME`` (``<state dir>/airflow-local``) whose ``airflow.cfg``
  names the DAGs folder, has the examples off, the executor, the metadata database, the
  API server on 127.0.0.1, telemetry off and the project's Cosmos settings, so a plain
  ``AIRFLOW_HOME=.winback/airflow-local airflow dags list`` works in it too;
* the metadata database in PostgreSQL: a database ``airflow`` on the embedded server, or
  the server named by ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``;
* the embedded warehouse (unless ``WINBACK_WAREHOUSE_URL`` / ``AIRFLOW_CONN_WAREHOUSE``
  and the source URL name other servers) started and owned by this process: it stays up
  for as long as the deployment runs and stops with it;
* the connections ``warehouse`` and ``sales_source`` exported to every component (and in
  ``connections.json``, read through Airflow's local-filesystem secrets backend, so plain
  ``airflow`` commands in that home see them too);
* the dbt manifest built, the metadata database migrated, the DAGs unpaused at creation
  (every DAG has ``catchup=False`` and runs only from its next scheduled time on);
* then ``airflow scheduler``, ``dag-processor``, ``triggerer`` and ``api-server`` (UI and
  REST API on http://127.0.0.1:8080), and with ``--executor celery`` an ``airflow celery
  worker`` on the Redis at ``redis://127.0.0.1:6379/0``, each in its own process group.

Ctrl-C (SIGINT) or SIGTERM stops every component and their children, then the embedded
server. Nothing listens on anything but 127.0.0.1: the components' log servers are not
started (every component writes to the same local log folder the API server reads).
Login: Airflow's SimpleAuthManager with ``simple_auth_manager_all_admins`` (a local,
loopback-only deployment: every visitor is admin, no password).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from winback.config import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, Settings, get_settings

EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
METADATA_DB = "airflow"
# Seconds a component gets to exit after SIGTERM before its process group is killed.
STOP_GRACE_SECONDS = 20
_TELEMETRY_OFF = {
    "SCARF_ANALYTICS": "false",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
}


def deployment_home(settings: Settings) -> Path:
    """The deployment's AIRFLOW_HOME (not the CLI's, whose metadata is a SQLite file)."""
    return settings.state_dir / "airflow-local"


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


# ----------------------------------------------------------------------------- airflow.cfg
def _existing_secrets(cfg_path: Path) -> dict[tuple[str, str], str]:
    """The generated secrets of an earlier airflow.cfg, kept so sessions and tokens survive
    a restart (and encrypted values stay readable)."""
    keep = {("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret")}
    if not cfg_path.exists():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg_path)
    return {(s, o): parser.get(s, o) for s, o in keep if parser.has_option(s, o) and parser.get(s, o)}


# How quickly the scheduler and the triggerer move a run on (docker/docker-compose.yaml sets
# the same, as AIRFLOW__<SECTION>__<OPTION>):
# * an idle scheduler looks again after 0.25 s, not 1 s: each hop of a run (a task ends, the
#   next is queued; the last ends, the run ends) waited up to a second, ~1 s of a marts run;
# * all of a run's model tasks (62 in the quarterly DAG) load in one triggerer loop, not 50.
SCHEDULING_OPTIONS = {
    "scheduler": {"scheduler_idle_sleep_time": "0.25"},
    "triggerer": {"max_trigger_to_select_per_loop": "200"},
}


def config_values(settings: Settings, home: Path, executor: str, metadata_url: str, port: int,
                  broker_url: str) -> dict[str, dict[str, str]]:
    """The sections and options winback sets in the deployment's airflow.cfg (the rest are
    Airflow's defaults)."""
    from cryptography.fernet import Fernet

    kept = _existing_secrets(home / "airflow.cfg")
    values = {
        "core": {
            "dags_folder": str(settings.dags_dir),
            "load_examples": "False",
            "executor": EXECUTORS[executor],
            # Registered paused; prime_schedules() unpauses them once primed (see there).
            "dags_are_paused_at_creation": "True",
            "parallelism": "8",
            "execution_api_server_url": f"http://127.0.0.1:{port}/execution/",
            "auth_manager": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "simple_auth_manager_all_admins": "True",
            "fernet_key": kept.get(("core", "fernet_key")) or Fernet.generate_key().decode(),
        },
        "database": {"sql_alchemy_conn": metadata_url},
        "api": {
            "host": "127.0.0.1",
            "port": str(port),
            "workers": "1",
            "base_url": f"http://127.0.0.1:{port}",
            "secret_key": kept.get(("api", "secret_key")) or secrets.token_urlsafe(32),
        },
        "api_auth": {"jwt_secret": kept.get(("api_auth", "jwt_secret")) or secrets.token_urlsafe(32)},
        "logging": {"base_log_folder": str(home / "logs"), "logging_level": "INFO"},
        "scheduler": {"enable_health_check": "False", **SCHEDULING_OPTIONS["scheduler"]},
        "triggerer": SCHEDULING_OPTIONS["triggerer"],
        "dag_processor": {"refresh_interval": "60"},
        "celery": {
            "broker_url": broker_url,
            "result_backend": "db+" + metadata_url,
            "worker_concurrency": "4",
        },
        "secrets": {
            "backend": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
            "backend_kwargs": json.dumps({"connections_file_path": str(home / "connections.json")}),
        },
        "usage_data_collection": {"enabled": "False"},
        "cosmos": cosmos_options(settings),
    }
    return values


def cosmos_options(settings: Settings) -> dict[str, str]:
    """The ``[cosmos]`` section of an airflow.cfg: telemetry off and the Cosmos settings
    :func:`airflow_env` gives the CLI's runs (one home for both)."""
    prefix = "AIRFLOW__COSMOS__"
    return {"enable_telemetry": "False", **{name[len(prefix):].lower(): value
                                           for name, value in airflow_env(settings).items() if name.startswith(prefix)}}


def write_airflow_cfg(home: Path, values: dict[str, dict[str, str]], header: str) -> Path:
    """Write ``airflow.cfg`` with only the given options (Airflow supplies its defaults for
    the rest). ``%`` is escaped: Airflow reads the file with interpolation."""
    home.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for section, options in values.items():
        lines.append(f"\n[{section}]")
        lines += [f"{key} = {str(value).replace('%', '%%')}" for key, value in options.items()]
    path, text = home / "airflow.cfg", "\n".join(lines) + "\n"
    if path.exists() and path.read_text() == text:
        return path
    staged = path.with_name(f".airflow.cfg.{os.getpid()}")
    staged.write_text(text)
    staged.chmod(0o600)  # secrets and the metadata URL
    staged.replace(path)  # atomically: another process may be reading it
    return path


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment of the CLI's project-local Airflow (``winback.orchestration``: metadata
    DB in SQLite under the state dir)."""
    return {
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        # In-process runs print the task API client's log: Cosmos' watcher tasks of a test with
        # several parents look up their status before it exists, and each 404 shows as an
        # "XCom not found" error on the user's console. A failed task still fails the run.
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": os.environ.get("AIRFLOW__LOGGING__NAMESPACE_LEVELS",
                                                             "airflow.sdk.api.client=CRITICAL"),
        "WINBACK_PROJECT_DIR": str(settings.project_dir),
        # Cosmos caches the rendered dbt profile by connection id, not by its value; a local
        # run may point the same id at another database (tests do), so build it fresh.
        "AIRFLOW__COSMOS__ENABLE_CACHE_PROFILE": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(settings.state_dir / "cosmos-cache"),
        # The watcher producer would back its XComs up to a Variable on every dbt event (an
        # extra API write each); off, the backup is written once by its retry/failure callback.
        # Only a hard-killed producer loses it: the model tasks then rebuild their models one by one.
        "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "False",
    }


def cli_config_values(settings: Settings, home: Path | None = None) -> dict[str, dict[str, str]]:
    """The airflow.cfg of the CLI's own Airflow home (``winback run``/``demo``: ``dag.test()``,
    metadata in SQLite there): the DAGs folder, no examples, no telemetry, winback's Cosmos
    settings, so ``airflow`` commands in that home see the same as the CLI."""
    # An earlier airflow.cfg (Airflow writes one with a generated key) keeps its Fernet key:
    # values it encrypted in the metadata database stay readable.
    kept = _existing_secrets((home or settings.airflow_home) / "airflow.cfg")
    core = {"dags_folder": str(settings.dags_dir), "load_examples": "False", "dags_are_paused_at_creation": "True"}
    if kept.get(("core", "fernet_key")):
        core["fernet_key"] = kept[("core", "fernet_key")]
    return {
        "core": core,
        "usage_data_collection": {"enabled": "False"},
        "cosmos": cosmos_options(settings),
    }


_HEADER = """Written by winback.deployment (make airflow) at every start; edit winback's settings
(WINBACK_*, winback.toml) or AIRFLOW__SECTION__KEY variables, not this file.
A self-contained AIRFLOW_HOME: AIRFLOW_HOME=<this folder> airflow dags list works as is."""


# ----------------------------------------------------------------------------- databases
def sqlalchemy_url(libpq_uri: str) -> str:
    """A libpq URI (embedded: socket directory in ``host=``) as SQLAlchemy's psycopg2 URL."""
    for prefix in ("postgresql://", "postgres://"):
        if libpq_uri.startswith(prefix):
            return "postgresql+psycopg2://" + libpq_uri[len(prefix):]
    return libpq_uri


def metadata_url(settings: Settings) -> str:
    """``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` if set, else the database ``airflow`` on the
    embedded server (created if missing)."""
    explicit = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if explicit:
        return explicit
    from winback import warehouse

    warehouse._ensure_database(warehouse.embedded_uri(settings, "postgres"), METADATA_DB)
    return sqlalchemy_url(warehouse.embedded_uri(settings, METADATA_DB))


def write_connections(home: Path, connections: dict[str, str]) -> Path:
    path = home / "connections.json"
    path.write_text(json.dumps(connections, indent=2) + "\n")
    path.chmod(0o600)
    return path


# ----------------------------------------------------------------------------- processes
def component_commands(executor: str) -> dict[str, list[str]]:
    airflow = airflow_bin()
    # The component that forks the tasks (the scheduler's LocalExecutor, or the Celery
    # worker) starts with their libraries imported (winback.preloaded).
    preloaded = [sys.executable, "-m", "winback.preloaded"]
    celery = executor == "celery"
    commands = {
        "scheduler": [*([airflow] if celery else preloaded), "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
        # airflow triggerer, the project's trigger preloaded and each serialized DAG read once
        "triggerer": [sys.executable, "-m", "winback.triggerer", "--skip-serve-logs"],
        "api-server": [airflow, "api-server"],
    }
    if celery:
        commands["celery-worker"] = [*preloaded, "celery", "worker", "--skip-serve-logs"]
    return commands


class Deployment:
    """The running components: each in its own session (process group), so stopping one
    stops everything it started, and Ctrl-C reaches them only through :meth:`stop`."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    def start(self, name: str, command: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop())
        self._logs.append(out)
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        print(f"  started {name:14} pid {self.processes[name].pid}  (log {self.log_dir / f'{name}.log'})",
              flush=True)

    def exited(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def stop(self) -> None:
        import psutil

        members: list[psutil.Process] = []
        for process in self.processes.values():
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(process.pid)
                members += [parent, *parent.children(recursive=True)]
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():  # the group, and whatever left it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        _, alive = psutil.wait_procs(members, timeout=5)
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        for out in self._logs:
            out.close()


def wait_healthy(port: int, timeout: float, deployment: Deployment | None = None) -> dict:
    """Poll ``/api/v2/monitor/health`` until the metadatabase, scheduler and DAG processor
    report healthy; return the last answer."""
    url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    deadline, last = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        if deployment is not None and deployment.exited():
            raise RuntimeError(f"components exited during start-up: {deployment.exited()} "
                               f"(see the logs in {deployment.log_dir})")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback)
                last = json.load(answer)
            if all((last.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "dag_processor")):
                return last
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(2)
    raise TimeoutError(f"{url} did not report healthy within {timeout:.0f}s: {last}")


def warm_execution_api(port: int) -> None:
    """One request to the API server's task execution API, so that the first task of the
    first run does not wait while the server builds that API's versioned routes on its
    first request (2-3.5 s on a 2-core machine). Best effort: a failure only costs that time."""
    with contextlib.suppress(OSError, ValueError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=30).close()  # noqa: S310 (loopback)


# ----------------------------------------------------------------------------- main
def prepare(settings: Settings, executor: str, port: int, broker_url: str,
            pg_port: int | None = None) -> dict[str, str]:
    """Everything before the components start; returns their environment. Starts (and this
    process then owns) the embedded server when a database lives on it. With ``pg_port``
    the embedded server also listens on 127.0.0.1:``pg_port`` for BI tools, SCRAM only
    (:func:`winback.warehouse.enable_tcp`)."""
    from winback import dbt, warehouse

    home = deployment_home(settings)
    if pg_port:
        if not settings.uses_embedded_warehouse:
            raise RuntimeError("--pg-port (WINBACK_PG_TCP_PORT) opens the embedded server to TCP; "
                               "the warehouse is another server (WINBACK_WAREHOUSE_URL / AIRFLOW_CONN_WAREHOUSE)")
        if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:
            metadata_url(settings)  # the metadata database exists before CONNECT is revoked on it
        bi = warehouse.enable_tcp(settings, pg_port)
        # The socket's name carries the port: from now on every URI names it.
        settings = get_settings(
            warehouse_url=warehouse.embedded_uri(settings, settings.warehouse_db),
            source_url=settings.source_url or warehouse.embedded_uri(settings, settings.source_db))
        print(f"  warehouse on TCP for BI tools: {bi['bi_uri'].split(':')[0]}://winback_bi:***@127.0.0.1:{pg_port}/"
              f"{settings.warehouse_db}  (password in {settings.state_dir / 'pg-passwords.json'})", flush=True)
    connections = warehouse.export_connections(settings)  # starts the embedded server if needed
    warehouse.bootstrap(warehouse.warehouse_dsn(settings))
    meta = metadata_url(settings)
    write_airflow_cfg(home, config_values(settings, home, executor, meta, port, broker_url), _HEADER)
    write_connections(home, {WAREHOUSE_CONN_ID: connections[f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"],
                             SOURCE_CONN_ID: connections[f"AIRFLOW_CONN_{SOURCE_CONN_ID.upper()}"]})
    dbt.ensure_manifest(settings)

    cli_only = airflow_env(settings)  # the CLI's local-Airflow variables would override the cfg
    env = {key: value for key, value in os.environ.items() if key not in cli_only or key.startswith("WINBACK_")}
    env.update(_TELEMETRY_OFF)
    env.update(connections)
    env.update({"AIRFLOW_HOME": str(home), "WINBACK_PROJECT_DIR": str(settings.project_dir)})
    if settings.home:
        env["WINBACK_HOME"] = str(settings.home)
    done = subprocess.run([airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stderr[-3000:]}")
    return env


def project_dag_ids(settings: Settings) -> list[str]:
    """The DAG ids the project's DAG files declare (``dag_id="..."``)."""
    import re

    found = []
    for path in sorted(settings.dags_dir.glob("*.py")):
        found += re.findall(r"""dag_id\s*=\s*["']([\w.-]+)["']""", path.read_text())
    return found


def wait_registered(port: int, dag_ids: list[str], timeout: float, deployment: Deployment) -> None:
    """Wait until the DAG processor has registered every project DAG."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deployment.exited():
            raise RuntimeError(f"components exited: {deployment.exited()} (logs in {deployment.log_dir})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/dags?limit=100",  # noqa: S310
                                        timeout=10) as answer:
                known = {dag["dag_id"] for dag in json.load(answer)["dags"]}
            if set(dag_ids) <= known:
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(2)
    raise TimeoutError(f"the DAG processor did not register {dag_ids} within {timeout:.0f}s "
                       f"(import errors: http://127.0.0.1:{port}/api/v2/importErrors)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalApi:
    """The deployment's REST API on 127.0.0.1 (no login locally), as a user's script calls it."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/api/v2"

    def call(self, path: str, body: dict | None = None, method: str | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method or ("POST" if data else "GET"),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
            return json.load(answer)

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs, latest first."""
        return self.call(f"/dags/{dag_id}/dagRuns?order_by=-start_date")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]


PRIMED_NOTE = ("Not run: the local deployment (make airflow) first started after this scheduled time. "
               "Scheduling starts with the next one; trigger a run by hand for past dates.")


def create_pools() -> None:
    """The pool the dbt tasks run in (:data:`winback.dag_policy.DBT_POOL`), before any DAG is
    unpaused: a task naming a pool that does not exist never runs. Runs in a process whose
    ``AIRFLOW_HOME`` is the deployment's."""
    from airflow.models.pool import Pool

    from winback.dag_policy import DBT_POOL, DBT_POOL_DESCRIPTION

    Pool.create_or_update_pool(DBT_POOL, slots=1, description=DBT_POOL_DESCRIPTION, include_deferred=False)


def prime_schedules(dag_ids: list[str]) -> list[str]:
    """Unpause the project's newly registered DAGs so that their next scheduled run is the
    next one in the future; return the DAGs primed.

    With ``catchup=False``, a time-scheduled DAG unpaused for the first time runs at once
    for its latest *past* scheduled time (the nightly for last night, the quarterly for the
    last quarter's publication day), whatever data exists. For a DAG that has never run,
    that slot is recorded as a run that was not run (state success, no task, with a note
    saying so), which makes the scheduler's next run the next scheduled time. DAGs that
    already have runs, or that the user paused later, are left as they are.

    Runs in a process whose ``AIRFLOW_HOME`` is the deployment's (it imports Airflow).
    """
    import datetime as dt

    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import func, select

    primed = []
    now = dt.datetime.now(dt.UTC)
    with create_session() as session:
        for dag_id in dag_ids:
            model = session.get(DagModel, dag_id)
            if model is None or not model.is_paused:
                continue
            if session.scalar(select(func.count()).select_from(DagRun).where(DagRun.dag_id == dag_id)):
                continue  # it ran before: paused by someone, stays paused
            dag = SerializedDagModel.get_dag(dag_id, session=session)
            info = dag.next_dagrun_info(last_automated_run_info=None) if dag is not None else None
            if info is not None and info.logical_date is not None and info.run_after <= now:
                run = DagRun(
                    dag_id=dag_id,
                    run_id=DagRun.generate_run_id(run_type=DagRunType.SCHEDULED, logical_date=info.logical_date,
                                                  run_after=info.run_after),
                    logical_date=info.logical_date, run_after=info.run_after,
                    data_interval=(info.data_interval.start, info.data_interval.end),
                    start_date=now, state=DagRunState.SUCCESS, run_type=DagRunType.SCHEDULED,
                    triggered_by=DagRunTriggeredByType.TIMETABLE, note=PRIMED_NOTE)
                run.end_date = now
                session.add(run)
                session.flush()
                model.calculate_dagrun_date_fields(dag, reference_run=run)
                primed.append(dag_id)
            model.is_paused = False
    return primed


def _broker_reachable(broker_url: str) -> None:
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(broker_url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=3).close()
    except OSError as exc:
        raise SystemExit(f"error: the Celery broker {parts.hostname}:{parts.port or 6379} does not answer ({exc}); "
                         "start Redis (e.g. `redis-server --bind 127.0.0.1`) or use EXECUTOR=local") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m winback.deployment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", choices=sorted(EXECUTORS),
                        default=os.environ.get("WINBACK_AIRFLOW_EXECUTOR", "local"),
                        help="local (LocalExecutor, default) or celery (CeleryExecutor on Redis)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("WINBACK_AIRFLOW_PORT", "8080")),
                        help="port of the UI and REST API on 127.0.0.1 (default 8080)")
    parser.add_argument("--broker-url", default=os.environ.get("WINBACK_CELERY_BROKER_URL", DEFAULT_BROKER),
                        help=f"Celery broker (default {DEFAULT_BROKER})")
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("WINBACK_PG_TCP_PORT", "0")) or None,
                        help="also open the embedded PostgreSQL on 127.0.0.1:PORT for BI tools (SCRAM passwords, "
                             "project roles and the warehouse database only); default: Unix socket only")
    parser.add_argument("--health-timeout", type=float, default=180,
                        help="seconds to wait for the scheduler and DAG processor to report healthy")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    if args.executor == "celery":
        _broker_reachable(args.broker_url)
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Also SIGINT, explicitly: started in the background by a non-interactive shell (CI, nohup,
    # make in a script), a process inherits SIGINT ignored, and Python then installs no handler.
    signal.signal(signal.SIGINT, on_signal)
    home = deployment_home(settings)
    print(f"winback: local Airflow deployment ({EXECUTORS[args.executor]}), AIRFLOW_HOME={home}", flush=True)
    deployment: Deployment | None = None
    try:
        env = prepare(settings, args.executor, args.port, args.broker_url, args.pg_port)
        # dbt's parse for the DAGs' producers, made while the components start: their first
        # build then loads the project instead of parsing it (cosmos_config.prime_partial_parse).
        parse_log = home / "dbt-parse.log"
        with parse_log.open("w") as log_file:
            parse = subprocess.Popen(
                [sys.executable, "-c", "from winback import cosmos_config; from winback.config import get_settings; "
                 "cosmos_config.prime_partial_parse(get_settings())"],
                env=env, stdout=log_file, stderr=subprocess.STDOUT)
        deployment = Deployment(env, home / "components")
        for name, command in component_commands(args.executor).items():
            deployment.start(name, command)
        health = wait_healthy(args.port, args.health_timeout, deployment)
        warm_execution_api(args.port)
        dag_ids = project_dag_ids(settings)
        wait_registered(args.port, dag_ids, args.health_timeout, deployment)
        if parse.wait() != 0:
            print(f"note: dbt's parse for the DAGs was not prepared (see {parse_log}); "
                  "their first build parses the whole project", flush=True)
        primed = subprocess.run(
            [sys.executable, "-c", "import json, sys; from winback.deployment import create_pools, prime_schedules; "
             "create_pools(); print(json.dumps(prime_schedules(sys.argv[1:])))", *dag_ids],
            env=deployment.env, capture_output=True, text=True)
        if primed.returncode != 0:
            raise RuntimeError(f"unpausing the DAGs failed:\n{primed.stderr[-3000:]}")
        print(f"DAGs unpaused: {', '.join(dag_ids)}; the next scheduled runs are in the future "
              f"(past slots recorded as not run: {primed.stdout.strip().splitlines()[-1]})")
        print(f"healthy: {', '.join(k for k, v in health.items() if (v or {}).get('status') == 'healthy')}")
        print(f"UI and REST API: http://127.0.0.1:{args.port}  (no login: every local visitor is admin)")
        print(f"plain airflow commands: AIRFLOW_HOME={home} {airflow_bin()} dags list")
        print("Ctrl-C stops everything this started.", flush=True)
        while not deployment.exited():
            time.sleep(1)
        print(f"error: a component exited: {deployment.exited()} (logs in {deployment.log_dir}); stopping",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if deployment is not None:
            deployment.stop()
        from winback import warehouse

        warehouse.stop_embedded(settings)
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
