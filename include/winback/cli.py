"""``winback``: the one entry point for what people run by hand.

    winback demo                 generate a demo seller and run the whole pipeline
    winback run --landing DIR    run the pipeline on your own export folder
    winback extract --as-of D    one nightly extract (a real Airflow DAG run)
    winback bootstrap            create/upgrade the warehouse schemas and roles
    winback status               the last loads and quality-gate results
    winback publish --quarter Q --reason TEXT   gate the quarter's KPIs and publish them
    winback waive CHECK --as-of D --reason TEXT accept a failed blocking check for one date (or --quarter Q)
    winback report --quarter Q [--out DIR]      render a published quarter (HTML, and PDF if possible)

Errors print one line and a hint; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from winback import calendar
from winback.config import Settings, get_settings

HINTS = {
    "ConfigError": "check the WINBACK_* environment variables or winback.toml (see README: Configuration)",
    "WarehouseError": "is the warehouse reachable? unset AIRFLOW_CONN_WAREHOUSE to use the embedded one",
    "DeliveryRejected": "fix the named file or table (see audit.load_runs) and run again",
    "QuarantineLimitExceeded": "inspect audit.quarantine; raise WINBACK_QUARANTINE_MAX_SHARE only if the rows are expected",
    "SourceError": "check the source connection (AIRFLOW_CONN_SALES_SOURCE) or the landing folder",
    "DagRunFailed": "see the task log above; audit.load_runs and audit.quarantine say what was loaded",
    "DagRunBlocked": "nothing was published; fix the data and run again, or give the waiver named above",
    "ReportError": "publish the quarter first (winback publish --quarter YYYY-MM-DD --reason TEXT); "
                   "winback status lists the published quarters",
    "BiViewsMissing": "build the views named above with the DAG named there, then render again",
    "GateFailed": "nothing was published: see the Data Docs report named above and audit.validation_results, "
                  "fix the data, rebuild the marts and publish again; or, if the failure is accepted, "
                  "winback waive CHECK --as-of D --reason TEXT and run again",
    "WaiverError": "winback status lists the failed checks of the last gate runs",
    "PipelineBusy": "one pipeline run at a time per warehouse: wait for the other one, or stop it",
    "GateError": "the quarter must be the first day of a closed quarter, and dbt must have built kpi_staging",
    "PublishError": "winback status shows the last gate runs and the published versions",
    "PreflightError": "nothing was written: fix the folder, file or date named above and run again",
    "NoTaskRan": "the DAG run did nothing for that date: check --as-of and the DAG's start_date "
                 "(winback.dag_policy.START_DATE)",
}


class DagRunFailed(RuntimeError):
    pass


class DagRunBlocked(DagRunFailed):
    """A DAG run stopped at a quality gate: the message names the checks and the waiver to give."""


def _failed(what: str, started: dt.datetime, settings: Settings) -> DagRunFailed:
    """The error for a failed DAG run, saying why when the warehouse knows: a quality gate
    that blocked (with the waiver command for it), or a load that failed."""
    from winback import warehouse

    with warehouse.connect(warehouse.warehouse_dsn(settings)) as conn:
        gate = conn.execute(
            "select suite, as_of, quarter_start, failed_blocking, data_docs_path from audit.validation_results"
            " where created_at >= %s and not success order by created_at desc limit 1", (started,)).fetchone()
        load = conn.execute(
            "select entity, message from audit.load_runs where started_at >= %s and status in ('failed', 'rejected')"
            " order by load_id desc limit 1", (started,)).fetchone()
    if gate:
        suite, as_of, quarter, blocking, docs = gate
        scope = f"--quarter {quarter}" if quarter else f"--as-of {as_of}"
        return DagRunBlocked(
            f"{what}: the {suite} quality gate blocked ({', '.join(blocking)}, data as of {as_of}; Data Docs: "
            f"{docs or 'not built'}). If the failure is accepted: winback waive {blocking[0]} {scope} "
            "--reason TEXT, then run again")
    if load:
        return DagRunFailed(f"{what}: the {load[0]} load failed: {(load[1] or '').splitlines()[0][:300]}")
    return DagRunFailed(what)


class Progress:
    """Numbered steps with their duration, so long runs show where they are."""

    def __init__(self, total: int):
        self.total, self.number, self.started = total, 0, time.monotonic()

    def step(self, title: str, action: Callable[[], object]) -> object:
        self.number += 1
        print(f"[{self.number}/{self.total}] {title} ...", flush=True)
        begun = time.monotonic()
        outcome = action()
        print(f"      done in {time.monotonic() - begun:.1f}s", flush=True)
        return outcome


def _setup(settings: Settings, held: contextlib.ExitStack, command: str) -> None:
    """Resolve the warehouse (embedded by default), take its pipeline lock for the rest of
    the command (one pipeline run at a time per warehouse), bootstrap it, point Airflow at
    the project."""
    from winback import orchestration, warehouse

    warehouse.export_connections(settings)
    dsn = warehouse.warehouse_dsn(settings)
    held.enter_context(warehouse.pipeline_lock(dsn, command))
    warehouse.bootstrap(dsn)
    orchestration.prepare_airflow(settings)


def start_priming(settings: Settings) -> Callable[[], None]:
    """Parse the dbt project for the DAGs' producers in the background (a dbt process on
    the second core while the extract runs, :func:`winback.cosmos_config.prime_partial_parse`);
    return the wait for it. A parse that failed only costs the first build its partial
    parse: the wait says so and the run goes on."""
    import threading

    from winback import cosmos_config

    failed: list[BaseException] = []

    def prime() -> None:
        try:
            cosmos_config.prime_partial_parse(settings)
        except Exception as exc:  # noqa: BLE001 - reported by the wait, never fatal
            failed.append(exc)

    worker = threading.Thread(target=prime, name="winback-dbt-parse", daemon=True)
    worker.start()

    def wait() -> None:
        worker.join()
        if failed:
            print(f"      note: dbt's parse for the DAGs was not prepared ({failed[0]}); "
                  "the first dbt build parses the whole project", flush=True)

    return wait


def run_nightly(as_of: dt.date, settings: Settings) -> None:
    """One nightly extract for ``as_of`` as a real Airflow DAG run."""
    from winback import orchestration

    logical = orchestration.logical_date_for(as_of, settings)
    started = dt.datetime.now(dt.UTC)
    run = orchestration.run_dag("winback_nightly_extract", logical)
    if str(run.state) != "success":
        raise _failed(f"winback_nightly_extract for {as_of} ended {run.state}", started, settings)


def run_quarterly(settings: Settings, conf: dict) -> None:
    """The quarterly DAG: dbt for the as-of date, the quality gate, the publication."""
    _run_dag_or_fail("winback_quarterly_kpis", conf=conf, settings=settings)


def _run_dag_or_fail(dag_id: str, conf: dict, settings: Settings) -> None:
    from winback import orchestration

    started = dt.datetime.now(dt.UTC)
    run = orchestration.run_dag(dag_id, started, conf=conf)
    if str(run.state) != "success":
        raise _failed(f"{dag_id} ended {run.state}", started, settings)


def build_dbt_docs(settings: Settings) -> Path:
    """The dbt docs site (static HTML) for the warehouse, under the outputs folder: models,
    docs, tests, lineage and the warehouse's catalog. Without compiling every model
    (``--no-compile``): compiling runs each incremental model's introspection queries, half
    of the 10 s the site took after a 70k-line ``winback run``; a model's SQL is shown as
    written, with its Jinja. The site reads the project's prebuilt manifest, which
    ``dbt docs generate --no-compile`` does not write."""
    import shutil

    from winback import cosmos_config, dbt

    target = settings.output_dir / "dbt_docs"
    target.mkdir(parents=True, exist_ok=True)
    # As the producers run dbt, from their partial parse: not parsing the project again.
    primed = cosmos_config.primed_parse(settings)
    if primed.exists():
        shutil.copyfile(primed, target / primed.name)
    with cosmos_config.producer_profile(settings) as (flags, env):
        dbt.run_dbt_env(["docs", "generate", "--no-compile", *flags, "--target-path", str(target),
                         "--log-path", str(target / "logs")], env, target)
    shutil.copyfile(dbt.ensure_manifest(settings), target / "manifest.json")
    return target / "index.html"


def _holding(command: Callable[[argparse.Namespace, contextlib.ExitStack], None]):
    """A command given an exit stack for what it holds until it returns (the pipeline lock)."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> None:
        with contextlib.ExitStack() as held:
            command(args, held)

    return run


