"""Which ready dbt node starts first: the one with the longest chain still below it.

dbt starts a node once its parents are done. Among the nodes ready at the same moment it
starts those nearest the top of the graph first and breaks ties by name
(``dbt.graph.queue.GraphQueue._get_scores``). That order ignores what waits below a node:
on a nightly run, ``int_purchase_days`` (the head of the chain int_lost_episodes ->
fct_lost_episodes -> lost_clients -> client_value) waited behind three independent
``int_client_*`` models that sort before it, and the run ended with one thread idle while
the chain finished. dbt has no setting for the order (dbt-labs/dbt-core#10632, open).

:func:`install` scores every node by the number of nodes on the longest path from it to the
end of the graph, longest first, then by dbt's own depth, then by name: the classic
critical-path heuristic for list scheduling, computed from the graph alone (no timings).
Only the order among *ready* nodes changes; dbt's queue still starts a node only after
its parents, so what a run builds and its results are the same. Measured in
BENCHMARKS.md (nightly dbt at L).

Where it applies: every dbt command the pipeline runs (:func:`winback.dbt.run_dbt` runs
``python -m winback.dbt_schedule``, the DAGs' dbt producer installs it in its own process).
A plain ``dbt`` typed in ``dbt_project/`` keeps dbt's order.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def critical_path_scores(graph: Any) -> dict[str, tuple[int, int]]:
    """Per node of a ``networkx.DiGraph``: (minus the node count of the longest path from it
    to a node without children, its depth from the top). Lower is started first."""
    import networkx as nx

    order = list(nx.topological_sort(graph))
    depth: dict[str, int] = {}
    for node in order:
        depth[node] = max((depth[parent] + 1 for parent in graph.predecessors(node)), default=0)
    remaining: dict[str, int] = {}
    for node in reversed(order):
        remaining[node] = 1 + max((remaining[child] for child in graph.successors(node)), default=0)
    return {node: (-remaining[node], depth[node]) for node in graph}


def _scores(self: Any, graph: Any) -> dict[str, tuple[int, int]]:  # GraphQueue._get_scores
    return critical_path_scores(graph)


def install() -> bool:
    """Make dbt (in this process) start the ready node with the longest chain below it first.

    Returns False, leaving dbt's order, when this dbt has no ``GraphQueue._get_scores``
    (its queue changed: the order is an optimisation, never needed for a correct run)."""
    try:
        from dbt.graph.queue import GraphQueue
    except ImportError:
        return False
    if GraphQueue.__dict__.get("_get_scores") is _scores:
        return True
    if not callable(GraphQueue.__dict__.get("_get_scores")):
        log.warning("dbt's GraphQueue has no _get_scores: dbt's own order of ready nodes applies")
        return False
    GraphQueue._get_scores = _scores
    return True


def main() -> None:
    """``python -m winback.dbt_schedule <dbt args>``: the ``dbt`` command, with :func:`install`."""
    install()
    from dbt.cli.main import cli

    sys.exit(cli(prog_name="dbt"))


if __name__ == "__main__":
    main()
