"""Running the winback dbt project: connection environment, subprocess, readable failures.

The dbt profile (``dbt_project/profiles.yml``) reads its connection from ``DBT_*``
environment variables; :func:`dbt_env` derives them from a libpq URI, so the warehouse is
named once (``WINBACK_WAREHOUSE_URL`` / ``AIRFLOW_CONN_WAREHOUSE`` or the embedded server).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from winback.config import Settings, get_settings

log = logging.getLogger(__name__)

# dbt parse reads the profile but never connects: any values do.
_PARSE_ENV = {"DBT_HOST": "localhost", "DBT_PORT": "5432", "DBT_USER": "winback", "DBT_PASSWORD": "",
              "DBT_DBNAME": "winback"}


# The run's as-of date D for dbt (macros/as_of_date.sql); also the pipeline's fixed-D setting.
AS_OF_ENV = "WINBACK_AS_OF_DATE"
# The pipeline's builds on the warehouse leave the unit tests out, as dbt advises for
# production: their inputs are fixed rows, so a build re-proves nothing with them. They run
# in the test suite (tests/integration/test_dbt_project.py) and in CI. Used by the DAGs'
# dbt tasks and by the bench's baselines of them.
PRODUCTION_BUILD_FLAGS = ("--exclude-resource-type", "unit_test")


class DbtRunError(RuntimeError):
    """A dbt command failed; the message names the failing nodes (or dbt's last output lines)."""


def project_dir() -> Path:
    return get_settings().dbt_project_dir


def dbt_env(dsn: str) -> dict[str, str]:
    """The ``DBT_*`` variables of the profile (and ``DBT_PROFILES_DIR``) for a libpq URI.

    Accepts ``postgresql://user:pw@host:5432/db`` and the Unix-socket forms
    ``postgresql://user:@/db?host=/socket/dir`` and ``postgresql://user@%2Fsocket%2Fdir/db``.
    """
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("expected a PostgreSQL URI such as postgresql://user:password@host:5432/dbname")
    query = {key: values[-1] for key, values in urllib.parse.parse_qs(parts.query).items()}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, port = hostport, ""
    if hostport.startswith("["):  # IPv6 literal
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":")
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    env = {
        "DBT_HOST": query.get("host") or urllib.parse.unquote(host) or "localhost",
        "DBT_PORT": query.get("port") or port or "5432",
        "DBT_USER": query.get("user") or urllib.parse.unquote(user) or os.environ.get("PGUSER", "postgres"),
        "DBT_PASSWORD": query.get("password") or urllib.parse.unquote(password),
        "DBT_DBNAME": query.get("dbname") or urllib.parse.unquote(parts.path.lstrip("/")) or "postgres",
        "DBT_PROFILES_DIR": str(project_dir()),
    }
    if "sslmode" in query:
        env["DBT_SSLMODE"] = query["sslmode"]
    return env


def _dbt_command() -> list[str]:
    """The ``dbt`` command, with the pipeline's order of ready nodes (:mod:`winback.dbt_schedule`)."""
    return [sys.executable, "-m", "winback.dbt_schedule"]


def _failures(run_results: Path) -> list[str]:
    """``node: message`` for every failed node of a run (its run_results.json)."""
    try:
        results = json.loads(run_results.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return []
    return [f"{r.get('unique_id')}: {(r.get('message') or r.get('status') or '').strip()}"
            for r in results if r.get("status") in ("error", "fail", "runtime error")]


def run_dbt_env(args: list[str], env: dict[str, str], target: Path | None = None) -> None:
    """Run ``dbt <args>`` in the project with ``env`` over this process's environment (its
    profile given by ``env`` or by ``args``); raise :class:`DbtRunError` on failure, naming
    the failed nodes from ``target``'s run_results.json."""
    cwd = project_dir()
    results = (target or cwd / "target") / "run_results.json"
    before = results.stat().st_mtime if results.exists() else None
    done = subprocess.run([*_dbt_command(), *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, check=False)
    log.info("dbt %s: exit %s\n%s", args[0] if args else "", done.returncode, done.stdout[-4000:])
    if done.returncode == 0:
        return
    fresh = results.exists() and results.stat().st_mtime != before
    failed = _failures(results) if fresh else []
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
    detail = "failed nodes:\n  " + "\n  ".join(failed) if failed else f"last output:\n{tail}"
    raise DbtRunError(f"dbt {' '.join(args)} failed (exit {done.returncode}); {detail}")


def run_dbt(args: list[str], dsn: str, vars: dict[str, Any] | None = None,
            as_of: dt.date | str | None = None) -> None:
    """Run ``dbt <args>`` against the warehouse ``dsn``; raise :class:`DbtRunError` on failure.

    ``as_of`` (a date or YYYY-MM-DD) is the run's D, passed as ``WINBACK_AS_OF_DATE`` rather
    than as a var: a var that changes every night makes dbt re-parse the whole project
    (see ``macros/as_of_date.sql``). ``vars`` are for the metric contract's overrides.
    """
    target = None
    if vars:
        # Other numbers than the pipeline's: keep this run's artifacts (its manifest renders
        # the vars, e.g. into the KPI labels) out of the manifest the DAGs and the report read.
        target = project_dir() / "target" / "with-vars"
        args = [*args, "--vars", json.dumps(vars, default=str), "--target-path", str(target)]
    env = dbt_env(dsn)
    if as_of is not None:
        env[AS_OF_ENV] = str(as_of)
    run_dbt_env(args, env, target)


def manifest_path(settings: Settings | None = None) -> Path:
    """``dbt_project/target/manifest.json``: what Cosmos renders the DAGs from and what the
    KPI definition and the project's rules are read from."""
    return (settings or get_settings()).dbt_project_dir / "target" / "manifest.json"


def ensure_manifest(settings: Settings | None = None) -> Path:
    """Build the manifest when missing or older than the project; return its path.

    The Cosmos DAGs render from this manifest, so parsing them runs no dbt.
    """
    settings = settings or get_settings()
    manifest = manifest_path(settings)
    sources = [p for pattern in ("models/**/*", "macros/**/*", "tests/**/*", "*.yml")
               for p in settings.dbt_project_dir.glob(pattern) if p.is_file()]
    newest = max((p.stat().st_mtime for p in sources), default=0)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        build_manifest()
    return manifest


def build_manifest() -> Path:
    """``dbt parse``: write ``dbt_project/target/manifest.json`` (for Cosmos' LoadMode.DBT_MANIFEST),
    with the user's metric overrides as vars, as the DAGs run dbt (the KPI labels name them)."""
    overrides = get_settings().metric_overrides
    args = ["parse", *(["--vars", json.dumps(dict(overrides), default=str)] if overrides else [])]
    run_dbt_env(args, {**_PARSE_ENV, "DBT_PROFILES_DIR": str(project_dir())})
    return manifest_path()