@_holding
def cmd_demo(args: argparse.Namespace, held: contextlib.ExitStack) -> None:
    from winback import generator, warehouse

    settings = get_settings()
    config = generator.GeneratorConfig(seed=args.seed, target_lines=args.lines, as_of=args.as_of)
    progress = Progress(5 + args.days)  # setup, generate, first night, nights, quarterly, docs
    progress.step("start the embedded warehouse, bootstrap it, prepare Airflow", lambda: _setup(settings, held, "demo"))
    primed = start_priming(settings)
    progress.step(f"generate a demo sales system (~{args.lines:,} lines up to {args.as_of})",
                  lambda: generator.generate_source(config, warehouse.source_dsn(settings), settings.landing))
    progress.step(f"nightly extract for {args.as_of}", lambda: run_nightly(args.as_of, settings))
    for offset in range(1, args.days + 1):
        day = args.as_of + dt.timedelta(days=offset)

        def next_night(day: dt.date = day) -> None:
            generator.advance_one_day(config, warehouse.source_dsn(settings), settings.landing, day)
            run_nightly(day, settings)

        progress.step(f"the sales system advances to {day}; nightly extract", next_night)
    _analyse(settings, progress, primed, reason="demo: first publication")


def _analyse(settings: Settings, progress: Progress, primed: Callable[[], None], reason: str) -> None:
    """After the extract: the quarterly DAG (its dbt build is the marts DAG's and the KPI
    models, for the same as-of date: running the marts DAG first built the marts twice),
    the gate and publication; the docs; then where it all is. A deployment runs the marts
    DAG every night on the raw Assets, the quarterly DAG once a quarter. ``primed`` waits
    for the dbt parse :func:`start_priming` began."""
    primed()
    progress.step("quarterly DAG: dbt staging -> intermediate -> marts -> BI views -> KPI staging "
                  "(one Airflow task per model), quality gate, publish every closed quarter, report",
                  lambda: run_quarterly(settings, {"backfill": True, "reason": reason}))
    docs = progress.step("dbt docs site", lambda: build_dbt_docs(settings))
    _print_results(settings)
    reports = sorted((settings.output_dir / "reports").glob("*.html"))
    print(f"dbt docs:  {docs}")
    print(f"Data Docs: {settings.output_dir / 'data_docs' / 'index.html'}  (quality-gate results)")
    if reports:
        print(f"Report:    {reports[-1]}  (latest published quarter; {len(reports)} reports in that folder)")


