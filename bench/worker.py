"""Steps the harness runs in a child process: ``python -m bench.worker MODE --result FILE ...``.

A child process per step gives each step its own peak resident memory (the parent reads
it with ``os.wait4``) and keeps Airflow's and Great Expectations' global state out of the
harness. Each mode writes one JSON object to ``--result``; timings are taken inside the
child around the measured call only, so interpreter start-up and imports are not counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import AS_OF

# ----------------------------------------------------------------------------- extract phases


class Phases:
    """Wall time per extract phase, by wrapping winback's own functions in this process only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, phase: str) -> None:
        original = getattr(owner, name)
        seconds = self.seconds

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - started

        setattr(owner, name, timed)

    def wrap_iterator_factory(self, owner: Any, name: str, phase: str) -> None:
        """Time every ``next()`` of the iterators a function returns (reading, cutting)."""
        original = getattr(owner, name)
        seconds = self.seconds

        def timed_iter(iterator):
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    seconds[phase] += time.perf_counter() - started
                    return
                seconds[phase] += time.perf_counter() - started
                yield item

        def factory(*args, **kwargs):
            return timed_iter(iter(original(*args, **kwargs)))

        setattr(owner, name, factory)


SLOW_STATEMENT_S = 0.25


def _instrument_statements(slow: list[dict[str, Any]]) -> None:
    """Record every statement of this process that takes longer than SLOW_STATEMENT_S."""
    import psycopg

    original = psycopg.Connection.execute

    def execute(self, query, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, query, *args, **kwargs)
        finally:
            seconds = time.perf_counter() - started
            if seconds >= SLOW_STATEMENT_S:
                text = query.as_string(self) if hasattr(query, "as_string") else str(query)
                slow.append({"seconds": round(seconds, 3), "sql": " ".join(text.split())[:300]})

    psycopg.Connection.execute = execute


def _instrument_explain(plans: list[dict[str, Any]]) -> None:
    """Profiling runs only: before each bulk statement of the loader (one that reads the
    temporary ``_landing`` / ``_incoming`` tables), run it once under
    ``EXPLAIN (ANALYZE, BUFFERS)`` inside a savepoint that is rolled back, then run it for real.
    The embedded server ships no auto_explain; this gives the same plans, at twice the cost."""
    import psycopg

    original = psycopg.Connection.execute

    def execute(self, query, *args, **kwargs):
        text = query.as_string(self) if hasattr(query, "as_string") else str(query)
        bulk = not self.autocommit and ("_landing" in text or "_incoming" in text) and \
            text.lstrip().lower().startswith(("with", "insert", "delete"))
        if bulk and not args and not kwargs:
            original(self, "savepoint bench_explain")
            plan = original(self, "explain (analyze, buffers, format json) " + text).fetchone()[0][0]
            original(self, "rollback to savepoint bench_explain")
            original(self, "release savepoint bench_explain")
            plans.append({"duration_ms": plan.get("Execution Time"), "query": " ".join(text.split())[:300],
                          "plan": plan})
        return original(self, query, *args, **kwargs)

    psycopg.Connection.execute = execute


def _instrument_extract() -> Phases:
    import psycopg

    import winback.extract as extract
    from winback.extract import audit, bulk_load, sources, staged, upsert

    phases = Phases()
    phases.wrap(extract, "file_checksum", "checksum (sha256 of the file)")
    phases.wrap_iterator_factory(sources, "record_chunks", "read + cut into chunks")
    phases.wrap(staged, "copy_chunk", "COPY into the text landing table")
    phases.wrap(bulk_load.BulkPath, "start", "bulk path: key and indexes dropped")
    phases.wrap(bulk_load, "bulk_write", "bulk path: COPY into raw (waits for the checks)")
    phases.wrap(bulk_load.BulkPath, "finish", "bulk path: key and indexes built again")
    phases.wrap(staged, "move", "validate + type + move to _incoming")
    phases.wrap(staged, "reject_duplicates", "duplicate keys check")
    phases.wrap(audit, "store_quarantine", "quarantine insert")
    phases.wrap(upsert, "upsert", "upsert into raw (by key)")
    phases.wrap(upsert, "count_unknown_keys", "unknown client ids")
    phases.wrap(audit, "record_landed_files", "landed files + watermark")
    phases.wrap(audit, "advance_watermark", "landed files + watermark")
    phases.wrap(psycopg.Connection, "commit", "commit")
    return phases


def _phase_table(phases: Phases, total: float) -> dict[str, float]:
    s = dict(phases.seconds)
    s["other (audit rows, temp tables, connect)"] = max(total - sum(s.values()), 0.0)
    return {k: round(v, 3) for k, v in s.items()}


