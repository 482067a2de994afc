"""Shared fixtures: real PostgreSQL databases, created per test and dropped afterwards.

The server is the project's embedded PostgreSQL (started on demand) unless
``WINBACK_TEST_ADMIN_URL`` names another server (a superuser URI, e.g. the machine's
``postgresql://postgres@127.0.0.1:5432/postgres``). Tests never touch the warehouse the
user configured: each gets its own throw-away database.
"""

from __future__ import annotations

import os

import pytest
from scratch_databases import create_database, drop_database, unique_name

from winback import warehouse
from winback.config import get_settings
from winback.deployment import airflow_env

# Tests get their own Airflow home (metadata DB) so they never touch the demo's, set
# before anything imports airflow (Airflow reads its configuration at import).
os.environ.setdefault("WINBACK_RETRY_DELAY_SECONDS", "1")  # DAG runs in tests fail fast
_TEST_SETTINGS = get_settings()
os.environ.update(airflow_env(_TEST_SETTINGS))
os.environ["AIRFLOW_HOME"] = str(_TEST_SETTINGS.state_dir / "test-airflow")


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    explicit = os.environ.get("WINBACK_TEST_ADMIN_URL")
    if explicit:
        return explicit
    server = warehouse.embedded_server(get_settings(warehouse_url=None, source_url=None))
    return server.get_uri("postgres")


@pytest.fixture
def make_database(pg_admin_dsn):
    """Factory: ``make_database()`` -> DSN of a new empty database, dropped at teardown."""
    created: list[str] = []

    def _make(prefix: str = "wb_test") -> str:
        name = unique_name(prefix)
        dsn = create_database(pg_admin_dsn, name)
        created.append(name)
        return dsn

    yield _make
    for name in created:
        drop_database(pg_admin_dsn, name)


@pytest.fixture
def warehouse_dsn(make_database) -> str:
    """A bootstrapped, empty warehouse database."""
    dsn = make_database("wb_wh")
    warehouse.bootstrap(dsn)
    return dsn


@pytest.fixture
def source_dsn(make_database) -> str:
    """An empty database standing in for the sales system."""
    return make_database("wb_src")


@pytest.fixture(scope="session")
def airflow_home():
    """The tests' Airflow metadata DB, migrated once per machine."""
    from winback.orchestration import prepare_airflow

    prepare_airflow(_TEST_SETTINGS)
    return os.environ["AIRFLOW_HOME"]