def _check_as_of(as_of: dt.date, settings: Settings) -> None:
    """The as-of date is neither after today in the business time zone nor before the DAGs' start."""
    from winback.dag_policy import START_DATE
    from winback.extract.preflight import check_as_of

    check_as_of(as_of, settings.timezone, earliest=START_DATE.date())


@_holding
def cmd_run(args: argparse.Namespace, held: contextlib.ExitStack) -> None:
    from winback.extract.preflight import check_landing

    os.environ["WINBACK_SALES_SOURCE"] = "files"
    os.environ["WINBACK_LANDING_URL"] = args.landing
    os.environ["WINBACK_AS_OF_DATE"] = args.as_of.isoformat()
    settings = get_settings()
    # Before anything is written (no warehouse, no Airflow home): the date and the folder.
    _check_as_of(args.as_of, settings)
    check_landing(args.landing, allow_empty=args.allow_empty)
    progress = Progress(4)
    progress.step("prepare the warehouse and Airflow", lambda: _setup(settings, held, "run"))
    primed = start_priming(settings)
    progress.step(f"extract every file in {args.landing} for {args.as_of}", lambda: run_nightly(args.as_of, settings))
    _analyse(settings, progress, primed, reason=f"own data from {args.landing} as of {args.as_of}")


@_holding
def cmd_extract(args: argparse.Namespace, held: contextlib.ExitStack) -> None:
    settings = get_settings()
    _check_as_of(args.as_of, settings)
    _setup(settings, held, "extract")
    run_nightly(args.as_of, settings)
    _print_results(settings)


