"""The pipeline under a real scheduler: the local deployment (``make airflow``), not ``dag.test()``.

Per executor (LocalExecutor; CeleryExecutor on the Redis at 127.0.0.1:6379, skipped when none
answers) the deployment is started as a subprocess in a throw-away WINBACK_HOME (its own
embedded PostgreSQL holding the warehouse, the demo sales system and the Airflow metadata),
on a free port. The test waits for ``/api/v2/monitor/health``, generates a small demo seller,
triggers the nightly extract for a fixed as-of date through the REST API, waits for the raw
Assets to trigger ``winback_marts``, triggers the quarterly DAG and checks the publication in
``reporting.kpi_publications``. No task log may show a telemetry attempt. Then the deployment
gets SIGINT (Ctrl-C) and every process it started, and its embedded server, must be gone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest

from winback import generator
from winback.config import get_settings
from winback.deployment import LocalApi, free_port

pytestmark = pytest.mark.e2e

AS_OF = dt.date(2025, 6, 30)
QUARTER = dt.date(2025, 4, 1)
# The whole scenario (start, extract, marts, quarterly) must finish within this.
DEADLINE_SECONDS = 15 * 60
# What a telemetry attempt leaves in a log: Cosmos' messages when it emits, the hosts.
TELEMETRY_ATTEMPT = re.compile(r"Telemetry is enabled|Unable to emit usage metrics|scarf\.sh|apache\.org/.*ping"
                               r"|posthog|usage_stats", re.IGNORECASE)
ROOT = Path(__file__).resolve().parents[2]


def _redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(what: str, check, deadline: float, deployment: subprocess.Popen, pause: float = 5.0):
    while time.monotonic() < deadline:
        if deployment.poll() is not None:
            pytest.fail(f"the deployment exited ({deployment.returncode}) while waiting for {what}")
        outcome = check()
        if outcome:
            return outcome
        time.sleep(pause)
    pytest.fail(f"timed out waiting for {what}")


def _finished(api: LocalApi, dag_id: str, run_id: str | None = None):
    """The DAG's (given, else latest) run once it ended; fails the test if it failed."""
    runs = api.runs(dag_id)
    run = next((r for r in runs if run_id is None or r["dag_run_id"] == run_id), None)
    if run is None or run["state"] not in ("success", "failed"):
        return None
    if run["state"] == "failed":
        failed = [t["task_id"] for t in api.task_instances(dag_id, run["dag_run_id"])
                  if t["state"] in ("failed", "upstream_failed")]
        pytest.fail(f"{dag_id} run {run['dag_run_id']} failed: {failed}")
    return run


