"""``winback``: the one entry point for what people run by hand.

    winback demo                 generate a demo seller and run the whole pipeline
    winback run --landing DIR    run the pipeline on your own export folder
    winback extract --as-of D    one nightly extract (a real Airflow DAG run)
    winback bootstrap            create/upgrade the warehouse schemas and roles
    winback status               the last loads and quality-gate results

Errors print one line and a hint; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable

from winback.config import Settings, get_settings

HINTS = {
    "ConfigError": "check the WINBACK_* environment variables or winback.toml (see README: Configuration)",
    "WarehouseError": "is the warehouse reachable? unset AIRFLOW_CONN_WAREHOUSE to use the embedded one",
    "DeliveryRejected": "fix the named file or table (see audit.load_runs) and run again",
    "QuarantineLimitExceeded": "inspect audit.quarantine; raise WINBACK_QUARANTINE_MAX_SHARE only if the rows are expected",
    "SourceError": "check the source connection (AIRFLOW_CONN_SALES_SOURCE) or the landing folder",
    "DagRunFailed": "see the task log above; audit.load_runs and audit.quarantine say what was loaded",
}


class DagRunFailed(RuntimeError):
    pass


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


def _setup(settings: Settings) -> None:
    """Resolve the warehouse (embedded by default), bootstrap it, point Airflow at the project."""
    from winback import orchestration, warehouse

    warehouse.export_connections(settings)
    warehouse.bootstrap(warehouse.warehouse_dsn(settings))
    orchestration.prepare_airflow(settings)


def run_nightly(as_of: dt.date, settings: Settings) -> None:
    """One nightly extract for ``as_of`` as a real Airflow DAG run."""
    from winback import orchestration

    logical = orchestration.logical_date_for(as_of, settings)
    run = orchestration.run_dag("winback_nightly_extract", logical)
    if str(run.state) != "success":
        raise DagRunFailed(f"winback_nightly_extract for {as_of} ended {run.state}")


def cmd_demo(args: argparse.Namespace) -> None:
    from winback import generator, warehouse

    settings = get_settings()
    config = generator.GeneratorConfig(seed=args.seed, target_lines=args.lines, as_of=args.as_of)
    progress = Progress(3 + args.days)
    progress.step("start the embedded warehouse, bootstrap it, prepare Airflow", lambda: _setup(settings))
    progress.step(f"generate a demo sales system (~{args.lines:,} lines up to {args.as_of})",
                  lambda: generator.generate_source(config, warehouse.source_dsn(settings), settings.landing))
    progress.step(f"nightly extract for {args.as_of}", lambda: run_nightly(args.as_of, settings))
    for offset in range(1, args.days + 1):
        day = args.as_of + dt.timedelta(days=offset)

        def next_night(day: dt.date = day) -> None:
            generator.advance_one_day(config, warehouse.source_dsn(settings), settings.landing, day)
            run_nightly(day, settings)

        progress.step(f"the sales system advances to {day}; nightly extract", next_night)
    _print_results(settings)


def cmd_run(args: argparse.Namespace) -> None:
    os.environ["WINBACK_SALES_SOURCE"] = "files"
    os.environ["WINBACK_LANDING_URL"] = args.landing
    os.environ["WINBACK_AS_OF_DATE"] = args.as_of.isoformat()
    settings = get_settings()
    progress = Progress(2)
    progress.step("prepare the warehouse and Airflow", lambda: _setup(settings))
    progress.step(f"extract every file in {args.landing} for {args.as_of}", lambda: run_nightly(args.as_of, settings))
    _print_results(settings)


def cmd_extract(args: argparse.Namespace) -> None:
    settings = get_settings()
    _setup(settings)
    run_nightly(args.as_of, settings)
    _print_results(settings)


def cmd_bootstrap(args: argparse.Namespace) -> None:
    from winback import warehouse

    settings = get_settings()
    warehouse.bootstrap(warehouse.warehouse_dsn(settings))
    print("warehouse bootstrapped: schemas raw, audit, staging, intermediate, marts, kpi_staging, reporting")


def cmd_status(args: argparse.Namespace) -> None:
    _print_results(get_settings(), limit=args.limit)


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
    run.add_argument("--as-of", type=_date, required=True, help="the date the data describes")
    run.set_defaults(func=cmd_run)

    extract = sub.add_parser("extract", help="run one nightly extract (a real Airflow DAG run)")
    extract.add_argument("--as-of", type=_date, required=True)
    extract.set_defaults(func=cmd_extract)

    sub.add_parser("bootstrap", help="create or upgrade the warehouse schemas and roles").set_defaults(
        func=cmd_bootstrap)
    status = sub.add_parser("status", help="show the last loads and gate results")
    status.add_argument("--limit", type=int, default=12)
    status.set_defaults(func=cmd_status)
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
