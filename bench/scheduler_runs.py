"""The DAGs as users run them: ``.venv/bin/python -m bench.scheduler_runs [--sizes S,M] [--executor local]``.

Per size, a local deployment (``make airflow``: scheduler, DAG processor, triggerer, API
server) starts in a throw-away ``WINBACK_HOME`` with its own embedded PostgreSQL. A demo
seller of that size is generated into its sales system; then, through the REST API, as a
user would:

1. the nightly extract is triggered for the as-of date; the raw Assets trigger
   ``winback_marts``; both runs' wall times (the API's start and end dates) are recorded;
2. the quarterly DAG is triggered for the last closed quarter;
3. a night: the sales system moves on one day, the nightly extract loads it and its raw
   Assets start the marts DAG (its incremental models do that day's work);
4. the baselines, in the same run on the same warehouse, once the deployment has stopped:
   ``dbt build`` of the quarterly selection (``cosmos_config.QUARTERLY_SELECT``); the next
   day's extract and raw gate in this process, then ``dbt build`` of the marts selection
   (``MARTS_SELECT``), for the night; ``dbt build --full-refresh`` of the marts selection for
   the first marts run (which built every model from nothing).

The ratio DAG run / its baseline is the overhead of the orchestration (issue 19's goal:
marts <= 1.5x). Task counts (the API lists at most 100) and the sum of task durations show
where it goes. Results go to ``.winback/bench/results-scheduler.json`` and stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import AS_OF, ROOT, SIZES, log
from winback.deployment import LocalApi, free_port

TIMEOUT_S = 3600


class Api(LocalApi):
    """The deployment's API, with what the benchmark waits for."""

    def healthy(self) -> bool:
        try:
            health = self.call("/monitor/health")
        except OSError:
            return False
        return all((health.get(p) or {}).get("status") == "healthy"
                   for p in ("metadatabase", "scheduler", "dag_processor"))

    def dag_ids(self) -> set[str]:
        try:
            return {d["dag_id"] for d in self.call("/dags")["dags"]}
        except OSError:
            return set()

    def paused(self, dag_ids: list[str]) -> list[str]:
        return [dag_id for dag_id in dag_ids if self.call(f"/dags/{dag_id}")["is_paused"]]

    def run(self, dag_id: str, run_id: str | None = None) -> dict | None:
        return next((r for r in self.runs(dag_id) if run_id is None or r["dag_run_id"] == run_id), None)


