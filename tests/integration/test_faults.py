"""Faults a real deployment meets: a load killed mid-COPY, two runs at once, a dead server owner.

Each fault is made for real: a child process is killed with SIGKILL while it works.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from winback import warehouse
from winback.config import get_settings
from winback.extract import extract_entity

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 1, 10)
HEADER = "line_id,order_id,client_id,order_date,quantity,net_amount,status\n"


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.1)


def start_child(code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env})


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "staged"])
def test_a_load_killed_mid_copy_leaves_nothing_and_its_audit_row_is_closed(warehouse_dsn, tmp_path, bulk):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "sales_lines.csv").write_text(HEADER + "".join(
        f"L{n},O{n},C{n % 50},2025-01-10,1,10.00,completed\n" for n in range(20_000)))
    copying = tmp_path / "copying"
    child = start_child(f"""
        import datetime as dt, time
        from pathlib import Path
        from winback.config import get_settings
        from winback.extract import bulk_load, extract_entity, staged

        def stall(*args, **kwargs):  # the second chunk never arrives: the COPY is open
            Path({str(copying)!r}).touch()
            time.sleep(600)

        module, target = (bulk_load, "bulk_write") if {bulk!r} else (staged, "copy_chunk")
        real = getattr(module, target)
        calls = []
        def first_then_stall(*args, **kwargs):
            calls.append(1)
            if len(calls) > 1:
                stall()
            return real(*args, **kwargs)

        setattr(module, target, first_then_stall)
        settings = get_settings(warehouse_url={warehouse_dsn!r}, landing_url={str(landing)!r}, sales_source="files",
                                timezone="UTC", chunk_bytes=64 * 1024, bulk_load={bulk!r})
        extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    """)
    try:
        wait_for(copying)
        with psycopg.connect(warehouse_dsn) as conn:
            assert conn.execute("select status from audit.load_runs").fetchall() == [("running",)]
            # While the load lives, a load of another entity leaves its row alone.
            settings = get_settings(warehouse_url=warehouse_dsn, landing_url=str(landing), sales_source="files",
                                    timezone="UTC")
            extract_entity("contacts", as_of=AS_OF, settings=settings)
            assert conn.execute("select status from audit.load_runs where entity = 'sales_lines'").fetchone()[0] \
                == "running"
    finally:
        kill(child)

    result = extract_entity("sales_lines", as_of=AS_OF, settings=settings)

    with psycopg.connect(warehouse_dsn) as conn:
        runs = conn.execute("select entity, status, message from audit.load_runs order by load_id").fetchall()
        assert [(e, s) for e, s, _ in runs] == [("sales_lines", "failed"), ("contacts", "success"),
                                                ("sales_lines", "success")]
        assert "abandoned" in runs[0][2]
        assert conn.execute("select count(*), count(distinct _load_id) from raw.sales_lines").fetchone() == (20_000, 1)
    assert result.rows_inserted == 20_000


def test_one_pipeline_run_at_a_time_and_the_lock_goes_with_a_killed_holder(warehouse_dsn, tmp_path):
    holding = tmp_path / "holding"
    child = start_child(f"""
        import time
        from pathlib import Path
        from winback import warehouse
        with warehouse.pipeline_lock({warehouse_dsn!r}, "run"):
            Path({str(holding)!r}).touch()
            time.sleep(600)
    """)
    try:
        wait_for(holding)
        with pytest.raises(warehouse.PipelineBusy, match=r"another run holds the warehouse's pipeline lock since "
                                                         r"\d{4}-\d\d-\d\d .*winback run \(pid \d+\)"):
            with warehouse.pipeline_lock(warehouse_dsn, "run"):
                pass
    finally:
        kill(child)
    with warehouse.pipeline_lock(warehouse_dsn, "run"):  # free again once its holder is gone
        pass


def test_an_embedded_server_whose_owner_was_killed_is_adopted_and_stops_with_its_last_user(tmp_path):
    home = tmp_path / "home"
    attached = tmp_path / "attached"
    child = start_child(f"""
        import time
        from pathlib import Path
        from winback import warehouse
        from winback.config import get_settings
        warehouse.embedded_server(get_settings(home={str(home)!r}))
        Path({str(attached)!r}).touch()
        time.sleep(600)
    """, WINBACK_WAREHOUSE_URL="", AIRFLOW_CONN_WAREHOUSE="")
    try:
        wait_for(attached, 120)
    finally:
        kill(child)
    settings = get_settings(home=home, warehouse_url=None)
    pgdata = settings.pgdata_dir
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    assert psutil.pid_exists(postmaster)  # orphaned: its only user died without stopping it
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == [child.pid]

    server = warehouse.embedded_server(settings)  # adopts it
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == [os.getpid()]
    with psycopg.connect(server.get_uri("postgres")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    warehouse.stop_embedded(settings)
    deadline = time.monotonic() + 30
    while psutil.pid_exists(postmaster) and psutil.Process(postmaster).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the adopted server did not stop with its last user"
        time.sleep(0.2)
