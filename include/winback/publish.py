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

from winback import kpi_definition, warehouse
from winback.calendar import last_closed_quarter, quarter_of
from winback.kpi_definition import (
    PUBLISHED_BREAKDOWN,
    PUBLISHED_KPI,
    STAGED_BREAKDOWN,
    STAGED_KPI,
    KpiDefinition,
    KpiDefinitionError,
    fingerprint,
)

log = logging.getLogger(__name__)

# The copied columns and their published types come from the one KPI definition
# (dbt_project/models/kpi/_kpi__models.yml, read by winback.kpi_definition); so does the
# fingerprint the gate records and publish compares (kpi_definition.fingerprint).
_LOCK_KEY = "winback.publish"


class PublishError(RuntimeError):
    """A quarter cannot be published; the one-line message says why and what to do."""


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


def _copy_statement(definition: KpiDefinition, staged: tuple[str, str], published: tuple[str, str],
                    keys: tuple[str, ...]) -> sql.Composed:
    names = [*keys, *definition.names, kpi_definition.AS_OF_COLUMN]
    target = sql.SQL(", ").join(map(sql.Identifier, [*names, *kpi_definition.VERSION_COLUMNS]))
    source = sql.SQL(", ").join(
        [sql.Identifier(k) for k in keys]
        + [sql.SQL("{}::{}").format(sql.Identifier(n), sql.SQL(t)) for n, t in definition.typed]
        + [sql.Identifier(kpi_definition.AS_OF_COLUMN)])
    return sql.SQL(
        "insert into {published} ({target}) "
        "select {source}, %(version)s, now(), %(validation_id)s, %(reason)s "
        "from {staged} where quarter_start = %(quarter_start)s"
    ).format(published=sql.Identifier(*published), target=target, source=source, staged=sql.Identifier(*staged))


def _published_columns(conn: psycopg.Connection, definition: KpiDefinition) -> None:
    """Add KPI columns the published tables lack (a KPI defined after the last bootstrap)."""
    if kpi_definition.published_columns_missing(conn, definition):
        kpi_definition.apply_reporting_schema(conn, definition)


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
        definition = kpi_definition.load()
    except KpiDefinitionError as exc:
        raise PublishError(f"quarter {quarter_start} not published: {exc}") from None
    try:
        return _publish(dsn, quarter_start, validation_id, reason.strip(), definition)
    except psycopg.Error as exc:
        raise PublishError(f"publishing quarter {quarter_start} failed, nothing was published: "
                           f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _publish(dsn: str, quarter_start: dt.date, validation_id: str, reason: str, definition: KpiDefinition) -> int:
    params = {"quarter_start": quarter_start, "validation_id": validation_id, "reason": reason}
    with warehouse.connect(dsn) as conn:
        # One transaction: the lock, the checks, the copy and the record commit together.
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
        validated_fingerprint, as_of = _validation(conn, validation_id, quarter_start)
        _published_columns(conn, definition)
        latest = conn.execute("select max(version) from reporting.kpi_publications where quarter_start = %s",
                              (quarter_start,)).fetchone()[0]
        version = (latest or 0) + 1
        params["version"] = version
        conn.execute(
            "insert into reporting.kpi_publications "
            "(quarter_start, version, published_at, validation_id, reason, kpi_rows, breakdown_rows) "
            "values (%(quarter_start)s, %(version)s, now(), %(validation_id)s, %(reason)s, 0, 0)", params)
        try:
            kpi_rows = conn.execute(_copy_statement(definition, STAGED_KPI, PUBLISHED_KPI,
                                                    kpi_definition.COMPANY_KEYS), params).rowcount
            breakdown_rows = conn.execute(_copy_statement(definition, STAGED_BREAKDOWN, PUBLISHED_BREAKDOWN,
                                                          kpi_definition.BREAKDOWN_KEYS), params).rowcount
        except psycopg.errors.UndefinedTable as exc:
            raise PublishError(f"cannot read the staged KPI rows ({str(exc).splitlines()[0]}): "
                               "build the dbt project first") from None
        except psycopg.errors.UniqueViolation:
            raise PublishError(f"the staged rows of quarter {quarter_start} hold duplicate keys: "
                               "quarter not published (re-run the kpi quality gate)") from None
        if kpi_rows != 1:
            raise PublishError(f"kpi_staging.kpi_quarterly holds {kpi_rows} rows for quarter {quarter_start} "
                               "(expected exactly 1): quarter not published")
        if fingerprint(conn, quarter_start, version=version, definition=definition) != validated_fingerprint:
            raise PublishError(f"the staged KPI rows of quarter {quarter_start} changed after validation "
                               f"{validation_id} (as of {as_of}): re-run the kpi quality gate, then publish")
        if latest is not None and (
                fingerprint(conn, quarter_start, version=version, include_as_of=False, definition=definition)
                == fingerprint(conn, quarter_start, version=latest, include_as_of=False, definition=definition)):
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