def _wait(what: str, check, deployment: subprocess.Popen, timeout: float = TIMEOUT_S, pause: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deployment.poll() is not None:
            raise RuntimeError(f"the deployment exited ({deployment.returncode}) while waiting for {what}")
        outcome = check()
        if outcome:
            return outcome
        time.sleep(pause)
    raise RuntimeError(f"timed out waiting for {what}")


def _seconds(stamp_from: str | None, stamp_to: str | None) -> float | None:
    if not stamp_from or not stamp_to:
        return None
    return (dt.datetime.fromisoformat(stamp_to) - dt.datetime.fromisoformat(stamp_from)).total_seconds()


def _finished(api: Api, dag_id: str, run_id: str | None = None) -> dict | None:
    run = api.run(dag_id, run_id)
    if run is None or run["state"] not in ("success", "failed"):
        return None
    return run


def _run_figures(api: Api, run: dict) -> dict[str, Any]:
    """Wall time of a DAG run and how its tasks spent it."""
    tasks = api.task_instances(run["dag_id"], run["dag_run_id"])
    ran = [t for t in tasks if t.get("duration") is not None]
    producer = next((t for t in ran if t["task_id"].endswith("dbt_producer_watcher")), None)
    return {"dag_id": run["dag_id"], "state": run["state"], "run_type": run["run_type"],
            "seconds": _seconds(run["start_date"], run["end_date"]),
            "tasks": len(tasks), "tasks_ran": len(ran),
            "task_seconds_sum": round(sum(t["duration"] for t in ran), 1),
            "producer_seconds": producer["duration"] if producer else None,
            "phases": _phases(run, ran, producer),
            "failed": [t["task_id"] for t in tasks if t["state"] in ("failed", "upstream_failed")]}


def _phases(run: dict, ran: list[dict], producer: dict | None) -> dict[str, float | None]:
    """Where a dbt DAG run's wall time went: up to the producer's start (the tasks before
    it, scheduling, the task's start), the producer, its end to the last model task's end
    (the model tasks in the triggerer), and from there to the run's end (the tasks after)."""
    if producer is None:
        return {}
    models = [t for t in ran if t["task_id"].startswith("dbt.") and t["task_id"].endswith("_run")]
    last_model = max((t["end_date"] for t in models), default=producer["end_date"])
    return {"to_producer_start": _seconds(run["start_date"], producer["start_date"]),
            "producer": producer["duration"],
            "model_tasks_after_producer": _seconds(producer["end_date"], last_model),
            "after_model_tasks": _seconds(last_model, run["end_date"])}


def _dbt_build(select: list[str], warehouse: str, target: Path, full_refresh: bool = False,
               as_of: dt.date = AS_OF, parsed: Path | None = None) -> dict[str, Any]:
    """``dbt build`` of ``select`` as the DAGs run it (no unit tests), timed; from the partial
    parse in ``parsed`` (a user's ``dbt build`` loads the project from the previous run's
    parse, as the DAGs' producers do: a baseline that parsed the whole project would carry
    4-5 s the DAG run does not)."""
    import shutil

    from bench.dbt_runs import dbt
    from winback.dbt import PRODUCTION_BUILD_FLAGS

    if parsed is not None:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parsed / "partial_parse.msgpack", target / "partial_parse.msgpack")
    run = dbt(["build", "--select", *select, *PRODUCTION_BUILD_FLAGS, *(["--full-refresh"] if full_refresh else [])],
              warehouse, as_of.isoformat(), target)
    return {"select": select, "seconds": round(run["wall"], 2), "error": run["error"],
            "nodes": len(run["nodes"])}


def _advance(lines: int, source: str, landing: Path, day: dt.date, workdir: Path, tag: str) -> None:
    """The sales system and the CRM exports move on to ``day`` (the generator's next day)."""
    from bench.common import run_worker

    run_worker("gen-advance", ["--lines", str(lines), "--source", source, "--landing", str(landing),
                               "--day", day.isoformat()], env={}, workdir=workdir / "logs", tag=tag)


def _plain_night(lines: int, settings: Any, source: str, landing: Path, day: dt.date, dsn: str, workdir: Path,
                 size: str, parsed: Path) -> dict[str, Any]:
    """The baseline of a night: the next day extracted entity by entity and gated in this
    process (what the nightly DAG's tasks call), then ``dbt build`` of the marts selection."""
    from winback.cosmos_config import MARTS_SELECT
    from winback.extract import extract_entity
    from winback.quality import run_gate
    from winback.tasks.extract import EXTRACT_ORDER

    _advance(lines, source, landing, day, workdir, f"{size}-plain-night")
    started = time.perf_counter()
    for entity in EXTRACT_ORDER:
        extract_entity(entity, as_of=day, settings=settings, dag_run_id="bench")
    run_gate(dsn, "raw", day, run_id=f"bench-scheduler-{size}")
    extracted = time.perf_counter() - started
    build = _dbt_build(MARTS_SELECT, dsn, workdir / f"dbt-{size}-marts", as_of=day, parsed=parsed)
    return {"marts_night": build, "night_chain": {"seconds": round(extracted + build["seconds"], 2),
                                                  "extract_and_gate_seconds": round(extracted, 2)}}


