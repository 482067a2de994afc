"""The quality gate: run one suite with Great Expectations Core, record it, build Data Docs.

``run_gate`` is a plain function (the Airflow task calls it; no GX provider). Per call it
builds one *ephemeral* GX Data Context (suites come from this package's JSON files, not
from a GX project directory), one PostgreSQL Data Source on the warehouse, one table asset
+ whole-table batch definition + expectation suite + validation definition per asset, and
runs them all through one Checkpoint. Every expectation is evaluated inside PostgreSQL
(column metrics and ``UnexpectedRowsExpectation`` queries): no table is pulled into Python.
``run_gates`` does the same for several quarters and builds the Data Docs once, at the end.

Validation results are kept on disk (``<output_dir>/gx/validations``) so the Data Docs
site (``<output_dir>/data_docs/index.html``) lists every run, and each run is stored in
``audit.validation_results``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import multiprocessing
import os
import re
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from winback import warehouse
from winback.calendar import last_closed_quarter, quarter_end, quarter_of
from winback.config import get_settings
from winback.kpi_definition import KpiDefinitionError, fingerprint
from winback.quality import waivers
from winback.quality.suites import (
    ENTITY_NAMES,
    SUITE_NAMES,
    Check,
    RunContext,
    Suite,
    SuiteDefinitionError,
    load_suite,
)

log = logging.getLogger(__name__)

SAMPLE_ROWS = 20
# observed[DELIVERY_MARK] of a raw gate run: see delivery_mark().
DELIVERY_MARK = "delivery_mark"
# Keys of observed that describe the run, not a check.
RUN_FACTS = ("first_load", DELIVERY_MARK)
STABLE_CHECK = "kpi_staging.unchanged_during_validation"


class GateError(RuntimeError):
    """The gate could not run (bad arguments, unreachable warehouse, broken suite); one line."""


class GateFailed(RuntimeError):
    """Raised by :meth:`GateResult.raise_for_failure` when a blocking check failed."""


@dataclass(frozen=True)
class GateResult:
    success: bool
    validation_id: str
    failed_blocking: list[str]
    failed_warning: list[str]
    observed: dict[str, Any]
    data_docs_path: Path | None
    suite: str = ""
    as_of: dt.date | None = None
    quarter_start: dt.date | None = None
    evaluated: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    # Failed blocking checks an operator's waiver turned into warnings (also in failed_warning).
    waived: list[str] = field(default_factory=list)
    first_load: bool = False

    @property
    def message(self) -> str:
        """One line: what ran, the verdict, the failed checks, where the report is."""
        scope = f"suite {self.suite} as of {self.as_of}" + (f" for quarter {self.quarter_start}"
                                                            if self.quarter_start else "")
        verdict = "passed" if self.success else "FAILED"
        parts = [f"quality gate {verdict}: {scope}, {self.evaluated} checks"]
        if self.failed_blocking:
            parts.append(f"blocking failures: {', '.join(self.failed_blocking)}")
        if self.failed_warning:
            parts.append(f"warnings: {', '.join(self.failed_warning)}")
        if self.waived:
            parts.append(f"waived: {', '.join(self.waived)}")
        parts.append(f"validation {self.validation_id}")
        if self.data_docs_path:
            parts.append(f"report {self.data_docs_path}")
        return "; ".join(parts)

    def raise_for_failure(self) -> GateResult:
        if not self.success:
            raise GateFailed(self.message)
        return self

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (e.g. an Airflow XCom)."""
        return {"success": self.success, "validation_id": self.validation_id, "suite": self.suite,
                "as_of": self.as_of.isoformat() if self.as_of else None,
                "quarter_start": self.quarter_start.isoformat() if self.quarter_start else None,
                "failed_blocking": self.failed_blocking, "failed_warning": self.failed_warning,
                "waived": self.waived,
                "data_docs_path": str(self.data_docs_path) if self.data_docs_path else None}