def cmd_bootstrap(args: argparse.Namespace) -> None:
    from winback import warehouse

    settings = get_settings()
    warehouse.bootstrap(warehouse.warehouse_dsn(settings))
    print("warehouse bootstrapped: schemas raw, audit, staging, intermediate, marts, kpi_staging, reporting")


def cmd_status(args: argparse.Namespace) -> None:
    _print_results(get_settings(), limit=args.limit)


def cmd_publish(args: argparse.Namespace) -> None:
    from winback import warehouse
    from winback.publish import PublishError, publish_quarter
    from winback.quality import run_gate

    dsn = warehouse.warehouse_dsn(get_settings())
    with warehouse.connect(dsn) as conn:
        if conn.execute("select to_regclass('kpi_staging.kpi_quarterly')").fetchone()[0] is None:
            raise PublishError("kpi_staging.kpi_quarterly does not exist: build the dbt project first")
        staged_as_of = conn.execute("select max(as_of_date) from kpi_staging.kpi_quarterly").fetchone()[0]
        latest = conn.execute("select max(version) from reporting.kpi_publications where quarter_start = %s",
                              (args.quarter,)).fetchone()[0]
    as_of = args.as_of or staged_as_of
    if as_of is None:
        raise PublishError("kpi_staging.kpi_quarterly is empty: build the dbt project first")
    gate = run_gate(dsn, "kpi", as_of, args.quarter, run_id="cli").raise_for_failure()
    version = publish_quarter(dsn, args.quarter, gate.validation_id, args.reason)
    if version == latest:
        print(f"quarter {args.quarter}: figures identical to published version {version}; nothing new published "
              f"(validation {gate.validation_id})")
    else:
        print(f"quarter {args.quarter}: published version {version} (validation {gate.validation_id}, "
              f"data as of {as_of})")
    if gate.failed_warning:
        print(f"  gate warnings: {', '.join(gate.failed_warning)}")
    if gate.data_docs_path:
        print(f"  check report: {gate.data_docs_path}")


def cmd_waive(args: argparse.Namespace) -> None:
    from winback import warehouse
    from winback.quality import waivers

    with warehouse.connect(warehouse.warehouse_dsn(get_settings())) as conn:
        waiver = waivers.give(conn, args.check, args.reason, as_of=args.as_of, quarter_start=args.quarter,
                              valid_days=args.valid_days)
    print(f"{waiver.check_name}: {waiver.describe()}")
    print("  the next gate run in that scope records the check as a waived warning "
          "(audit.validation_results.waived, Data Docs, winback status, the report)")


def cmd_report(args: argparse.Namespace) -> None:
    from winback import warehouse
    from winback.report import render_report

    settings = get_settings()
    out_dir = args.out or settings.output_dir / "reports"
    html = render_report(warehouse.warehouse_dsn(settings), args.quarter, out_dir, pdf=not args.no_pdf)
    print(f"report: {html}")
    pdf = html.with_suffix(".pdf")
    if pdf.is_file():
        print(f"pdf:    {pdf}")
    elif not args.no_pdf:
        print("pdf:    not written (no PDF engine: install WeasyPrint or Chromium)")


