"""Write-audit-publish of the quarterly KPIs: kpi_staging -> (quality gate) -> reporting.

dbt *writes* the quarter's KPI rows to ``kpi_staging`` (unpublished), the quality gate
(``winback.quality.run_gate``, suite ``kpi``) *audits* them and records a fingerprint of
exactly the rows it saw, and :func:`publish_quarter` *publishes* them as a new version:

- **atomic**: the quarter's company row, its breakdown rows and the publication record are
  written in one transaction, so a reader sees all of a version or none of it;
- **serialised**: a transaction-level advisory lock makes concurrent publishes queue, so
  version numbers never collide and the identical-data check sees the latest version;
- **audited**: refused unless the validation id is a *successful* ``kpi`` gate run of that
  quarter, and unless the rows copied have the fingerprint the gate recorded (staged rows
  rebuilt after the gate are never published unvalidated);
- **versioned, never overwritten**: every publish appends version n+1 with its reason;
  ``reporting.kpi_quarterly`` / ``reporting.kpi_quarterly_breakdown`` show the latest
  version, the ``*_versions`` tables keep every version. Publishing figures identical to
  the latest version is a no-op that returns that version.

Errors are :class:`PublishError` with a one-line message.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg
from psycopg import sql

from winback import warehouse
from winback.quality.suites import last_closed_quarter, quarter_of

log = logging.getLogger(__name__)

# The KPI columns of kpi_staging.kpi_quarterly(_breakdown), with the type they are
# published (and fingerprinted) as: the metric contract's quarterly KPI table.
KPI_COLUMNS: tuple[tuple[str, str], ...] = (
    ("active_clients_start", "bigint"),
    ("new_clients", "bigint"),
    ("lost_clients", "bigint"),
    ("returned_clients", "bigint"),
    ("lost_pool_start", "bigint"),
    ("churn_rate", "double precision"),
    ("winback_rate", "double precision"),
    ("revenue_lost_ttm", "numeric"),
    ("revenue_recovered_90d", "numeric"),
    ("is_window_complete", "boolean"),
    ("median_days_to_return", "double precision"),
    ("lost_contacted_share", "double precision"),
)
STAGED_KPI = ("kpi_staging", "kpi_quarterly")
STAGED_BREAKDOWN = ("kpi_staging", "kpi_quarterly_breakdown")
PUBLISHED_KPI = ("reporting", "kpi_quarterly_versions")
PUBLISHED_BREAKDOWN = ("reporting", "kpi_quarterly_breakdown_versions")
_LOCK_KEY = "winback.publish"


class PublishError(RuntimeError):
    """A quarter cannot be published; the one-line message says why and what to do."""


# ----------------------------------------------------------------------------- fingerprints
def _rows_digest(relation: tuple[str, str], keys: tuple[str, ...], include_as_of: bool,
                 where: sql.Composable) -> sql.Composed:
    columns = [sql.Identifier(k) for k in keys]
    columns += [sql.SQL("{}::{}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in KPI_COLUMNS]
    if include_as_of:
        columns.append(sql.SQL("{}::date").format(sql.Identifier("as_of_date")))
    return sql.SQL(
        "(select md5(coalesce(string_agg(line, E'\\n' order by line), '')) "
        "from (select row({columns})::text as line from {relation} where {where}) as lines)"
    ).format(columns=sql.SQL(", ").join(columns), relation=sql.Identifier(*relation), where=where)


def fingerprint(conn: psycopg.Connection, quarter_start: dt.date, *, version: int | None = None,
                include_as_of: bool = True) -> str:
    """A checksum of one quarter's KPI rows (company row + breakdown rows).

    ``version=None``: the unpublished rows in kpi_staging; otherwise that published
    version. ``include_as_of=False`` compares the figures only (a re-computation for a
    later as-of date with the same figures is the same data).
    """
    if version is None:
        kpi, breakdown = STAGED_KPI, STAGED_BREAKDOWN
        where = sql.SQL("quarter_start = {}").format(sql.Literal(quarter_start))
    else:
        kpi, breakdown = PUBLISHED_KPI, PUBLISHED_BREAKDOWN
        where = sql.SQL("quarter_start = {} and version = {}").format(sql.Literal(quarter_start),
                                                                      sql.Literal(version))
    query = sql.SQL("select md5({} || ':' || {})").format(
        _rows_digest(kpi, ("quarter_start",), include_as_of, where),
        _rows_digest(breakdown, ("quarter_start", "dimension", "dimension_value"), include_as_of, where),
    )
    return conn.execute(query).fetchone()[0]


# ----------------------------------------------------------------------------- publish
def _check_quarter(quarter_start: dt.date) -> dt.date:
    if isinstance(quarter_start, str):
        quarter_start = dt.date.fromisoformat(quarter_start)
    if isinstance(quarter_start, dt.datetime):
        quarter_start = quarter_start.date()
    if quarter_of(quarter_start) != quarter_start:
        raise PublishError(f"{quarter_start} is not the first day of a calendar quarter")
    return quarter_start


def _validation(conn: psycopg.Connection, validation_id: str, quarter_start: dt.date) -> tuple:
    row = conn.execute(
        "select suite, quarter_start, success, failed_blocking, staged_fingerprint, as_of "
        "from audit.validation_results where validation_id = %s", (validation_id,)).fetchone()
    if row is None:
        raise PublishError(f"validation {validation_id} not found in audit.validation_results: "
                           f"run the kpi quality gate for {quarter_start} first")
    suite, validated_quarter, success, failed_blocking, staged_fingerprint, as_of = row
    if suite != "kpi":
        raise PublishError(f"validation {validation_id} is a {suite!r} gate run, not a 'kpi' run: "
                           f"quarter {quarter_start} not published")
    if validated_quarter != quarter_start:
        raise PublishError(f"validation {validation_id} validated quarter {validated_quarter}, "
                           f"not {quarter_start}: quarter not published")
    if not success:
        raise PublishError(f"validation {validation_id} of quarter {quarter_start} failed "
                           f"(blocking: {', '.join(failed_blocking) or '?'}): quarter not published")
    if not staged_fingerprint:
        raise PublishError(f"validation {validation_id} recorded no fingerprint of the staged rows: "
                           f"re-run the kpi quality gate for {quarter_start}")
    return staged_fingerprint, as_of


def _copy_statement(staged: tuple[str, str], published: tuple[str, str], keys: tuple[str, ...]) -> sql.Composed:
    names = [*keys, *(name for name, _ in KPI_COLUMNS), "as_of_date"]
    target = sql.SQL(", ").join(map(sql.Identifier, [*names, "version", "published_at", "validation_id", "reason"]))
    source = sql.SQL(", ").join(
        [sql.Identifier(k) for k in keys]
        + [sql.SQL("{}::{}").format(sql.Identifier(n), sql.SQL(t)) for n, t in KPI_COLUMNS]
        + [sql.Identifier("as_of_date")])
    return sql.SQL(
        "insert into {published} ({target}) "
        "select {source}, %(version)s, now(), %(validation_id)s, %(reason)s "
        "from {staged} where quarter_start = %(quarter_start)s"
    ).format(published=sql.Identifier(*published), target=target, source=source, staged=sql.Identifier(*staged))


def publish_quarter(dsn: str, quarter_start: dt.date, validation_id: str, reason: str) -> int:
    """Publish the quarter's staged KPI rows as a new version; return the version now shown.

    Refuses (:class:`PublishError`) unless ``validation_id`` is a successful ``kpi`` gate
    run of this quarter whose fingerprint matches the rows copied. If the figures equal the
    latest published version, nothing is written and that version is returned.
    """
    quarter_start = _check_quarter(quarter_start)
    if not reason or not reason.strip():
        raise PublishError("a reason is required to publish (e.g. 'quarterly publication', 'correction of ...')")
    try:
        return _publish(dsn, quarter_start, validation_id, reason.strip())
    except psycopg.Error as exc:
        raise PublishError(f"publishing quarter {quarter_start} failed, nothing was published: "
                           f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _publish(dsn: str, quarter_start: dt.date, validation_id: str, reason: str) -> int:
    params = {"quarter_start": quarter_start, "validation_id": validation_id, "reason": reason}
    with warehouse.connect(dsn) as conn:
        # One transaction: the lock, the checks, the copy and the record commit together.
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
        validated_fingerprint, as_of = _validation(conn, validation_id, quarter_start)
        latest = conn.execute("select max(version) from reporting.kpi_publications where quarter_start = %s",
                              (quarter_start,)).fetchone()[0]
        version = (latest or 0) + 1
        params["version"] = version
        conn.execute(
            "insert into reporting.kpi_publications "
            "(quarter_start, version, published_at, validation_id, reason, kpi_rows, breakdown_rows) "
            "values (%(quarter_start)s, %(version)s, now(), %(validation_id)s, %(reason)s, 0, 0)", params)
        try:
            kpi_rows = conn.execute(_copy_statement(STAGED_KPI, PUBLISHED_KPI, ("quarter_start",)), params).rowcount
            breakdown_rows = conn.execute(_copy_statement(
                STAGED_BREAKDOWN, PUBLISHED_BREAKDOWN, ("quarter_start", "dimension", "dimension_value")),
                params).rowcount
        except psycopg.errors.UndefinedTable as exc:
            raise PublishError(f"cannot read the staged KPI rows ({str(exc).splitlines()[0]}): "
                               "build the dbt project first") from None
        except psycopg.errors.UniqueViolation:
            raise PublishError(f"the staged rows of quarter {quarter_start} hold duplicate keys: "
                               "quarter not published (re-run the kpi quality gate)") from None
        if kpi_rows != 1:
            raise PublishError(f"kpi_staging.kpi_quarterly holds {kpi_rows} rows for quarter {quarter_start} "
                               "(expected exactly 1): quarter not published")
        if fingerprint(conn, quarter_start, version=version) != validated_fingerprint:
            raise PublishError(f"the staged KPI rows of quarter {quarter_start} changed after validation "
                               f"{validation_id} (as of {as_of}): re-run the kpi quality gate, then publish")
        if latest is not None and (fingerprint(conn, quarter_start, version=version, include_as_of=False)
                                   == fingerprint(conn, quarter_start, version=latest, include_as_of=False)):
            conn.rollback()
            log.info("quarter %s: staged figures equal published version %s; nothing published",
                     quarter_start, latest)
            return latest
        conn.execute("update reporting.kpi_publications set kpi_rows = %s, breakdown_rows = %s "
                     "where quarter_start = %s and version = %s", (kpi_rows, breakdown_rows, quarter_start, version))
    log.info("quarter %s: published version %s (%s + %s rows, validation %s): %s",
             quarter_start, version, kpi_rows, breakdown_rows, validation_id, reason)
    return version


def closed_unpublished_quarters(dsn: str, as_of: dt.date) -> list[dt.date]:
    """Quarters closed as of ``as_of`` that have staged KPI rows but no published version
    yet, oldest first (what a backfill still has to validate and publish)."""
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    try:
        with warehouse.connect(dsn) as conn:
            rows = _unpublished(conn, as_of)
    except psycopg.Error as exc:
        raise PublishError(f"cannot list unpublished quarters: {_first_line(exc)}") from None
    return [row[0] for row in rows if row[0] is not None]


def _unpublished(conn: psycopg.Connection, as_of: dt.date) -> list[tuple]:
    if conn.execute("select to_regclass('kpi_staging.kpi_quarterly')").fetchone()[0] is None:
        raise PublishError("kpi_staging.kpi_quarterly does not exist: build the dbt project first")
    return conn.execute(
        "select distinct k.quarter_start from kpi_staging.kpi_quarterly as k "
        "where k.quarter_start <= %s and not exists ("
        "  select 1 from reporting.kpi_publications as p where p.quarter_start = k.quarter_start) "
        "order by k.quarter_start", (last_closed_quarter(as_of),)).fetchall()