# ----------------------------------------------------------------------------- connections
def sqlalchemy_url(dsn: str) -> str:
    """A libpq URI as the SQLAlchemy URL GX needs (``postgresql+psycopg://``).

    libpq allows a Unix-socket directory as ``?host=/dir`` with an empty host, or
    percent-encoded in the host part; GX's URL check requires a host name, so the
    socket goes to the query (which libpq gives priority) and ``localhost`` stands in.
    ``$`` is percent-encoded (GX would read ``${...}`` as a config variable).
    """
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise GateError("the warehouse DSN must be a PostgreSQL URI such as postgresql://user:pw@host:5432/db")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    host = hostport
    if host.lower().startswith("%2f") or host.startswith("/"):
        socket_dir, _, port = host.partition(":")
        query = [(k, v) for k, v in query if k != "host"] + [("host", urllib.parse.unquote(socket_dir))]
        if port and not any(k == "port" for k, _ in query):
            query.append(("port", port))
        host = ""
    if not host:
        host = "localhost"
    netloc = f"{userinfo}@{host}" if userinfo else host
    netloc = netloc.replace("$", "%24")
    return urllib.parse.urlunsplit(("postgresql+psycopg", netloc, parts.path, urllib.parse.urlencode(query), ""))


# ----------------------------------------------------------------------------- GX plumbing
def _docs_dir() -> Path:
    """The Data Docs site's folder (its index is ``index.html``)."""
    return get_settings().output_dir / "data_docs"