def mode_extract(args: argparse.Namespace) -> dict[str, Any]:
    from winback.config import get_settings
    from winback.extract import extract_entity

    phases = _instrument_extract()
    slow: list[dict[str, Any]] = []
    _instrument_statements(slow)
    plans: list[dict[str, Any]] = []
    if args.explain:
        _instrument_explain(plans)
    settings = get_settings(warehouse_url=args.warehouse, source_url=args.source or None,
                            landing_url=args.landing, sales_source=args.kind, timezone="UTC",
                            bulk_load=not args.no_bulk)
    as_of = dt.date.fromisoformat(args.as_of)
    results = {}
    started_all = time.perf_counter()
    for entity in args.entities.split(","):
        phases.seconds.clear()
        slow.clear()
        plans.clear()
        started = time.perf_counter()
        result = extract_entity(entity, as_of=as_of, settings=settings, dag_run_id="bench")
        seconds = time.perf_counter() - started
        results[entity] = {"seconds": round(seconds, 3), "rows_read": result.rows_read,
                           "deliveries": result.deliveries,
                           "rows_inserted": result.rows_inserted, "rows_updated": result.rows_updated,
                           "rows_quarantined": result.rows_quarantined, "phases": _phase_table(phases, seconds),
                           "slow_statements": list(slow), "plans": list(plans)}
    return {"entities": results, "seconds": round(time.perf_counter() - started_all, 3)}


# ----------------------------------------------------------------------------- generator
def _config(lines: int):
    from winback.generator import GeneratorConfig

    return GeneratorConfig(target_lines=lines, as_of=AS_OF)


def _summary(summary) -> dict[str, Any]:
    return {"seconds": summary.seconds, "sales_lines": summary.sales_lines, "clients": summary.clients,
            "contacts": summary.contacts, "managers": summary.managers, "corrections": summary.corrections,
            "as_of": summary.as_of.isoformat(), "files": len(summary.files)}


def mode_gen_source(args: argparse.Namespace) -> dict[str, Any]:
    from winback.generator import generate_source

    return _summary(generate_source(_config(args.lines), args.source, args.landing))


def mode_gen_files(args: argparse.Namespace) -> dict[str, Any]:
    from winback.generator import write_files

    return _summary(write_files(_config(args.lines), args.landing, layout="single"))


def mode_gen_advance(args: argparse.Namespace) -> dict[str, Any]:
    from winback.generator import advance_one_day

    return _summary(advance_one_day(_config(args.lines), args.source, args.landing, dt.date.fromisoformat(args.day)))


def mode_idle(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg  # noqa: F401

    import winback.extract  # noqa: F401
    import winback.generator  # noqa: F401

    return {}


# ----------------------------------------------------------------------------- Airflow
def _prepare_airflow() -> None:
    from winback.orchestration import prepare_airflow

    prepare_airflow()


def mode_dag_parse_cold(args: argparse.Namespace) -> dict[str, Any]:
    """One parse of one DAG file in a fresh process where Airflow is already imported (as in
    Airflow's DAG processor, which pre-imports Airflow but not the file's other imports)."""
    _prepare_airflow()
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=args.file)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "dags": sorted(bag.dag_ids), "import_errors": {k: str(v)[-500:]
                                                                           for k, v in bag.import_errors.items()}}


def mode_dag_parse_warm(args: argparse.Namespace) -> dict[str, Any]:
    """The first parse of a file in this process, then ``--repeats`` re-parses (imports cached)."""
    _prepare_airflow()
    from airflow.dag_processing.dagbag import DagBag

    times = []
    for _ in range(args.repeats + 1):
        started = time.perf_counter()
        bag = DagBag(dag_folder=args.file)
        times.append(time.perf_counter() - started)
        if bag.import_errors:
            return {"import_errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}}
    return {"first": times[0], "warm": times[1:], "warm_median": statistics.median(times[1:])}


def mode_dag_run(args: argparse.Namespace) -> dict[str, Any]:
    _prepare_airflow()
    from winback.config import get_settings
    from winback.orchestration import logical_date_for, run_dag

    as_of = dt.date.fromisoformat(args.as_of)
    logical = logical_date_for(as_of, get_settings())
    started = time.perf_counter()
    run = run_dag(args.dag_id, logical, conf={"as_of": as_of.isoformat()})
    wall = time.perf_counter() - started
    tasks = []
    for ti in run.get_task_instances():
        tasks.append({"task_id": ti.task_id, "state": str(ti.state), "duration": ti.duration,
                      "operator": ti.operator})
    return {"wall": wall, "state": str(run.state), "tasks": tasks,
            "run_start": run.start_date.isoformat() if run.start_date else None,
            "run_end": run.end_date.isoformat() if run.end_date else None}


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM of its own address space).

    Not ``ru_maxrss``: Linux carries the parent's high-water mark over a fork/vfork + exec
    into the child's ``ru_maxrss``, so a child of a large parent would report the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


MODES = {
    "extract": mode_extract,
    "gen-source": mode_gen_source,
    "gen-files": mode_gen_files,
    "gen-advance": mode_gen_advance,
    "idle": mode_idle,
    "dag-parse-cold": mode_dag_parse_cold,
    "dag-parse-warm": mode_dag_parse_warm,
    "dag-run": mode_dag_run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--lines", type=int)
    parser.add_argument("--source")
    parser.add_argument("--warehouse")
    parser.add_argument("--landing")
    parser.add_argument("--kind", choices=("files", "sql"))
    parser.add_argument("--entities")
    parser.add_argument("--as-of")
    parser.add_argument("--day")
    parser.add_argument("--file")
    parser.add_argument("--dag-id", default="winback_marts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-bulk", action="store_true", help="extract: no bulk path (every load stages)")
    parser.add_argument("--explain", action="store_true",
                        help="extract: EXPLAIN ANALYZE the loader's bulk statements (profiling runs only)")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = MODES[args.mode](args)
    result["vm_hwm_mb"] = peak_rss_mb()
    args.result.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
