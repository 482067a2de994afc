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
A model's ``meta: {priority: N}`` (default 0, higher first: the name of the setting
dbt-core#10632 asks for) goes before that, for what the graph cannot tell: two ready models
with equally long chains below, one of which runs far longer (``lost_clients``).

dbt's main loop takes a node off the queue as soon as one is ready and hands it to its
thread pool, which starts them first come, first served: an order among ready nodes only
counts if the loop waits for a free thread before it takes one, so :func:`install` makes
it wait (``GraphRunnableTask.run_queue`` tells the queue the run's thread count).

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


def critical_path_scores(graph: Any, priority: dict[str, int] | None = None) -> dict[str, tuple[int, int, int]]:
    """Per node of a ``networkx.DiGraph``: (minus its priority, minus the node count of the
    longest path from it to a node without children, its depth from the top). Lower is
    started first."""
    import networkx as nx

    priority = priority or {}
    order = list(nx.topological_sort(graph))
    depth: dict[str, int] = {}
    for node in order:
        depth[node] = max((depth[parent] + 1 for parent in graph.predecessors(node)), default=0)
    remaining: dict[str, int] = {}
    for node in reversed(order):
        remaining[node] = 1 + max((remaining[child] for child in graph.successors(node)), default=0)
    return {node: (-priority.get(node, 0), -remaining[node], depth[node]) for node in graph}


def meta_priority(node: Any) -> int:
    """A manifest node's ``meta.priority`` (0 without one, or when not a whole number)."""
    meta = getattr(getattr(node, "config", None), "meta", None) or getattr(node, "meta", None) or {}
    value = meta.get("priority", 0) if isinstance(meta, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _scores(self: Any, graph: Any) -> dict[str, tuple[int, int, int]]:  # GraphQueue._get_scores
    nodes = getattr(self.manifest, "nodes", {})
    return critical_path_scores(graph, {uid: meta_priority(nodes[uid]) for uid in graph if uid in nodes})


def _get(self: Any, block: bool = True, timeout: float | None = None) -> Any:  # GraphQueue.get
    threads = getattr(self, "winback_threads", 0)
    if threads and block:
        with self.lock:  # mark_done() notifies some_task_done under this lock
            while len(self.in_progress) >= threads:
                self.some_task_done.wait()
    return _dbt_own["get"](self, block, timeout)


def _run_queue(self: Any, pool: Any) -> None:  # GraphRunnableTask.run_queue
    if self.job_queue is not None:
        self.job_queue.winback_threads = self.config.threads
    return _dbt_own["run_queue"](self, pool)


def _replacements() -> dict[tuple[Any, str], Any]:
    """(dbt class, method name) -> this module's method in its place."""
    from dbt.graph.queue import GraphQueue
    from dbt.task.runnable import GraphRunnableTask

    return {(GraphQueue, "_get_scores"): _scores, (GraphQueue, "get"): _get,
            (GraphRunnableTask, "run_queue"): _run_queue}


# dbt's own methods, kept by install() for uninstall().
_dbt_own: dict[str, Any] = {}


def install() -> bool:
    """Make dbt (in this process) start the ready node with the longest chain below it first.

    Returns False, leaving dbt's order, when this dbt lacks one of the methods replaced
    (its queue changed: the order is an optimisation, never needed for a correct run)."""
    try:
        ours = _replacements()
    except ImportError:
        return False
    current = {key: key[0].__dict__.get(key[1]) for key in ours}
    if all(current[key] is ours[key] for key in ours):
        return True
    if not all(callable(method) for method in current.values()):
        log.warning("dbt's GraphQueue or GraphRunnableTask changed: dbt's own order of ready nodes applies")
        return False
    for (owner, name), method in ours.items():
        if current[(owner, name)] is not method:
            _dbt_own[name] = current[(owner, name)]
            setattr(owner, name, method)
    return True


def uninstall() -> None:
    """dbt's own order again (after :func:`install` in this process)."""
    for owner, name in _replacements() if _dbt_own else ():
        if name in _dbt_own:
            setattr(owner, name, _dbt_own[name])


def pre_execute(context: Any) -> None:
    """The ``pre_execute`` hook of the DAGs' dbt producer (its ``dbt build`` runs in the task's
    own process, :mod:`winback.cosmos_config`)."""
    install()


def main() -> None:
    """``python -m winback.dbt_schedule <dbt args>``: the ``dbt`` command, with :func:`install`."""
    install()
    from dbt.cli.main import cli

    sys.exit(cli(prog_name="dbt"))


if __name__ == "__main__":
    main()