def cmd_compare_signals(args: argparse.Namespace) -> None:
    import psycopg

    from winback import warehouse
    from winback.analytics import signal_comparison

    with psycopg.connect(warehouse.warehouse_dsn(get_settings())) as conn:
        if conn.execute("select to_regclass('intermediate.int_early_warning_backtest_clients')").fetchone()[0] is None:
            raise SystemExit("error: the backtest is not built yet: run the winback_quarterly_kpis DAG "
                             "(dbt build --select tag:quarterly) first")
        results = signal_comparison.compare(conn)
    if not results:
        print("no quarter has a complete backtest horizon yet: nothing to compare")
        return
    print(signal_comparison.format_table(results))


def _print_gate_and_publications(conn, limit: int) -> None:
    """The last quality-gate runs and the published quarter versions (winback status)."""
    gates = conn.execute(
        """select created_at, suite, as_of, quarter_start, success, failed_blocking, failed_warning, validation_id
           from audit.validation_results order by created_at desc limit %s""", (limit,)).fetchall()
    publications = conn.execute(
        """select quarter_start, version, published_at, validation_id, reason
           from reporting.kpi_publications order by published_at desc, quarter_start desc limit %s""",
        (limit,)).fetchall()
    print("\nLatest quality-gate runs (audit.validation_results):")
    if not gates:
        print("  none yet")
    for created, suite, as_of, quarter, success, blocking, warning, validation in gates:
        verdict = "FAILED" if not success else ("passed*" if warning else "passed")
        failed = ", ".join(blocking) if blocking else (", ".join(warning) if warning else "")
        print(f"  {created:%Y-%m-%d %H:%M} {suite:4} as of {as_of!s:10} quarter {quarter or '-'!s:10} "
              f"{verdict:8} {validation}  {failed}")
    if any(row[6] for row in gates):
        print("  (* passed with warnings)")
    from winback.quality import waivers

    given = waivers.recent(conn, limit)
    print("\nWaivers (audit.waivers):")
    if not given:
        print("  none")
    now = dt.datetime.now(dt.UTC)
    for waiver in given:
        print(f"  {waiver.check_name}: {waiver.describe()[:140]}{'' if waiver.expires_at > now else ' (expired)'}")
    print("\nPublished quarter versions (reporting.kpi_publications):")
    if not publications:
        print("  none yet")
    for quarter, version, published, validation, reason in publications:
        print(f"  {quarter!s:10} v{version:<3} {published:%Y-%m-%d %H:%M} validation {validation}  {reason[:60]}")


def _print_results(settings: Settings, limit: int = 8) -> None:
    from winback import warehouse

    dsn = warehouse.warehouse_dsn(settings)
    with warehouse.connect(dsn) as conn:
        loads = conn.execute(
            """select load_id, logical_date, entity, source_kind, status, rows_read, rows_inserted,
                      rows_updated, rows_quarantined, coalesce(message, '')
               from audit.load_runs order by load_id desc limit %s""", (limit,)).fetchall()
        counts = conn.execute(
            """select (select count(*) from raw.sales_lines), (select count(*) from raw.clients),
                      (select count(*) from raw.contacts), (select count(*) from audit.quarantine)""").fetchone()
        _print_gate_and_publications(conn, limit)
    print("\nLatest loads (audit.load_runs):")
    print(f"  {'id':>4} {'as of':10} {'entity':12} {'kind':5} {'status':8} {'read':>9} {'new':>9} "
          f"{'updated':>8} {'quarant.':>8}")
    for row in loads:
        print(f"  {row[0]:>4} {row[1]!s:10} {row[2]:12} {row[3]:5} {row[4]:8} {row[5]:>9,} {row[6]:>9,} "
              f"{row[7]:>8,} {row[8]:>8,}  {row[9][:60]}")
    print(f"\nRaw layer: {counts[0]:,} sales lines, {counts[1]:,} clients, {counts[2]:,} contacts; "
          f"{counts[3]:,} rows in audit.quarantine")
    print(f"Warehouse: {dsn}")
    print("  inspect with: winback status, or psql on that URI (schemas raw, audit, marts, reporting)")
    print(f"Outputs:   {settings.output_dir}")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