def measure(size: str, lines: int, executor: str, workdir: Path) -> dict[str, Any]:
    from winback import generator
    from winback.calendar import last_closed_quarter
    from winback.config import get_settings
    from winback.cosmos_config import MARTS_SELECT, QUARTERLY_SELECT
    from winback.orchestration import logical_date_for

    home = workdir / f"home-{size}"
    home.mkdir(parents=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRFLOW", "WINBACK_", "DBT_", "SCARF", "DO_NOT_TRACK", "GX_"))}
    env.update({"WINBACK_HOME": str(home), "WINBACK_PROJECT_DIR": str(ROOT), "WINBACK_TIMEZONE": "UTC",
                "WINBACK_PUBLISH_APPROVAL": "off",
                "PYTHONUNBUFFERED": "1"})
    log(f"{size}: starting the local deployment ({executor}) on port {port}")
    started = time.monotonic()
    with open(workdir / f"deployment-{size}.log", "wb") as out:
        deployment = subprocess.Popen([sys.executable, "-m", "winback.deployment", "--executor", executor,
                                       "--port", str(port), "--health-timeout", "300"],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        api = Api(port)
        try:
            _wait("a healthy deployment", api.healthy, deployment, 600, 2)
            _wait("the DAGs to be parsed", lambda: {"winback_marts", "winback_quarterly_kpis"} <= api.dag_ids(),
                  deployment, 600, 2)
            # The deployment unpauses its DAGs once it has recorded their past slots as not run.
            # Unpausing them here first (as this harness once did) raced it: the scheduler then
            # ran the nightly and the quarterly DAG's past slots, whose builds collided with the
            # measured ones.
            dag_ids = ["winback_nightly_extract", "winback_marts", "winback_quarterly_kpis"]
            _wait("the deployment to unpause its DAGs", lambda: not api.paused(dag_ids), deployment, 600, 1)
            ready = time.monotonic() - started
            connections = json.loads((home / "airflow-local" / "connections.json").read_text())
            log(f"{size}: generating ~{lines:,} sales lines into the deployment's sales system")
            summary = generator.generate_source(generator.GeneratorConfig(target_lines=lines, as_of=AS_OF),
                                                connections["sales_source"], str(home / "landing"))
            logical = logical_date_for(AS_OF, get_settings(timezone="UTC"))
            log(f"{size}: nightly extract -> marts (Assets)")
            nightly = api.call("/dags/winback_nightly_extract/dagRuns", {"logical_date": logical.isoformat(),
                                                                         "conf": {}})
            extract_run = _wait("the nightly extract",
                                lambda: _finished(api, "winback_nightly_extract", nightly["dag_run_id"]), deployment)
            marts_run = _wait("winback_marts", lambda: _finished(api, "winback_marts"), deployment)
            last_closed = last_closed_quarter(AS_OF)
            log(f"{size}: quarterly KPIs for {last_closed}")
            quarterly = api.call("/dags/winback_quarterly_kpis/dagRuns", {
                "logical_date": None, "conf": {"quarter": last_closed.isoformat(), "reason": "benchmark"}})
            quarterly_run = _wait("the quarterly DAG",
                                  lambda: _finished(api, "winback_quarterly_kpis", quarterly["dag_run_id"]),
                                  deployment)
            # A night: the sales system advances one day, the nightly extract loads it and its
            # raw Assets start the marts DAG, whose incremental models do that day's work.
            night = AS_OF + dt.timedelta(days=1)
            log(f"{size}: a night: the sales system advances to {night}; nightly extract -> marts")
            _advance(lines, connections["sales_source"], home / "landing", night, workdir, f"{size}-night")
            known = {r["dag_run_id"] for r in api.runs("winback_marts")}
            nightly = api.call("/dags/winback_nightly_extract/dagRuns", {
                "logical_date": logical_date_for(night, get_settings(timezone="UTC")).isoformat(), "conf": {}})
            night_extract = _wait("the night's extract",
                                  lambda: _finished(api, "winback_nightly_extract", nightly["dag_run_id"]), deployment)
            marts_night = _wait("the night's winback_marts", lambda: next(
                (r for r in api.runs("winback_marts") if r["dag_run_id"] not in known
                 and r["state"] in ("success", "failed")), None), deployment)
            # A past slot the scheduler ran at start-up would have overlapped the measured runs.
            past_slots = {dag_id: [r["dag_run_id"] for r in api.runs(dag_id) if r["run_type"] == "scheduled"
                                   and api.task_instances(dag_id, r["dag_run_id"])] for dag_id in dag_ids}
            runs = {name: _run_figures(api, run) for name, run in
                    (("extract", extract_run), ("marts", marts_run), ("quarterly", quarterly_run),
                     ("night_extract", night_extract), ("marts_night", marts_night))}
            runs["night_chain"] = {"seconds": _seconds(night_extract["start_date"], marts_night["end_date"])}
        finally:
            deployment.send_signal(signal.SIGINT)
            try:
                deployment.wait(120)
            except subprocess.TimeoutExpired:
                deployment.kill()
    # The baselines on the same warehouse (the deployment's embedded server, started again
    # by this process), once the deployment has stopped.
    log(f"{size}: dbt build of the same selections (baseline)")
    from winback import warehouse

    settings = get_settings(home=home, warehouse_url=None, source_url=None)
    dsn = warehouse.warehouse_dsn(settings)
    # Like for like: the quarterly run against dbt build on the built warehouse; the night
    # against the next night's extract (no Airflow) and dbt build; the first marts run (every
    # model built from nothing) against a full refresh.
    # (Each for the warehouse's latest day: the night's DAG runs have moved it on.)
    # Each from a partial parse (_dbt_build), made once here, not timed.
    from bench.dbt_runs import dbt

    parsed = workdir / f"dbt-{size}-parse"
    dbt(["parse"], dsn, night.isoformat(), parsed)
    baseline = {"quarterly": _dbt_build(QUARTERLY_SELECT, dsn, workdir / f"dbt-{size}-quarterly", as_of=night,
                                        parsed=parsed)}
    last = night + dt.timedelta(days=1)
    baseline.update(_plain_night(lines, settings, connections["sales_source"], home / "landing", last, dsn,
                                 workdir, size, parsed))
    baseline["marts"] = _dbt_build(MARTS_SELECT, dsn, workdir / f"dbt-{size}-marts-full", full_refresh=True,
                                   as_of=last, parsed=parsed)
    warehouse.stop_embedded(settings)
    return {"size": size, "lines": summary.sales_lines, "executor": executor, "ready_s": round(ready, 1),
            "past_slot_runs": past_slots,
            "runs": runs, "dbt_build": baseline,
            "ratios": {name: (runs[name]["seconds"] / baseline[name]["seconds"]
                              if runs[name]["seconds"] and baseline[name]["seconds"] else None)
                       for name in ("marts", "quarterly", "marts_night", "night_chain")}}


RUN_LABELS = {"marts": "winback_marts, first run (baseline: dbt build --full-refresh)",
              "quarterly": "winback_quarterly_kpis (baseline: dbt build)",
              "marts_night": "winback_marts, a night (baseline: dbt build after a day's extract)",
              "night_chain": "a night: extract DAG start to marts DAG end (baseline: extract, raw gate, dbt build)"}


def render(results: list[dict[str, Any]]) -> str:
    lines = ["| size | lines | DAG run | state | DAG run s | baseline s | ratio | sum of task durations | "
             "s to the producer / producer / model tasks after it / after them |",
             "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        for name, label in RUN_LABELS.items():
            run, base, ratio = result["runs"][name], result["dbt_build"][name], result["ratios"][name]
            seconds = f"{run['seconds']:.1f}" if run["seconds"] else "?"
            phases = " / ".join(f"{value:.1f}" if value is not None else "?"
                                for value in (run.get("phases") or {}).values())
            lines.append(f"| {result['size']} | {result['lines']:,} | {label} | {run.get('state', '')} | {seconds} | "
                         f"{base['seconds']:.1f} | {f'{ratio:.2f}x' if ratio else '?'} | "
                         f"{run.get('task_seconds_sum', '')} | {phases} |")
        extract = result["runs"]["extract"]
        lines.append(f"| {result['size']} | {result['lines']:,} | winback_nightly_extract | {extract['state']} | "
                     f"{extract['seconds']:.1f} | | | {extract['task_seconds_sum']:.1f} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S", help="comma-separated: S, M, L (default S)")
    parser.add_argument("--executor", default="local", choices=["local", "celery"])
    args = parser.parse_args(argv)
    sizes = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}: choose from {list(SIZES)}")
    out_dir = ROOT / ".winback" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="winback-bench-scheduler-") as tmp:
        for size in sizes:
            results.append(measure(size, SIZES[size], args.executor, Path(tmp)))
    (out_dir / "results-scheduler.json").write_text(json.dumps(results, indent=1, default=str))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