def _context():
    """An ephemeral GX context whose validation results are on disk
    (``<output_dir>/gx/validations``): any context renders every run's pages."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    results_dir = get_settings().output_dir / "gx" / "validations"
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(results_dir)},
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites={
            "winback": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(_docs_dir())},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                # Suites live in this package; the site lists validation runs (each page shows
                # the checks with their results).
                "site_section_builders": {"expectations": "None", "profiling": "None"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _gx_suite(gx, name: str, checks: tuple[Check, ...], waived: dict[str, waivers.Waiver]):
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=name)
    for check in checks:
        meta = {**check.meta, "severity": check.severity}
        label = check.severity
        if check.blocking and check.name in waived:  # shown as waived in the Data Docs
            meta["waiver"] = waived[check.name].describe()
            label = f"blocking, WAIVED: {meta['waiver']}"
        config = ExpectationConfiguration(
            type=check.type, kwargs=check.kwargs, meta=meta,
            description=f"[{label}] {check.name}: {check.description}",
            severity="critical" if check.blocking and check.name not in waived else "warning",
        )
        # add_expectation (not add_expectation_configuration, which upserts by domain and
        # would keep one UnexpectedRowsExpectation per table)
        suite.add_expectation(config.to_domain_obj())
    if len(suite.expectations) != len(checks):
        raise GateError(f"suite {name}: two checks are identical; give each its own rule")
    return suite


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None if value != value else str(value)  # jsonb has no NaN / Infinity
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _first_line(text: Any) -> str:
    lines = [line.strip() for line in str(text or "").strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else "unknown error"


def _error_of(result) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return _first_line(info.get("exception_message"))
    for value in info.values():  # per-metric errors: {metric_id: {raised_exception, ...}}
        if isinstance(value, dict) and value.get("raised_exception"):
            return _first_line(value.get("exception_message"))
    return None


_RESULT_KEYS = ("observed_value", "element_count", "unexpected_count", "unexpected_percent", "missing_count",
                "partial_unexpected_list")


def _sample_rows(conn: psycopg.Connection, check: Check, relation: str) -> list[dict[str, Any]]:
    """The first offending rows of a failed SQL check (GX only counts them in SUMMARY)."""
    query = check.kwargs["unexpected_rows_query"].format(batch=relation)
    statement = sql.SQL("select * from ({}) as offending limit {}").format(sql.SQL(query), sql.Literal(SAMPLE_ROWS))
    try:
        with conn.transaction():
            cursor = conn.execute(statement)
            names = [d.name for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except psycopg.Error as exc:
        return [{"error": _first_line(exc)}]


# ----------------------------------------------------------------------------- the gate
def _check_arguments(suite: str, as_of: dt.date | str, quarter_start: dt.date | str | None):
    if suite not in SUITE_NAMES:
        raise GateError(f"unknown quality suite {suite!r} (known: {', '.join(SUITE_NAMES)})")
    try:
        as_of = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
        if isinstance(as_of, dt.datetime):  # e.g. an Airflow data interval end
            as_of = as_of.date()
        if isinstance(quarter_start, dt.datetime):
            quarter_start = quarter_start.date()
        if isinstance(quarter_start, str):
            quarter_start = dt.date.fromisoformat(quarter_start)
    except ValueError as exc:
        raise GateError(f"invalid date: {exc}") from None
    if not isinstance(as_of, dt.date):
        raise GateError(f"as_of must be a date (got {as_of!r})")
    if quarter_start is not None:
        if suite != "kpi":
            raise GateError(f"suite {suite!r} checks a nightly load, not a quarter: pass quarter_start=None")
        if quarter_of(quarter_start) != quarter_start:
            raise GateError(f"quarter_start {quarter_start} is not the first day of a calendar quarter")
        if quarter_end(quarter_start) > as_of:
            raise GateError(f"quarter {quarter_start} is not closed as of {as_of} (it ends {quarter_end(quarter_start)};"
                            f" the last closed quarter starts {last_closed_quarter(as_of)})")
    return as_of, quarter_start


def _staged_fingerprint(conn: psycopg.Connection, quarter_start: dt.date | None) -> str | None:
    if quarter_start is None:
        return None
    try:
        with conn.transaction():
            return fingerprint(conn, quarter_start)
    except (psycopg.Error, KpiDefinitionError):
        return None


def _existing_relations(conn: psycopg.Connection, suite: Suite) -> set[str]:
    return {asset.relation for asset in suite.assets
            if conn.execute("select to_regclass(%s)", (asset.relation,)).fetchone()[0] is not None}


def run_gate(dsn: str, suite: str, as_of: dt.date, quarter_start: dt.date | None = None,
             run_id: str = "manual") -> GateResult:
    """Validate ``suite`` ('raw' or 'kpi') for the as-of date (and quarter); record and report it.

    ``success`` is True when no *blocking* check failed. Raises :class:`GateError` (or
    ``WarehouseError`` when the warehouse cannot be reached) only when the gate cannot run
    at all; failed checks are a result, not an exception (see
    :meth:`GateResult.raise_for_failure`).
    """
    return run_gates(dsn, suite, as_of, [quarter_start], run_id)[0]


def run_gates(dsn: str, suite: str, as_of: dt.date, quarters: Sequence[dt.date | None],
              run_id: str = "manual") -> list[GateResult]:
    """:func:`run_gate` for each of ``quarters`` (a backfill validates a dozen, two at a time
    from :data:`SHARED_FROM` on, see :func:`_validated_runs`), with one Data Docs build after
    the last instead of one per quarter: every build renders the site's index from all the
    validation results on disk, so a build per quarter cost more with every run kept (0.25 s
    each on a new site, 0.6 s with 150 results on disk). The site ends up the same; each run
    is recorded after that build, in the quarters' order, as :func:`run_gate` records it
    after its own. When one quarter's gate cannot run, the runs before it are still reported
    and recorded, then the error is raised, as in a loop over :func:`run_gate`.
    """
    runs: list[_Validated] = []
    try:
        runs.extend(_validated_runs(dsn, suite, as_of, quarters, run_id))
    finally:
        pages = [page for run in runs for page in run.pages]
        # The results store is on disk: a new context renders the pages of every process.
        data_docs = _build_docs(_context() if pages else None, pages, _docs_dir())
        results = []
        for run in runs:
            with _warehouse_errors(suite, run.result.as_of):
                results.append(_finish(dsn, run, data_docs if run.pages else None, run_id))
    return results


# From this many quarters on, a second process validates quarters beside this one. Great
# Expectations spends ~1.7 s of Python per quarter of the KPI suite at 70k lines (5.5 s at
# 1M) and a new process ~4 s importing it: fewer quarters finish sooner here alone.
SHARED_FROM = 6


def _validate_quarter(dsn: str, suite: str, as_of: dt.date, quarter_start: dt.date | None,
                      run_id: str) -> _Validated:
    """One quarter's run up to its Data Docs (in this process or the helper's)."""
    checked_as_of, checked_quarter = _check_arguments(suite, as_of, quarter_start)
    with _warehouse_errors(suite, checked_as_of):
        return _validate(dsn, suite, checked_as_of, checked_quarter, run_id)


def _validated_runs(dsn: str, suite: str, as_of: dt.date, quarters: Sequence[dt.date | None],
                    run_id: str) -> Iterator[_Validated]:
    """Each quarter's run, in the quarters' order, up to the first that cannot run (its error
    is raised there, as in a loop).

    Great Expectations is Python on one core. From :data:`SHARED_FROM` quarters on, on a
    machine with a second core, one helper process takes quarters from the end of the list
    while this process takes them from the front, until they meet: the helper, a new
    interpreter (``spawn``: this process may run threads, which ``fork`` does not copy),
    joins after its imports, so a short list costs nothing more. After a quarter that cannot
    run, the helper gets no more and this process still runs those before it; a helper that
    dies leaves its quarter to this process."""
    jobs = [(dsn, suite, as_of, quarter_start, run_id) for quarter_start in quarters]
    if len(jobs) < SHARED_FROM or (os.cpu_count() or 1) < 2:
        for job in jobs:
            yield _validate_quarter(*job)
        return
    outcomes: dict[int, Future] = {}
    failed_at = len(jobs)  # the first quarter that could not run, once one could not
    front, back = 0, len(jobs) - 1  # the next quarters here and in the helper
    helping: tuple[int, Future] | None = None  # the helper's quarter and its outcome
    helper_alive = True
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as helper:
        while True:
            if helper_alive and helping is None and front <= back and failed_at == len(jobs):
                helping, back = (back, helper.submit(_validate_quarter, *jobs[back])), back - 1
            if helping is not None and (helping[1].done() or front > back or front >= failed_at):
                (index, outcome), helping = helping, None
                if isinstance(outcome.exception(), BrokenProcessPool):
                    helper_alive = False
                    outcome = _here(jobs[index])
            elif front <= back and front < failed_at:
                index, outcome = front, _here(jobs[front])
                front += 1
            else:
                break
            outcomes[index] = outcome
            if outcome.exception() is not None:
                failed_at = min(failed_at, index)
    for index in range(len(jobs)):
        yield outcomes[min(index, failed_at)].result()  # raises at the first that could not run


def _here(job: tuple[Any, ...]) -> Future:
    """:func:`_validate_quarter` in this process, its outcome as a finished future."""
    done: Future = Future()
    try:
        done.set_result(_validate_quarter(*job))
    except Exception as exc:  # noqa: BLE001 - kept for the quarters' order, raised there
        done.set_exception(exc)
    return done


@contextlib.contextmanager
def _warehouse_errors(suite: str, as_of: dt.date | None) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise GateError(f"quality gate {suite!r} as of {as_of}: warehouse error: {_first_line(exc)}") from None


def run_context(conn: psycopg.Connection, as_of: dt.date) -> RunContext:
    """Which entities raw holds any row of, whether the earliest load that brought sales
    lines is this as-of date's (a first load of history, see ``RunContext``), and since
    when rows count as delivered after the last raw gate that passed (its delivery mark)."""
    # A raw table a newer contract added (raw.campaigns) exists once the warehouse has been
    # bootstrapped again; until then nothing of it was delivered.
    delivered = frozenset(entity for entity in ENTITY_NAMES if conn.execute(
        "select to_regclass(%s) is not null", (f"raw.{entity}",)).fetchone()[0] and conn.execute(
        sql.SQL("select exists (select from {})").format(sql.Identifier("raw", entity))).fetchone()[0])
    first = conn.execute("select min(logical_date) from audit.load_runs where entity = 'sales_lines'"
                         " and status = 'success' and rows_inserted > 0").fetchone()[0]
    since = conn.execute("select max((observed->>%s)::timestamptz) from audit.validation_results"
                         " where suite = 'raw' and success", (DELIVERY_MARK,)).fetchone()[0]
    return RunContext(first_load=first == as_of, delivered=delivered, delivered_since=since)


def delivery_mark(conn: psycopg.Connection) -> dt.datetime:
    """Where the next raw gate's delivery-scoped checks start when this one passes: now, or
    the start of the earliest load still running (its rows, committed after this gate
    looked, carry their transaction's start time, not less than the load's start)."""
    return conn.execute("select least(now(), (select min(started_at) from audit.load_runs"
                        " where status = 'running'))").fetchone()[0]


@dataclass(frozen=True)
class _Validated:
    """A gate run validated but not yet reported: its result (no Data Docs page yet), the
    staged KPI rows' fingerprint to record (None unless they stayed the same during the
    run) and the identifiers of its validation results, the Data Docs pages to render
    (none when no check could run)."""

    result: GateResult
    staged_fingerprint: str | None
    pages: tuple[Any, ...] = ()


def _validate(dsn: str, suite: str, as_of: dt.date, quarter_start: dt.date | None,
              run_id: str) -> _Validated:
    """One gate run up to its Data Docs (its results are on disk, for any GX context)."""
    validation_id = str(uuid.uuid4())

    with warehouse.connect(dsn, autocommit=True) as conn:
        context_of_run = run_context(conn, as_of)
        waived = waivers.active(conn, as_of, quarter_start)
        try:
            definition = load_suite(suite, as_of, quarter_start, context_of_run)
        except SuiteDefinitionError as exc:
            raise GateError(str(exc)) from None
        before = _staged_fingerprint(conn, quarter_start)
        present = _existing_relations(conn, definition)
        mark = delivery_mark(conn) if suite == "raw" else None

    observed: dict[str, Any] = {}
    errors: dict[str, str] = {}
    failed: dict[str, Check] = {}
    run_assets = [asset for asset in definition.assets if asset.checks and asset.relation in present]
    for asset in definition.assets:
        if asset.relation not in present:
            for check in asset.checks:
                errors[check.name] = f"table {asset.relation} does not exist"
                observed[check.name] = {"severity": check.severity, "success": False, "error": errors[check.name]}
                failed[check.name] = check

    checkpoint_result = None
    context = source = None
    if run_assets:
        try:
            import great_expectations as gx
            from great_expectations.core.run_identifier import RunIdentifier

            context = _context()
            source = context.data_sources.add_postgres("warehouse", connection_string=sqlalchemy_url(dsn))
            definitions = []
            for asset in run_assets:
                table = source.add_table_asset(asset.name, table_name=asset.table, schema_name=asset.schema)
                batch = table.add_batch_definition_whole_table("whole_table")
                gx_suite = context.suites.add(_gx_suite(gx, f"winback.{suite}.{asset.name}", asset.checks, waived))
                definitions.append(context.validation_definitions.add(
                    gx.ValidationDefinition(name=f"winback.{suite}.{asset.name}", data=batch, suite=gx_suite)))
            checkpoint = context.checkpoints.add(gx.Checkpoint(
                name=f"winback.{suite}", validation_definitions=definitions,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS}))
            run_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{run_id}_{suite}_{as_of}")  # a Data Docs folder name
            checkpoint_result = checkpoint.run(run_id=RunIdentifier(run_name=run_name,
                                                                    run_time=dt.datetime.now(dt.UTC)))
        except GateError:
            raise
        except Exception as exc:  # GX wraps many errors; the gate must say what failed in one line
            raise GateError(f"quality suite {suite!r} could not run: {type(exc).__name__}: {_first_line(exc)}") from None
        finally:
            _close(source)

    by_name = {check.name: (check, asset) for asset in run_assets for check in asset.checks}
    if checkpoint_result is not None:
        for suite_result in checkpoint_result.run_results.values():
            for result in suite_result.results:
                name = (result.expectation_config.meta or {}).get("name")
                if name not in by_name:
                    continue
                check, _asset = by_name[name]
                error = _error_of(result)
                entry: dict[str, Any] = {"severity": check.severity, "success": bool(result.success) and not error}
                entry.update({k: v for k, v in (result.result or {}).items() if k in _RESULT_KEYS})
                if error:
                    entry["error"] = errors[name] = error
                observed[name] = entry
                if not entry["success"]:
                    failed[name] = check
        missing = set(by_name) - set(observed)
        for name in missing:  # never let a check vanish silently
            check = by_name[name][0]
            errors[name] = "no result from Great Expectations"
            observed[name] = {"severity": check.severity, "success": False, "error": errors[name]}
            failed[name] = check

    with warehouse.connect(dsn, autocommit=True) as conn:
        for name, check in failed.items():
            if check.type == "unexpected_rows_expectation" and name in by_name and name not in errors:
                observed[name]["rows"] = _sample_rows(conn, check, by_name[name][1].relation)
        after = _staged_fingerprint(conn, quarter_start)

    if quarter_start is not None and (before is None or before != after):
        reason = ("the staged KPI rows could not be read" if before is None
                  else "the staged KPI rows changed while they were validated")
        observed[STABLE_CHECK] = {"severity": "blocking", "success": False, "error": reason}
        errors[STABLE_CHECK] = reason
        failed[STABLE_CHECK] = Check(name=STABLE_CHECK, severity="blocking", type="fingerprint", kwargs={},
                                     description=reason, meta={})

    # Entities never delivered: a warning each, naming the figures their absence limits.
    for entity, limits in definition.deliveries.items():
        if entity not in context_of_run.delivered:
            name = f"deliveries.{entity}"
            observed[name] = {"severity": "warning", "success": False, "note": limits}
            failed[name] = Check(name=name, severity="warning", type="delivery", kwargs={}, description=limits,
                                 meta={})
    # A failed blocking check an operator waived for this scope counts as a warning, named.
    waived_names = sorted(name for name, check in failed.items() if check.blocking and name in waived
                          and name != STABLE_CHECK)
    for name in waived_names:
        observed[name]["waived"] = waived[name].describe()
    failed_blocking = sorted(name for name, check in failed.items() if check.blocking and name not in waived_names)
    failed_warning = sorted(name for name, check in failed.items() if not check.blocking or name in waived_names)
    evaluated = len(definition.checks)
    if context_of_run.first_load:
        observed["first_load"] = True  # the checks for a first load of history applied (quality/README.md)
    if mark is not None and not failed_blocking and not waived_names:
        # Only a clean pass moves the mark: rows a waiver let through are judged again by
        # the next run (the waiver covers its own as-of date only), as before.
        observed[DELIVERY_MARK] = mark
    result = GateResult(
        success=not failed_blocking, validation_id=validation_id, failed_blocking=failed_blocking,
        failed_warning=failed_warning, observed=_jsonable(observed), data_docs_path=None, suite=suite,
        as_of=as_of, quarter_start=quarter_start, evaluated=evaluated, errors=errors, waived=waived_names,
        first_load=context_of_run.first_load)
    pages = tuple(checkpoint_result.run_results) if checkpoint_result is not None else ()
    return _Validated(result, after if after == before else None, pages)


def _finish(dsn: str, run: _Validated, data_docs: Path | None, run_id: str) -> GateResult:
    """The run's result with its Data Docs page, recorded in audit.validation_results and logged."""
    result = dataclasses.replace(run.result, data_docs_path=data_docs)
    _record(dsn, result, run_id, run.staged_fingerprint)
    (log.info if result.success else log.error)("%s", result.message)
    return result


