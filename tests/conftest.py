"""Shared fixtures: real PostgreSQL databases, created per test and dropped afterwards.

The server is the project's embedded PostgreSQL (started on demand) unless
``WINBACK_TEST_ADMIN_URL`` names another server (a superuser URI, e.g. the machine's
``postgresql://postgres@127.0.0.1:5432/postgres``). Tests never touch the warehouse the
user configured: each gets its own throw-away database.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid

import psycopg
import pytest
from psycopg import sql

from winback import warehouse
from winback.config import get_settings


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    explicit = os.environ.get("WINBACK_TEST_ADMIN_URL")
    if explicit:
        return explicit
    server = warehouse.embedded_server(get_settings(warehouse_url=None, source_url=None))
    return server.get_uri("postgres")


def _with_db(admin_dsn: str, dbname: str) -> str:
    """The admin URI with another database name (URIs, so settings and dbt accept them)."""
    return urllib.parse.urlsplit(admin_dsn)._replace(path=f"/{dbname}").geturl()


@pytest.fixture
def make_database(pg_admin_dsn):
    """Factory: ``make_database()`` -> DSN of a new empty database, dropped at teardown."""
    created: list[str] = []

    def _make(prefix: str = "wb_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        created.append(name)
        return _with_db(pg_admin_dsn, name)

    yield _make
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


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
