"""What the harness modules share: throw-away databases, child processes, repetition, medians."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

# The generated as-of date D: mid-quarter, so the nights measured (D+1, D+2, ...) are ordinary
# nights. In the two weeks after a quarter closes, late corrections into the closed quarter
# make the per-quarter models rebuild that quarter too (see BENCHMARKS.md).
AS_OF = dt.date(2025, 5, 14)
ROOT = Path(__file__).resolve().parents[1]
# The sizes of the generated sales history, in lines (README: Benchmarks).
SIZES = {"S": 100_000, "M": 1_000_000, "L": 10_000_000}
# The entities whose extract bench.run times, in the nightly order (the DAGs also extract
# the campaigns file: winback.tasks.extract.EXTRACT_ORDER; bench.run does not time it).
EXTRACT_ORDER = ("managers", "clients", "sales_lines", "contacts")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- databases
def with_db(admin_dsn: str, dbname: str) -> str:
    """The admin URI with another database name."""
    return urllib.parse.urlsplit(admin_dsn)._replace(path=f"/{dbname}").geturl()


class Databases:
    """Creates throw-away databases on the admin server and drops every one of them."""

    def __init__(self, admin_dsn: str, prefix: str):
        self.admin = admin_dsn
        self.prefix = prefix
        self.created: list[str] = []

    def create(self, kind: str, bootstrap: bool = False) -> str:
        name = f"{self.prefix}_{kind}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        self.created.append(name)
        dsn = with_db(self.admin, name)
        if bootstrap:
            from winback import warehouse

            warehouse.bootstrap(dsn)
        return dsn

    def drop(self, dsn: str) -> None:
        name = urllib.parse.urlsplit(dsn).path.lstrip("/")
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            try:
                self.drop(with_db(self.admin, name))
            except psycopg.Error as exc:  # report, keep dropping the others
                log(f"could not drop database {name}: {exc}")


# ----------------------------------------------------------------------------- child processes
@dataclass
class ChildResult:
    result: dict[str, Any]
    max_rss_mb: float
    wall: float


class ChildFailed(RuntimeError):
    pass


def run_worker(mode: str, args: list[str], *, env: dict[str, str], workdir: Path, tag: str) -> ChildResult:
    """Run ``python -m bench.worker MODE`` and return its JSON result and its own peak RSS.

    The peak is the child's VmHWM, reported by the child itself. The ``ru_maxrss`` that
    ``os.wait4`` returns for exactly this child is kept for comparison (``ru_maxrss_mb``): on
    Linux it includes the parent's high-water mark at spawn time, so it is never below the
    harness' own size.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    result_file = workdir / f"{tag}.json"
    log_file = workdir / f"{tag}.log"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.worker", mode, "--result", str(result_file), *args]
    started = time.perf_counter()
    with open(log_file, "wb") as out:
        child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0 or not result_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise ChildFailed(f"bench.worker {mode} failed (exit {child.returncode}), log {log_file}:\n{tail}")
    result = json.loads(result_file.read_text())
    result["ru_maxrss_mb"] = usage.ru_maxrss / 1024
    return ChildResult(result, result.get("vm_hwm_mb") or usage.ru_maxrss / 1024, wall)


# ----------------------------------------------------------------------------- repetition
def repeat(action: Callable[[int], Any], repeats: int, budget_s: float, label: str) -> list[Any]:
    """Run ``action(i)`` up to ``repeats`` times; stop early once another run would pass the
    time budget (always at least once). Returns the results of the runs made."""
    results = []
    spent = 0.0
    for index in range(repeats):
        started = time.perf_counter()
        results.append(action(index))
        spent += time.perf_counter() - started
        if index + 1 < repeats and spent + spent / len(results) > budget_s:
            log(f"{label}: stopping after {len(results)} of {repeats} runs (time budget {budget_s:.0f}s)")
            break
    return results


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def settle(*dsns: str) -> float:
    """``VACUUM (ANALYZE)`` each database before a timed dbt run; returns the seconds taken.

    A bulk write (the initial extract, a full refresh) leaves autovacuum work behind, which
    PostgreSQL starts within a minute: at L it vacuumed the 10-million-row tables a full
    refresh had just written while the first night ran, and that night took 4-6 s more than
    the second. In a deployment a day lies between two runs; here the maintenance is done
    before the clock starts, and its time is reported beside the measure."""
    import psycopg

    started = time.perf_counter()
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("vacuum (analyze)")
    return time.perf_counter() - started


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    outcome = action()
    return time.perf_counter() - started, outcome
