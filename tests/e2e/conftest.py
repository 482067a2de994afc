"""What the end-to-end tests share: the CLI pointed at throw-away databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from winback import warehouse


@pytest.fixture
def cli_env(monkeypatch, warehouse_dsn, source_dsn, tmp_path, airflow_home):
    """``cli_env(as_of, landing)`` points the CLI at a throw-away warehouse and returns its
    DSN. ``winback run`` and ``export_connections`` set variables in ``os.environ``: they are
    set here first, so monkeypatch restores them afterwards."""

    def point(as_of: dt.date, landing: Path) -> str:
        monkeypatch.setenv("WINBACK_WAREHOUSE_URL", warehouse_dsn)
        monkeypatch.setenv("WINBACK_SOURCE_URL", source_dsn)
        monkeypatch.setenv("WINBACK_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("WINBACK_TIMEZONE", "UTC")
        monkeypatch.setenv("WINBACK_SALES_SOURCE", "files")
        monkeypatch.setenv("WINBACK_LANDING_URL", str(landing))
        monkeypatch.setenv("WINBACK_AS_OF_DATE", as_of.isoformat())
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.airflow_conn_uri(warehouse_dsn))
        monkeypatch.setenv("AIRFLOW_CONN_SALES_SOURCE", warehouse.airflow_conn_uri(source_dsn))
        return warehouse_dsn

    return point