def _close(source) -> None:
    """Close GX's pooled connections: a gate run must not leave sessions on the warehouse."""
    if source is None:
        return
    engines = [getattr(source, "_engine", None)]
    execution_engine = getattr(source, "_execution_engine", None)
    engines.append(getattr(execution_engine, "engine", None))
    for engine in engines:
        if engine is not None:
            try:
                engine.dispose()
            except Exception as exc:  # closing must not hide the verdict
                log.warning("quality gate: could not close a connection pool: %s", _first_line(exc))


def _build_docs(context, pages: list[Any], docs_dir: Path) -> Path | None:
    """Render the pages of validation results and the site's index (of every result on disk).
    The results store is on disk, shared by every run's context: any of them renders all."""
    if context is None or not pages:
        return None
    try:
        context.build_data_docs(resource_identifiers=pages)
    except Exception as exc:  # the report is a convenience; the verdict is in the warehouse
        log.warning("quality gate: Data Docs not built: %s", _first_line(exc))
        return None
    index = docs_dir / "index.html"
    return index if index.exists() else None


def _record(dsn: str, result: GateResult, run_id: str, staged_fingerprint: str | None) -> None:
    with warehouse.connect(dsn) as conn:
        conn.execute(
            "insert into audit.validation_results (validation_id, run_id, suite, as_of, quarter_start, success, "
            "failed_blocking, failed_warning, observed, evaluated, staged_fingerprint, data_docs_path, waived) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)",
            (result.validation_id, run_id, result.suite, result.as_of, result.quarter_start, result.success,
             result.failed_blocking, result.failed_warning, json.dumps(result.observed), result.evaluated,
             staged_fingerprint, str(result.data_docs_path) if result.data_docs_path else None, result.waived))
