"""Throw-away databases on the test server: created (empty or as a copy of a template),
named uniquely, dropped with whatever still connects to them."""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql


def with_db(admin_dsn: str, dbname: str) -> str:
    """The admin URI with another database name (URIs, so settings and dbt accept them)."""
    return urllib.parse.urlsplit(admin_dsn)._replace(path=f"/{dbname}").geturl()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` (a copy of ``template`` if given); returns its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        conn.execute(statement)
    return with_db(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@contextlib.contextmanager
def scratch_database(admin_dsn: str, prefix: str, template: str | None = None) -> Iterator[tuple[str, str]]:
    """A new database named ``<prefix>_<random>`` for the ``with`` block: (name, DSN)."""
    name = unique_name(prefix)
    dsn = create_database(admin_dsn, name, template)
    try:
        yield name, dsn
    finally:
        drop_database(admin_dsn, name)
