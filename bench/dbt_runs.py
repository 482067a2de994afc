"""dbt invocations of the harness, their per-model timings, and EXPLAIN ANALYZE of slow models."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg

from winback.dbt import DbtRunError, run_dbt


def dbt(args: list[str], dsn: str, as_of: str, target: Path) -> dict[str, Any]:
    """Run dbt with its own target/log paths (the project's ``target/`` holds the manifest the
    DAGs render from and is left alone); return the wall time and the per-node timings."""
    target.mkdir(parents=True, exist_ok=True)
    results_file = target / "run_results.json"
    results_file.unlink(missing_ok=True)
    started = time.perf_counter()
    error = None
    try:
        run_dbt([*args, "--target-path", str(target), "--log-path", str(target / "logs")], dsn, as_of=as_of)
    except DbtRunError as exc:
        error = str(exc)[:2000]
    wall = time.perf_counter() - started
    nodes: list[dict[str, Any]] = []
    elapsed = None
    materialized = {}
    manifest = target / "manifest.json"
    if manifest.exists():
        materialized = {uid: node.get("config", {}).get("materialized")
                        for uid, node in json.loads(manifest.read_text()).get("nodes", {}).items()}
    if results_file.exists():
        data = json.loads(results_file.read_text())
        elapsed = data.get("elapsed_time")
        for result in data.get("results", []):
            nodes.append({"id": result["unique_id"], "status": result["status"],
                          "seconds": result.get("execution_time") or 0.0,
                          "materialized": materialized.get(result["unique_id"]),
                          "compiled": result.get("compiled_code") if result["unique_id"].startswith("model.") else None})
    return {"args": args, "wall": wall, "dbt_elapsed": elapsed, "error": error, "nodes": nodes}


def slowest(run: dict[str, Any], top: int = 6, prefix: str = "model.") -> list[tuple[str, float]]:
    nodes = [n for n in run["nodes"] if n["id"].startswith(prefix)]
    nodes.sort(key=lambda n: n["seconds"], reverse=True)
    return [(n["id"].split(".")[-1], round(n["seconds"], 2)) for n in nodes[:top]]


def node_seconds(run: dict[str, Any], prefix: str = "model.") -> float:
    return sum(n["seconds"] for n in run["nodes"] if n["id"].startswith(prefix))


# ----------------------------------------------------------------------------- EXPLAIN ANALYZE
def _exclusive(plan: dict[str, Any], out: list[dict[str, Any]], ctes: dict[str, float] | None = None) -> None:
    """Exclusive time per plan node (its time minus its children's, loops counted).

    A CTE Scan's time includes computing its CTE, which the plan also shows as an InitPlan
    subtree; the CTE's own time is taken off the scan so it is not counted twice.
    """
    if ctes is None:
        ctes = {}
        _cte_times(plan, ctes)
    children = plan.get("Plans", [])
    total = plan.get("Actual Total Time", 0.0) * plan.get("Actual Loops", 1)
    inner = sum(c.get("Actual Total Time", 0.0) * c.get("Actual Loops", 1) for c in children)
    if plan["Node Type"] == "CTE Scan":
        inner += ctes.get(plan.get("CTE Name"), 0.0)
    label = plan["Node Type"]
    for key in ("Function Name", "Relation Name", "CTE Name", "Index Name", "Strategy", "Join Type"):
        if key in plan:
            label += f" {key.split()[0].lower()}={plan[key]}"
    if "Sort Method" in plan:
        label += f" ({plan['Sort Method']})"
    # BUFFERS counts include the children: a node spills when it writes temp blocks of its own.
    own_temp = plan.get("Temp Written Blocks", 0) - sum(c.get("Temp Written Blocks", 0) for c in children)
    disk = plan.get("Sort Space Type") == "Disk" or own_temp > 0
    out.append({"node": label, "exclusive_ms": max(total - inner, 0.0), "rows": plan.get("Actual Rows"),
                "loops": plan.get("Actual Loops", 1), "spills_to_disk": disk})
    for child in children:
        _exclusive(child, out, ctes)


def _cte_times(plan: dict[str, Any], ctes: dict[str, float]) -> None:
    name = plan.get("Subplan Name", "")
    if name.startswith("CTE "):
        ctes[name[4:]] = plan.get("Actual Total Time", 0.0) * plan.get("Actual Loops", 1)
    for child in plan.get("Plans", []):
        _cte_times(child, ctes)


def top_nodes(plan: dict[str, Any], top: int = 5) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    _exclusive(plan, nodes)
    nodes.sort(key=lambda n: n["exclusive_ms"], reverse=True)
    return nodes[:top]


def explain_model(dsn: str, compiled_sql: str, timeout_s: int = 600) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of a model's compiled SELECT, rolled back; the plan nodes
    with the largest exclusive time."""
    with psycopg.connect(dsn) as conn:
        conn.execute(f"set local statement_timeout = '{int(timeout_s)}s'")
        plan = conn.execute("explain (analyze, buffers, format json) " + compiled_sql).fetchone()[0]
        conn.rollback()
    root = plan[0]
    return {"execution_ms": root.get("Execution Time"), "planning_ms": root.get("Planning Time"),
            "top_nodes": top_nodes(root["Plan"]), "plan": plan}