@pytest.mark.parametrize("executor", [
    "local",
    pytest.param("celery", marks=pytest.mark.skipif(
        not _redis_answers(), reason="no Redis answers on 127.0.0.1:6379 (the Celery broker of the deployment)")),
])
def test_nightly_marts_and_quarterly_under_a_real_scheduler(executor, tmp_path):
    started = time.monotonic()
    deadline = started + DEADLINE_SECONDS
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRFLOW", "WINBACK_", "DBT_", "SCARF", "DO_NOT_TRACK", "GX_"))}
    env.update({"WINBACK_HOME": str(home), "WINBACK_PROJECT_DIR": str(ROOT), "WINBACK_TIMEZONE": "UTC",
                "WINBACK_AS_OF_DATE": AS_OF.isoformat(), "WINBACK_RETRY_DELAY_SECONDS": "1",
                "PYTHONUNBUFFERED": "1",
                # Nobody answers a human-in-the-loop approval here: publications with gate
                # warnings publish without it (the approval has its own tests).
                "WINBACK_PUBLISH_APPROVAL": "off"})
    if executor == "celery":  # a queue of its own on the machine's Redis, so a parallel run cannot take its tasks
        env["WINBACK_CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/7"
        # ... and a queue of its own: a worker left over from another run on that Redis
        # would otherwise take this run's tasks (seen: a task stuck in queued for 10 minutes).
        env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = f"winback-test-{uuid.uuid4().hex[:8]}"
    out = open(tmp_path / "deployment.log", "wb")  # noqa: SIM115
    deployment = subprocess.Popen([sys.executable, "-m", "winback.deployment", "--executor", executor,
                                   "--port", str(port), "--health-timeout", "300"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    api = LocalApi(port)
    airflow_home = home / "airflow-local"
    try:
        health = _wait("the deployment to report healthy", lambda: _health(port), deadline, deployment)
        assert health["scheduler"]["status"] == "healthy" and health["dag_processor"]["status"] == "healthy"
        healthy_after = time.monotonic() - started

        dags = _wait("the four DAGs to be parsed", lambda: _dag_ids(api), deadline, deployment)
        assert {"winback_nightly_extract", "winback_marts", "winback_quarterly_kpis", "winback_waive"} <= dags
        assert api.call("/importErrors")["total_entries"] == 0
        assert "executor = " + {"local": "LocalExecutor", "celery": "CeleryExecutor"}[executor] in (
            airflow_home / "airflow.cfg").read_text()

        # Unpaused, and the next scheduled runs lie ahead: no catch-up run for a past slot.
        now = dt.datetime.now(dt.UTC)
        for dag_id in ("winback_nightly_extract", "winback_quarterly_kpis"):
            dag = _wait(f"{dag_id} to be unpaused", lambda d=dag_id: _unpaused(api, d), deadline, deployment, 2)
            assert dt.datetime.fromisoformat(dag["next_dagrun_run_after"]) > now, dag
            assert all(not api.call(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["total_entries"]
                       for run in api.runs(dag_id)), f"{dag_id} ran a past slot at start-up"

        connections = json.loads((airflow_home / "connections.json").read_text())
        source = connections["sales_source"]
        generator.generate_source(generator.GeneratorConfig(seed=5, target_lines=20_000, as_of=AS_OF),
                                  source, str(home / "landing"))

        from winback.orchestration import logical_date_for

        logical = logical_date_for(AS_OF, get_settings(timezone="UTC"))
        nightly = api.call("/dags/winback_nightly_extract/dagRuns",
                           {"logical_date": logical.isoformat(), "conf": {}})
        _wait("the nightly extract", lambda: _finished(api, "winback_nightly_extract", nightly["dag_run_id"]),
              deadline, deployment)
        marts = _wait("the Assets to trigger winback_marts", lambda: _finished(api, "winback_marts"),
                      deadline, deployment)
        assert marts["run_type"] == "asset_triggered"
        assert marts["state"] == "success", marts
        # Its model tasks (a model and its data tests each) read the build's results in the
        # triggerer and ended there (winback.dbt_watch): no worker ran a first attempt (no
        # worker log), and its trigger fired the success. Airflow writes a trigger's lines to
        # the task's log (attempt=1.log.trigger.<id>.log), or to the triggerer's own log when
        # the trigger ended before the triggerer handled its lines (seen on a slow machine).
        sensors = [t for t in api.task_instances("winback_marts", marts["dag_run_id"])
                   if t["task_id"].startswith("dbt.") and t["task_id"].endswith("_run")]
        assert len(sensors) >= 40 and all(t["state"] == "success" for t in sensors), sensors
        run_logs = airflow_home / "logs" / "dag_id=winback_marts" / f"run_id={marts['dag_run_id']}"
        triggerer_log = (airflow_home / "components" / "triggerer.log").read_text(errors="replace")
        for task in sensors:
            logs = {p.name for p in (run_logs / f"task_id={task['task_id']}").glob("attempt=1.log*")}
            assert "attempt=1.log" not in logs, (task["task_id"], logs)
            fired = re.escape(f"name='winback_marts/{marts['dag_run_id']}/{task['task_id']}/-1/1 ") + \
                r"\(ID \d+\)' result=\"TriggerEvent<'success'>\""
            assert any(".trigger." in name for name in logs) or re.search(fired, triggerer_log), (task["task_id"], logs)

        quarterly = api.call("/dags/winback_quarterly_kpis/dagRuns", {
            "logical_date": None, "conf": {"quarter": QUARTER.isoformat(), "reason": "real scheduler test"}})
        _wait("the quarterly publication", lambda: _finished(api, "winback_quarterly_kpis", quarterly["dag_run_id"]),
              deadline, deployment)
        with psycopg.connect(connections["warehouse"]) as conn:
            published = conn.execute("select count(*) from reporting.kpi_publications where quarter_start = %s",
                                     (QUARTER,)).fetchone()[0]
        assert published >= 1

        task_logs = [p for p in (airflow_home / "logs").rglob("*.log") if "dag_id=" in str(p)]
        assert task_logs, "no task logs written"
        attempts = [str(p) for p in task_logs if TELEMETRY_ATTEMPT.search(p.read_text(errors="replace"))]
        assert not attempts, f"telemetry attempts in {attempts}"
        print(f"{executor}: healthy after {healthy_after:.0f}s, whole scenario {time.monotonic() - started:.0f}s, "
              f"{len(task_logs)} task logs")
    finally:
        _stop_and_check(deployment, home)
        out.close()


def _health(port: int):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as answer:
            health = json.load(answer)
    except OSError:
        return None
    parts = ("metadatabase", "scheduler", "dag_processor")
    return health if all((health.get(p) or {}).get("status") == "healthy" for p in parts) else None


def _unpaused(api: LocalApi, dag_id: str):
    dag = api.call(f"/dags/{dag_id}")
    return dag if not dag["is_paused"] else None


def _dag_ids(api: LocalApi):
    ids = {d["dag_id"] for d in api.call("/dags")["dags"]}
    return ids if len(ids) >= 4 else None


def _stop_and_check(deployment: subprocess.Popen, home: Path) -> None:
    """Ctrl-C the deployment; every process it started and its embedded server must be gone."""
    if deployment.poll() is not None:
        return
    descendants = psutil.Process(deployment.pid).children(recursive=True)
    postmaster = home / "pgdata" / "postmaster.pid"
    server_pid = int(postmaster.read_text().split()[0]) if postmaster.exists() else None
    deployment.send_signal(signal.SIGINT)
    try:
        deployment.wait(90)
    except subprocess.TimeoutExpired:
        deployment.kill()
        for process in descendants:  # leave no component behind to take a later run's work
            with contextlib.suppress(psutil.Error):
                process.kill()
        pytest.fail("the deployment did not stop within 90 s of SIGINT")
    time.sleep(1)
    alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"still running after Ctrl-C: {[(p.pid, p.cmdline()[:3]) for p in alive]}"
    assert descendants, "the deployment had started no processes"
    if server_pid is not None:
        assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE, \
            "the embedded PostgreSQL is still running"


def test_the_embedded_server_on_tcp_takes_only_project_roles_with_scram(tmp_path):
    """``make airflow PG_PORT=…``: the embedded server on 127.0.0.1 for BI tools. A wrong
    password is refused, the superuser cannot log in over TCP, and the BI login reads the
    warehouse but cannot reach the source database."""
    from winback import warehouse

    settings = get_settings(home=tmp_path / "home", warehouse_url=None, source_url=None)
    (tmp_path / "home").mkdir()
    port = free_port()
    try:
        bi_uri = warehouse.enable_tcp(settings, port)["bi_uri"]
        password = json.loads((settings.state_dir / "pg-passwords.json").read_text())["winback_bi"]
        assert oct((settings.state_dir / "pg-passwords.json").stat().st_mode & 0o777) == "0o600"
        with psycopg.connect(bi_uri) as conn:  # the right password: reads what BI may read
            assert conn.execute("select current_user").fetchone()[0] == "winback_bi"
            assert conn.execute("select pg_has_role('winback_bi_reader', 'member')").fetchone()[0]
        tcp = f"host=127.0.0.1 port={port} connect_timeout=5"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"{tcp} dbname={settings.warehouse_db} user=winback_bi password=wrong-{password}")
        with pytest.raises(psycopg.OperationalError, match="pg_hba.conf|rejects"):
            psycopg.connect(f"{tcp} dbname={settings.source_db} user=winback_bi password={password}")
        with pytest.raises(psycopg.OperationalError, match="pg_hba.conf|rejects"):
            psycopg.connect(f"{tcp} dbname={settings.warehouse_db} user=postgres password=anything")
        # The stored verifier is SCRAM (read over the owner's socket).
        with psycopg.connect(warehouse.embedded_uri(settings, "postgres")) as conn:
            verifier = conn.execute("select rolpassword from pg_authid where rolname = 'winback_bi'").fetchone()[0]
            listen = conn.execute("show listen_addresses").fetchone()[0]
        assert verifier.startswith("SCRAM-SHA-256$")
        assert listen == "127.0.0.1"
        # Only the project's roles can log in at all.
        with psycopg.connect(warehouse.embedded_uri(settings, "postgres")) as conn:
            logins = {row[0] for row in conn.execute("select rolname from pg_roles where rolcanlogin")}
        assert logins <= {"postgres", *warehouse.TCP_LOGINS}
    finally:
        warehouse.stop_embedded(settings)
