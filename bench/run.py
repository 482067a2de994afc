"""The benchmark harness: ``.venv/bin/python -m bench.run [--sizes S,M,L] [--repeats N] [--out BENCHMARKS.md]``.

Per size (S ~ 100k, M ~ 1M, L ~ 10M generated sales lines), on fresh databases of the
embedded PostgreSQL (dropped at the end), each figure next to a baseline measured in the
same run:

1. sales load: winback's extract of one sales_lines CSV vs plain COPY and pandas to_sql;
2. dbt: full refresh vs the nightly incremental run after one new day;
3. the nightly chain (extract of every entity -> dbt run -> raw quality gate), per step;
4. DAG file parse times, and Airflow + Cosmos overhead per model task (smallest size only);
5. peak resident memory of the extract and the generator.

See bench/README.md for the method; the results go to BENCHMARKS.md (and stdout).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench import baselines, dbt_runs, machine, report
from bench.common import AS_OF, EXTRACT_ORDER, ROOT, SIZES, Databases, log, median, repeat, run_worker, settle, timed

# The dbt measures' selection: the nightly marts DAG's models without its BI views (tag
# reporting, views that cost next to nothing), as measured since the first sessions. The DAG
# comparison (dag_overhead) uses the DAG's own selection, cosmos_config.MARTS_SELECT.
MARTS_SELECTION = ["tag:staging", "tag:intermediate", "tag:marts"]
# The full refreshes and the nights share one dbt target directory, as a deployment's runs
# share the project's: a night re-uses the partial parse the run before it left (with a
# target of its own, the first night parsed the whole project again: 1.8 s at L).
MARTS_TARGET = "marts"


class Bench:
    def __init__(self, admin_dsn: str, workdir: Path, repeats: int, budget: float, profile_size: str | None = None):
        self.admin = admin_dsn
        self.workdir = workdir
        self.repeats = repeats
        self.budget = budget
        self.profile_size = profile_size
        self.dbs = Databases(admin_dsn, "winback_bench")
        self.last_compiled: list[tuple[str, float, str, str]] = []
        self.as_of = AS_OF
        self.only_dbt = False  # --only-dbt: the dbt measures (full refresh, nights) without the load's

    # ------------------------------------------------------------------------- helpers
    def child(self, mode: str, args: list[str], tag: str, env: dict[str, str] | None = None):
        return run_worker(mode, args, env=env or {}, workdir=self.workdir / "logs", tag=tag)

    # ------------------------------------------------------------------------- one size
    def load_only(self, name: str, lines: int) -> dict[str, Any]:
        """Measure 1 alone (the sales load against COPY and to_sql, staged, with bad rows): the
        extract's goals, in minutes rather than the whole run's half hour."""
        base = self.workdir / name
        shutil.rmtree(base, ignore_errors=True)
        files_dir = base / "files"
        files_dir.mkdir(parents=True)
        log(f"{name}: writing ~{lines:,} generated sales lines as a single CSV file")
        gen_files = self.child("gen-files", ["--lines", str(lines), "--landing", str(files_dir)], f"{name}-gen-files")
        csv_file = files_dir / "sales_lines.csv"
        return {"size": name, "target_lines": lines, "csv_bytes": csv_file.stat().st_size,
                "generator": {"files": {**gen_files.result, "max_rss_mb": gen_files.max_rss_mb}},
                "load": self.load(name, csv_file, files_dir)}

    def size(self, name: str, lines: int, with_dag: bool, with_explain: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"size": name, "target_lines": lines}
        self.last_compiled = []
        base = self.workdir / name
        shutil.rmtree(base, ignore_errors=True)
        files_dir, landing_dir, target = base / "files", base / "landing", base / "dbt-target"
        files_dir.mkdir(parents=True)
        landing_dir.mkdir(parents=True)
        source = self.dbs.create(f"{name.lower()}_src")

        # -- the generator (and its peak memory)
        log(f"{name}: generating the sales system (~{lines:,} lines) into a source database")
        gen_source = self.child("gen-source", ["--lines", str(lines), "--source", source,
                                               "--landing", str(landing_dir)], f"{name}-gen-source")
        log(f"{name}: generated {gen_source.result['sales_lines']:,} lines in {gen_source.result['seconds']:.1f}s; "
            "writing the same data as single CSV files")
        gen_files = self.child("gen-files", ["--lines", str(lines), "--landing", str(files_dir)], f"{name}-gen-files")
        csv_file = files_dir / "sales_lines.csv"
        out["generator"] = {"source": {**gen_source.result, "max_rss_mb": gen_source.max_rss_mb},
                            "files": {**gen_files.result, "max_rss_mb": gen_files.max_rss_mb},
                            "csv_bytes": csv_file.stat().st_size}

        # -- 1. the sales load vs COPY and to_sql (skipped by --only-dbt)
        if not self.only_dbt:
            out["load"] = self.load(name, csv_file, files_dir)

        # -- 2 + 3. full refresh, then nightly runs
        warehouse = self.dbs.create(f"{name.lower()}_wh", bootstrap=True)
        log(f"{name}: initial extract of every entity from the source database (SQL mode)")
        initial = self.child("extract", ["--kind", "sql", "--entities", ",".join(EXTRACT_ORDER),
                                         "--as-of", self.as_of.isoformat(), "--warehouse", warehouse,
                                         "--source", source, "--landing", str(landing_dir)], f"{name}-extract-initial")
        out["initial_extract"] = {**initial.result, "max_rss_mb": initial.max_rss_mb}
        out["dbt_fixed"] = dbt_runs.dbt(["run", "--select", "bench_selects_nothing"], warehouse,
                                        self.as_of.isoformat(), target / "fixed")
        out["dbt_fixed"].pop("nodes")

        def full_refresh(i: int) -> dict[str, Any]:
            settled = settle(warehouse, source)
            log(f"{name}: dbt run --full-refresh ({i + 1}), after a vacuum of {settled:.1f}s")
            run = dbt_runs.dbt(["run", "--full-refresh", "--select", *MARTS_SELECTION], warehouse,
                               self.as_of.isoformat(), target / MARTS_TARGET)
            if run["error"]:
                raise RuntimeError(f"dbt full refresh failed: {run['error']}")
            log(f"{name}: full refresh {run['wall']:.1f}s")
            return {**run, "settle_s": settled}

        fulls = repeat(full_refresh, self.repeats, self.budget, f"{name} full refresh")
        out["full_refresh"] = [_strip(r) for r in fulls]
        out["full_refresh_slowest"] = dbt_runs.slowest(fulls[-1])

        settings = _settings(warehouse, source, landing_dir)
        nights = repeat(lambda i: self.night(name, lines, i, settings, source, landing_dir, warehouse, target),
                        self.repeats, self.budget, f"{name} nightly chain")
        out["nights"] = nights
        last_day = self.as_of + dt.timedelta(days=len(nights))
        out["incremental_slowest"] = nights[-1]["dbt_slowest"]
        log(f"{name}: the quarterly DAG's KPI models (dbt run --select tag:kpi)")
        out["kpi_build"] = _strip(dbt_runs.dbt(["run", "--select", "tag:kpi"], warehouse, last_day.isoformat(),
                                               target / "kpi"))

        if with_dag:
            out["dag_overhead"] = self.dag_overhead(name, warehouse, source, last_day, target)
        if with_explain:
            out["explain"] = self.explain(warehouse, self.last_compiled)
            out["incremental_profile"] = self.profile_night(name, lines, last_day + dt.timedelta(days=1), settings,
                                                            source, landing_dir, warehouse, target,
                                                            nights[-1]["incremental_order"])
        return out

    def load(self, name: str, csv_file: Path, files_dir: Path) -> dict[str, Any]:
        scratch = self.dbs.create(f"{name.lower()}_base")

        def one_round(i: int) -> dict[str, Any]:
            warehouse = self.dbs.create(f"{name.lower()}_load", bootstrap=True)
            try:
                log(f"{name}: load round {i + 1}: winback extract of {csv_file.name}")
                extract = self.child("extract", ["--kind", "files", "--entities", "sales_lines",
                                                 "--as-of", self.as_of.isoformat(), "--warehouse", warehouse,
                                                 "--landing", str(files_dir)], f"{name}-extract-file-{i}")
            finally:
                self.dbs.drop(warehouse)
            entity = extract.result["entities"]["sales_lines"]
            log(f"{name}: load round {i + 1}: plain COPY, then pandas to_sql")
            copy = baselines.plain_copy(scratch, csv_file)
            to_sql = baselines.pandas_to_sql(scratch, csv_file)
            result = {"extract": {**entity, "rows_per_s": entity["rows_read"] / entity["seconds"],
                                  "max_rss_mb": extract.max_rss_mb},
                      "copy": copy, "to_sql": to_sql}
            log(f"{name}: extract {result['extract']['rows_per_s']:,.0f} rows/s, COPY {copy['rows_per_s']:,.0f}, "
                f"to_sql {to_sql['rows_per_s']:,.0f}")
            if copy["rows"] != entity["rows_read"]:
                raise RuntimeError(f"COPY loaded {copy['rows']} rows, the extract read {entity['rows_read']}")
            return result

        rounds = repeat(one_round, self.repeats, self.budget, f"{name} load")
        self.dbs.drop(scratch)
        out: dict[str, Any] = {"rounds": rounds}
        # The same first load with the bulk path off: what every later load (rows next to a
        # filled table) pays per row, through the landing table and the SQL checks.
        warehouse = self.dbs.create(f"{name.lower()}_load", bootstrap=True)
        try:
            log(f"{name}: one more extract of {csv_file.name}, bulk path off (every load stages)")
            staged = self.child("extract", ["--kind", "files", "--entities", "sales_lines", "--as-of",
                                            self.as_of.isoformat(), "--warehouse", warehouse, "--landing",
                                            str(files_dir), "--no-bulk"], f"{name}-extract-file-staged")
        finally:
            self.dbs.drop(warehouse)
        entity = staged.result["entities"]["sales_lines"]
        out["staged"] = {**entity, "rows_per_s": entity["rows_read"] / entity["seconds"]}
        # And the first load of the same file with one row in 1,000 not a number: the bad rows
        # are quarantined, the others still go straight into raw.
        dirty_dir = files_dir.parent / "files-with-bad-rows"
        dirty_dir.mkdir(exist_ok=True)
        spoiled = baselines.with_bad_rows(csv_file, dirty_dir / csv_file.name)
        warehouse = self.dbs.create(f"{name.lower()}_load", bootstrap=True)
        try:
            log(f"{name}: one more extract, with {spoiled:,} bad rows in the file")
            dirty = self.child("extract", ["--kind", "files", "--entities", "sales_lines", "--as-of",
                                           self.as_of.isoformat(), "--warehouse", warehouse, "--landing",
                                           str(dirty_dir)], f"{name}-extract-file-bad-rows",
                               env={"WINBACK_QUARANTINE_MAX_SHARE": "0.01"})
        finally:
            self.dbs.drop(warehouse)
            shutil.rmtree(dirty_dir, ignore_errors=True)
        entity = dirty.result["entities"]["sales_lines"]
        if entity["rows_quarantined"] != spoiled:
            raise RuntimeError(f"{entity['rows_quarantined']} rows quarantined, {spoiled} were spoiled")
        out["with_bad_rows"] = {**entity, "rows_per_s": entity["rows_read"] / entity["seconds"]}
        if name == self.profile_size:
            from winback.config import Settings

            out["profile"] = self.profile_extract(name, files_dir)
            out["default_chunk_bytes"] = Settings.model_fields["chunk_bytes"].default
            out["chunk_sweep"] = self.chunk_sweep(name, files_dir)
        return out

    def chunk_sweep(self, name: str, files_dir: Path) -> list[dict[str, Any]]:
        """The extract's peak memory and time with other WINBACK_CHUNK_BYTES (the default, 1 MB,
        is the timed rounds' figure): does the peak follow the chunk size or the file size?"""
        sweep = []
        for chunk_mb in (8, 32):
            warehouse = self.dbs.create(f"{name.lower()}_chunk", bootstrap=True)
            try:
                log(f"{name}: extract with WINBACK_CHUNK_BYTES = {chunk_mb} MB (memory sensitivity)")
                child = self.child("extract", ["--kind", "files", "--entities", "sales_lines",
                                               "--as-of", self.as_of.isoformat(), "--warehouse", warehouse,
                                               "--landing", str(files_dir)], f"{name}-extract-chunk-{chunk_mb}",
                                   env={"WINBACK_CHUNK_BYTES": str(chunk_mb << 20)})
            finally:
                self.dbs.drop(warehouse)
            entity = child.result["entities"]["sales_lines"]
            sweep.append({"chunk_mb": chunk_mb, "max_rss_mb": child.max_rss_mb, "seconds": entity["seconds"]})
        return sweep

    def profile_extract(self, name: str, files_dir: Path) -> list[dict[str, Any]]:
        """One extra, untimed extract on the staged path (bulk path off) whose set-based statements
        run under EXPLAIN ANALYZE first."""
        warehouse = self.dbs.create(f"{name.lower()}_prof", bootstrap=True)
        try:
            log(f"{name}: profiling run of the staged extract (EXPLAIN ANALYZE of its statements; not timed)")
            child = self.child("extract", ["--kind", "files", "--entities", "sales_lines", "--explain", "--no-bulk",
                                           "--as-of", self.as_of.isoformat(), "--warehouse", warehouse,
                                           "--landing", str(files_dir)], f"{name}-extract-profile")
        finally:
            self.dbs.drop(warehouse)
        # The loader runs some statements once per chunk: one entry per statement text, summed.
        by_query: dict[str, dict[str, Any]] = {}
        for plan in child.result["entities"]["sales_lines"]["plans"]:
            entry = by_query.setdefault(plan["query"], {"query": plan["query"][:160], "execution_ms": 0.0,
                                                        "runs": 0, "nodes": {}})
            entry["runs"] += 1
            entry["execution_ms"] += plan["duration_ms"] or 0.0
            for node in dbt_runs.top_nodes(plan["plan"]["Plan"], 4):
                total = entry["nodes"].setdefault(node["node"], {**node, "exclusive_ms": 0.0, "rows": 0})
                total["exclusive_ms"] += node["exclusive_ms"]
                total["rows"] += node["rows"] or 0
                total["spills_to_disk"] = total["spills_to_disk"] or node["spills_to_disk"]
        profiles = [{"query": e["query"], "execution_ms": e["execution_ms"], "runs": e["runs"],
                     "top_nodes": sorted(e["nodes"].values(), key=lambda n: n["exclusive_ms"], reverse=True)[:4]}
                    for e in by_query.values()]
        profiles.sort(key=lambda p: p["execution_ms"], reverse=True)
        return profiles

    def night(self, name: str, lines: int, index: int, settings, source: str, landing: Path, warehouse: str,
              target: Path) -> dict[str, Any]:
        from winback.extract import extract_entity
        from winback.quality import run_gate

        day = self.as_of + dt.timedelta(days=index + 1)
        log(f"{name}: night {index + 1}: the source advances to {day}")
        advance = self.child("gen-advance", ["--lines", str(lines), "--source", source, "--landing", str(landing),
                                             "--day", day.isoformat()], f"{name}-advance-{index}")
        settled = settle(warehouse, source)  # the day between two nights; not part of the chain
        steps: dict[str, float] = {}
        rows: dict[str, int] = {}
        for entity in EXTRACT_ORDER:
            seconds, result = timed(lambda entity=entity: extract_entity(entity, as_of=day, settings=settings,
                                                                         dag_run_id="bench"))
            steps[f"extract {entity}"] = seconds
            rows[entity] = result.rows_read
        run = dbt_runs.dbt(["run", "--select", *MARTS_SELECTION], warehouse, day.isoformat(), target / MARTS_TARGET)
        if run["error"]:
            raise RuntimeError(f"nightly dbt run failed: {run['error']}")
        steps["dbt run"] = run["wall"]
        seconds, gate = timed(lambda: run_gate(warehouse, "raw", day, run_id=f"bench-{name}-{index}"))
        steps["raw gate"] = seconds
        total = sum(steps.values())
        log(f"{name}: night {index + 1}: chain {total:.1f}s (" + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
            + ")")
        # EXPLAIN candidates: the slowest models. An incremental model's SQL, re-run after its run,
        # finds no new rows: its plan then shows the fixed cost of looking for them.
        top = sorted((n for n in run["nodes"] if n["compiled"]), key=lambda n: n["seconds"], reverse=True)[:3]
        self.last_compiled = [(n["id"].split(".")[-1], n["seconds"], n["compiled"], n["materialized"]) for n in top]
        by_kind: dict[str, list[float]] = {}
        for node in run["nodes"]:
            if node["id"].startswith("model."):
                entry = by_kind.setdefault(node["materialized"] or "?", [0, 0.0])
                entry[0] += 1
                entry[1] += node["seconds"]
        incremental_order = [n["id"].split(".")[-1] for n in run["nodes"] if n["materialized"] == "incremental"]
        return {"day": day.isoformat(), "steps": steps, "total": total, "rows_read": rows, "settle_s": settled,
                "dbt_by_materialization": by_kind, "incremental_order": incremental_order,
                "advance": {**advance.result, "max_rss_mb": advance.max_rss_mb},
                "dbt_elapsed": run["dbt_elapsed"], "dbt_model_seconds": dbt_runs.node_seconds(run),
                "dbt_slowest": dbt_runs.slowest(run),
                "gate": {"success": gate.success, "failed_blocking": gate.failed_blocking,
                         "failed_warning": gate.failed_warning, "evaluated": gate.evaluated}}

    # ------------------------------------------------------------------------- Airflow
    def dag_overhead(self, name: str, warehouse: str, source: str, day: dt.date, target: Path) -> dict[str, Any]:
        from winback.cosmos_config import MARTS_SELECT
        from winback.dbt import PRODUCTION_BUILD_FLAGS
        from winback.warehouse import airflow_conn_uri

        log(f"{name}: dbt run / dbt build of the marts DAG's selection, then one winback_marts DAG run")
        select = ["--select", *MARTS_SELECT]
        run = dbt_runs.dbt(["run", *select], warehouse, day.isoformat(), target / "sel-run")
        build = dbt_runs.dbt(["build", *select, *PRODUCTION_BUILD_FLAGS], warehouse, day.isoformat(), target / "sel-build")
        env = {"WINBACK_WAREHOUSE_URL": warehouse, "WINBACK_SOURCE_URL": source,
               "AIRFLOW_CONN_WAREHOUSE": airflow_conn_uri(warehouse),
               "AIRFLOW_CONN_SALES_SOURCE": airflow_conn_uri(source)}
        dag = self.child("dag-run", ["--as-of", day.isoformat()], f"{name}-dag-run", env=env)
        tasks = dag.result["tasks"]
        model_tasks = [t for t in tasks if t["task_id"].endswith(".run") or t["task_id"].endswith("_run")]
        test_tasks = [t for t in tasks if t["task_id"].endswith(".test") or t["task_id"].endswith("_test")]
        states: dict[str, int] = {}
        for task in tasks:
            states[task["state"]] = states.get(task["state"], 0) + 1
        models_in_run = sum(1 for n in run["nodes"] if n["id"].startswith("model."))
        return {"day": day.isoformat(), "dag_wall": dag.result["wall"], "dag_state": dag.result["state"],
                "tasks": len(tasks), "model_tasks": len(model_tasks), "test_tasks": len(test_tasks),
                "task_states": states, "task_seconds": sum(t["duration"] or 0 for t in tasks),
                "model_task_seconds": sum(t["duration"] or 0 for t in model_tasks),
                "dbt_run_wall": run["wall"], "dbt_run_models": models_in_run, "dbt_run_error": run["error"],
                "dbt_build_wall": build["wall"], "dbt_build_nodes": len(build["nodes"]),
                "dbt_build_error": build["error"], "dag_max_rss_mb": dag.max_rss_mb}

    def profile_night(self, name: str, lines: int, day: dt.date, settings, source: str, landing: Path,
                      warehouse: str, target: Path, incremental: list[str]) -> list[dict[str, Any]]:
        """An extra, untimed night for the incremental models: after the day's extract, each
        incremental model in turn is compiled, its SELECT run under EXPLAIN ANALYZE (rolled back,
        so it sees exactly the night's new rows), then the model is run for real."""
        from winback.extract import extract_entity

        log(f"{name}: profiling night {day} for the incremental models ({', '.join(incremental)}; not timed)")
        self.child("gen-advance", ["--lines", str(lines), "--source", source, "--landing", str(landing),
                                   "--day", day.isoformat()], f"{name}-advance-profile")
        for entity in EXTRACT_ORDER:
            extract_entity(entity, as_of=day, settings=settings, dag_run_id="bench-profile")
        profiles = []
        for model in incremental:
            compiled = dbt_runs.dbt(["compile", "--select", model], warehouse, day.isoformat(), target / "profile")
            code = next((n["compiled"] for n in compiled["nodes"] if n["id"].endswith(f".{model}")), None)
            entry: dict[str, Any] = {"model": model}
            if code:
                try:
                    result = dbt_runs.explain_model(warehouse, code)
                    plan_file = self.workdir / "plans" / f"{model}.incremental.json"
                    plan_file.parent.mkdir(parents=True, exist_ok=True)
                    plan_file.write_text(json.dumps(result.pop("plan"), indent=1))
                    entry.update(result, plan_file=str(plan_file))
                except Exception as exc:  # a diagnosis: report it, never fail the run for it
                    entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
            else:
                entry["error"] = compiled["error"] or "no compiled SQL in run_results.json"
            run = dbt_runs.dbt(["run", "--select", model], warehouse, day.isoformat(), target / "profile")
            entry["model_seconds"] = sum(n["seconds"] for n in run["nodes"] if n["id"].endswith(f".{model}"))
            entry["run_error"] = run["error"]
            profiles.append(entry)
        return profiles

    def dag_parse(self) -> dict[str, Any]:
        files = sorted((ROOT / "dags").glob("*.py"))
        parse: dict[str, Any] = {}
        for file in files:
            log(f"DAG parse: {file.name} (5 cold processes, then 5 warm re-parses)")
            cold = []
            for i in range(5):
                child = self.child("dag-parse-cold", ["--file", str(file)], f"parse-{file.stem}-cold-{i}")
                if child.result["import_errors"]:
                    raise RuntimeError(f"{file.name}: import errors {child.result['import_errors']}")
                cold.append(child.result["seconds"])
            warm = self.child("dag-parse-warm", ["--file", str(file), "--repeats", "5"], f"parse-{file.stem}-warm")
            if "import_errors" in warm.result:
                raise RuntimeError(f"{file.name}: import errors {warm.result['import_errors']}")
            parse[file.name] = {"cold": cold, "cold_median": median(cold), "warm": warm.result["warm"],
                                "warm_median": warm.result["warm_median"], "dags": child.result["dags"]}
        return parse

    def idle_rss(self) -> float:
        return self.child("idle", [], "idle").max_rss_mb

    def explain(self, warehouse: str, models: list[tuple[str, float, str, str]]) -> list[dict[str, Any]]:
        profiles = []
        for model, seconds, compiled, materialized in models[:3]:
            log(f"EXPLAIN ANALYZE of {model} ({seconds:.1f}s in the last nightly run)")
            try:
                result = dbt_runs.explain_model(warehouse, compiled)
            except Exception as exc:  # a profile is a diagnosis: report, never fail the run for it
                profiles.append({"model": model, "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            plan_file = self.workdir / "plans" / f"{model}.json"
            plan_file.parent.mkdir(parents=True, exist_ok=True)
            plan_file.write_text(json.dumps(result.pop("plan"), indent=1))
            profiles.append({"model": model, "model_seconds": seconds, "materialized": materialized,
                             "plan_file": str(plan_file), **result})
        return profiles


def _settings(warehouse: str, source: str, landing: Path):
    from winback.config import get_settings

    return get_settings(warehouse_url=warehouse, source_url=source, landing_url=str(landing), sales_source="sql",
                        timezone="UTC")


def _strip(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "nodes"} | {"model_seconds": dbt_runs.node_seconds(run)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="S,M,L", help="comma-separated sizes out of S, M, L (default S,M,L)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per measure; the median is reported (default 3, fewer when a measure "
                             "passes --budget)")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds per measure and size after which no further repeat starts (default 600)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="the report (default BENCHMARKS.md)")
    parser.add_argument("--no-dag", action="store_true", help="skip the Airflow measures (parse, DAG run)")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: render the report again from .winback/bench/results.json")
    parser.add_argument("--only-load", action="store_true",
                        help="measure the sales load alone (against COPY and to_sql); prints its figures, "
                             "leaves the report alone")
    parser.add_argument("--only-dbt", action="store_true",
                        help="skip the sales load measures: full refreshes and nightly chains only (their figures "
                             "are printed; the report is left alone)")
    parser.add_argument("--no-explain", action="store_true",
                        help="skip EXPLAIN ANALYZE of the slowest nightly dbt models at the largest size")
    args = parser.parse_args(argv)
    args.sizes = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown or not args.sizes:
        parser.error(f"unknown size(s) {', '.join(unknown) or '(none)'}; choose from S, M, L")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.sizes.sort(key=list(SIZES).index)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        text = report.render(json.loads((ROOT / ".winback" / "bench" / "results.json").read_text()))
        args.out.write_text(text)
        print(text)
        return 0
    started = time.perf_counter()
    from winback.config import get_settings
    from winback.warehouse import embedded_server

    # The throw-away server: the embedded PostgreSQL (never the configured warehouse).
    admin = embedded_server(get_settings(warehouse_url=None, source_url=None)).get_uri("postgres")
    workdir = ROOT / ".winback" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    # Everything after this names its databases explicitly. Data Docs of the gate runs and
    # Airflow's metadata go to bench-only folders, so the demo's state is left alone.
    os.environ["WINBACK_HOME"] = str(workdir / "home")
    os.environ["AIRFLOW_HOME"] = str(ROOT / ".winback" / "bench-airflow")
    os.environ["WINBACK_RETRY_DELAY_SECONDS"] = "1"
    for name in ("WINBACK_WAREHOUSE_URL", "WINBACK_SOURCE_URL", "AIRFLOW_CONN_WAREHOUSE",
                 "AIRFLOW_CONN_SALES_SOURCE", "WINBACK_LANDING_URL", "WINBACK_SALES_SOURCE", "WINBACK_AS_OF_DATE"):
        os.environ.pop(name, None)

    results: dict[str, Any] = {"command": " ".join(["python -m bench.run", *(argv if argv is not None
                                                                              else sys.argv[1:])]),
                               "machine": machine.describe(admin, ROOT), "repeats": args.repeats,
                               "budget": args.budget, "sizes": {}}
    log(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, load "
        f"{results['machine']['load_start']}")
    # The extract is profiled (EXPLAIN ANALYZE of its statements) at M, else at the largest size.
    profile_size = "M" if "M" in args.sizes else args.sizes[-1]
    bench = Bench(admin, workdir, args.repeats, args.budget, profile_size)
    bench.only_dbt = args.only_dbt
    try:
        results["idle_rss_mb"] = bench.idle_rss()
        if not args.no_dag and not args.only_load:
            results["dag_parse"] = bench.dag_parse()
        for index, size in enumerate(args.sizes):
            try:
                size_result = bench.load_only(size, SIZES[size]) if args.only_load else \
                    bench.size(size, SIZES[size], with_dag=index == 0 and not args.no_dag,
                               with_explain=size == args.sizes[-1] and not args.no_explain)
            except Exception as exc:  # report the sizes that did complete; this one says why it did not
                log(f"{size}: FAILED: {type(exc).__name__}: {exc}")
                size_result = {"size": size, "target_lines": SIZES[size],
                               "error": f"{type(exc).__name__}: {exc}"[:3000]}
            finally:
                bench.dbs.drop_all()
                shutil.rmtree(workdir / size, ignore_errors=True)
            results["sizes"][size] = size_result
            (workdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    finally:
        bench.dbs.drop_all()
    results["machine"]["load_end"] = machine.load_average()
    results["total_seconds"] = time.perf_counter() - started
    if args.only_load:
        (workdir / "results-load.json").write_text(json.dumps(results, indent=1, default=str))
        print(report.load_summary(results))
        return 0
    if args.only_dbt:
        (workdir / "results-dbt.json").write_text(json.dumps(results, indent=1, default=str))
        print(report.dbt_summary(results))
        return 0
    (workdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    text = report.render(results)
    args.out.write_text(text)
    print(text)
    log(f"done in {results['total_seconds'] / 60:.1f} min; report {args.out}, raw results {workdir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