def _quarter(text: str) -> dt.date:
    day = _date(text)
    if not calendar.is_quarter_start(day):
        raise argparse.ArgumentTypeError(f"{text} is not the first day of a calendar quarter "
                                         f"(e.g. {calendar.quarter_of(day)})")
    return day


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="winback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate a demo seller and run the whole pipeline")
    demo.add_argument("--lines", type=int, default=60_000, help="sales lines to generate (default 60000)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--as-of", type=_date, default=dt.date(2025, 6, 30), help="first as-of date")
    demo.add_argument("--days", type=int, default=2, help="further nights to simulate (default 2)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run the pipeline on your own export folder")
    run.add_argument("--landing", required=True, help="folder or fsspec URL with <entity>*.csv|parquet files")
    run.add_argument("--as-of", type=_date, required=True,
                     help="the date the data describes (any past date; not after today in WINBACK_TIMEZONE)")
    run.add_argument("--allow-empty", action="store_true",
                     help="accept a sales_lines file with a header and no rows (an expected empty delivery)")
    run.set_defaults(func=cmd_run)

    extract = sub.add_parser("extract", help="run one nightly extract (a real Airflow DAG run)")
    extract.add_argument("--as-of", type=_date, required=True)
    extract.set_defaults(func=cmd_extract)

    sub.add_parser("bootstrap", help="create or upgrade the warehouse schemas and roles").set_defaults(
        func=cmd_bootstrap)
    status = sub.add_parser("status", help="show the last loads and gate results")
    status.add_argument("--limit", type=int, default=12)
    status.set_defaults(func=cmd_status)

    publish = sub.add_parser("publish", help="run the kpi quality gate for a quarter and publish it")
    publish.add_argument("--quarter", type=_quarter, required=True, help="first day of the quarter (YYYY-MM-DD)")
    publish.add_argument("--reason", required=True, help="why: 'quarterly publication', 'correction of ...'")
    publish.add_argument("--as-of", type=_date, default=None,
                         help="as-of date of the staged KPIs (default: the one dbt built them for)")
    publish.set_defaults(func=cmd_publish)

    waive = sub.add_parser("waive", help="accept a failed blocking check for one as-of date or quarter, with a reason")
    waive.add_argument("check", help="the check's name, e.g. sales_lines.daily_volume (winback status lists failures)")
    scope = waive.add_mutually_exclusive_group(required=True)
    scope.add_argument("--as-of", type=_date, default=None, help="the as-of date it applies to (raw checks)")
    scope.add_argument("--quarter", type=_quarter, default=None, help="the quarter it applies to (kpi checks)")
    waive.add_argument("--reason", required=True, help="why the failure is accepted (shown wherever the check is)")
    waive.add_argument("--valid-days", type=int, default=7, help="days the waiver holds (default 7)")
    waive.set_defaults(func=cmd_waive)

    report = sub.add_parser("report", help="render a published quarter as HTML (and PDF when possible)")
    report.add_argument("--quarter", type=_quarter, required=True, help="first day of the quarter (YYYY-MM-DD)")
    report.add_argument("--out", type=Path, default=None, help="output folder (default: <output_dir>/reports)")
    report.add_argument("--no-pdf", action="store_true", help="write the HTML only")
    report.set_defaults(func=cmd_report)

    sub.add_parser("compare-signals", help="backtest the early-warning list's rhythm rules against BG/NBD's "
                                           "probability alive, quarter by quarter").set_defaults(
        func=cmd_compare_signals)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # DAG runs started from the CLI run in this process: retry quickly rather than after
    # the scheduler's backoff, so a failure is reported in seconds.
    os.environ.setdefault("WINBACK_RETRY_DELAY_SECONDS", "1")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI's one place that turns errors into a line and a hint
        if args.debug:
            raise
        name = type(exc).__name__
        print(f"error: {exc}", file=sys.stderr)
        print(f"hint: {HINTS.get(name, 'run again with --debug for the traceback')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
