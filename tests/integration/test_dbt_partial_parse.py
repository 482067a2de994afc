"""The DAGs' producers start from a primed partial parse, not a parse of the whole project.

``winback run`` and ``winback demo`` parse the project in the background while the extract
runs (``cosmos_config.prime_partial_parse``), as the producers run dbt: their Cosmos profile
from the Airflow connection ``warehouse``. dbt then loads the project from that state; the
project's own ``target/`` was parsed without a connection, and dbt refuses it for a run
on the real one (the control case below).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from winback import warehouse
from winback.config import get_settings


@pytest.fixture
def producer_home(monkeypatch, tmp_path, warehouse_dsn, airflow_home):
    """Settings whose state lives in ``tmp_path``, the connection ``warehouse`` on a scratch
    database, and a Cosmos cache of their own (Cosmos reads its cache folder at import)."""
    import cosmos.settings

    monkeypatch.setenv("WINBACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.airflow_conn_uri(warehouse_dsn))
    monkeypatch.setattr(cosmos.settings, "cache_dir", tmp_path / "cosmos-cache")
    return get_settings()


def _parsed_files(settings, seed, target) -> tuple[int, int]:
    """(files dbt parsed, files in the project) when the producers' dbt starts from ``seed``:
    its flags (``--no-static-parser`` as Cosmos adds it) and a target folder holding ``seed``."""
    from winback import cosmos_config

    target.mkdir(parents=True)
    shutil.copyfile(seed, target / "partial_parse.msgpack")
    with cosmos_config.producer_profile(settings) as (flags, env):
        done = subprocess.run([sys.executable, "-m", "dbt.cli.main", "parse", *flags, "--no-static-parser",
                               "--target-path", str(target), "--log-path", str(target)],
                              cwd=settings.dbt_project_dir, env={**os.environ, **env},
                              capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    perf = json.loads((target / "perf_info.json").read_text())
    return perf["parsed_path_count"], perf["path_count"]


def test_the_producers_reuse_the_primed_parse(producer_home, tmp_path):
    from winback import cosmos_config, dbt

    target = cosmos_config.prime_partial_parse(producer_home)
    for dag_id in cosmos_config.PRODUCER_DAGS:
        cached = cosmos_config.partial_parse_cache(dag_id) / "target" / "partial_parse.msgpack"
        assert cached.read_bytes() == (target / "partial_parse.msgpack").read_bytes(), dag_id

    primed = cosmos_config.partial_parse_cache("winback_quarterly_kpis") / "target" / "partial_parse.msgpack"
    parsed, files = _parsed_files(producer_home, primed, tmp_path / "from-primed")
    assert files > 100 and parsed == 0

    # Control: the project's own parse (no connection) makes dbt parse every file again.
    project_parse = dbt.ensure_manifest(producer_home).with_name("partial_parse.msgpack")
    parsed, files = _parsed_files(producer_home, project_parse, tmp_path / "from-project")
    assert parsed == files
