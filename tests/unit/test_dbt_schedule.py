"""The order in which dbt starts ready nodes (winback.dbt_schedule)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import networkx as nx
import pytest
from dbt.graph.queue import GraphQueue
from dbt.task.runnable import GraphRunnableTask

from winback import dbt_schedule

# A chain of three models whose names sort last, beside two independent models: all
# three roots are ready at once.
CHAIN = ["model.p.z_head", "model.p.z_middle", "model.p.z_tail"]
ALONE = ["model.p.a_alone", "model.p.b_alone"]


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(ALONE)
    nx.add_path(graph, CHAIN)
    return graph


class _Manifest:
    def __init__(self, meta: dict[str, dict] | None = None):
        meta = meta or {}
        self.nodes = {uid: SimpleNamespace(unique_id=uid, config=SimpleNamespace(meta=meta.get(uid, {})))
                      for uid in CHAIN + ALONE}

    def expect(self, unique_id: str) -> SimpleNamespace:
        return self.nodes[unique_id]


def _first_started(graph: nx.DiGraph, meta: dict[str, dict] | None = None) -> str:
    return GraphQueue(graph, _Manifest(meta), set(graph.nodes)).get().unique_id


@pytest.fixture
def dbt_order(monkeypatch):
    """dbt's own order during the test (a DAG run earlier in the session may have installed
    the pipeline's), whatever was there restored after it."""
    for owner, name in ((GraphQueue, "_get_scores"), (GraphQueue, "get"), (GraphRunnableTask, "run_queue")):
        monkeypatch.setattr(owner, name, owner.__dict__[name])
    dbt_schedule.install()
    dbt_schedule.uninstall()


def test_dbt_alone_starts_the_ready_nodes_by_name(dbt_order):
    # Why the module exists: the head of the long chain waits behind the independent models.
    assert _first_started(_graph()) == "model.p.a_alone"


def test_installed_the_head_of_the_longest_chain_starts_first(dbt_order):
    assert dbt_schedule.install()
    assert dbt_schedule.install(), "installing twice keeps the order"
    assert _first_started(_graph()) == "model.p.z_head"


def test_scores_count_the_longest_path_below_then_the_depth():
    graph = _graph()
    graph.add_edge("model.p.a_alone", "model.p.z_tail")  # a second way into the tail
    scores = dbt_schedule.critical_path_scores(graph)
    assert scores["model.p.z_head"] == (0, -3, 0)
    assert scores["model.p.z_middle"] == (0, -2, 1)
    assert scores["model.p.a_alone"] == (0, -2, 0)
    assert scores["model.p.z_tail"] == (0, -1, 2)
    assert scores["model.p.b_alone"] == (0, -1, 0)
    # ready together, a_alone (root) goes before z_middle (depth 1): same chain below
    assert sorted(["model.p.z_middle", "model.p.a_alone"], key=scores.get) == ["model.p.a_alone",
                                                                             "model.p.z_middle"]


def test_a_dbt_without_the_scoring_hook_keeps_its_own_order(dbt_order, monkeypatch):
    monkeypatch.delattr(GraphQueue, "_get_scores")
    assert dbt_schedule.install() is False
    assert "_get_scores" not in GraphQueue.__dict__
    assert GraphQueue.__dict__["get"] is not dbt_schedule._get, "nothing is replaced when one method is missing"


def test_the_next_node_is_taken_only_when_a_thread_is_free(dbt_order):
    # dbt's loop hands every ready node to its thread pool at once, first come first served;
    # with one thread busy on z_head, b_alone must not be handed over before z_head ends:
    # then z_middle, ready by then and with the longer chain, goes first.
    dbt_schedule.install()
    queue = GraphQueue(_graph(), _Manifest(), set(_graph().nodes))
    queue.winback_threads = 1
    assert queue.get().unique_id == "model.p.z_head"
    taken: list[str] = []
    waiter = threading.Thread(target=lambda: taken.append(queue.get().unique_id))
    waiter.start()
    waiter.join(0.3)
    assert taken == [], "a node was taken while the only thread was busy"
    queue.mark_done("model.p.z_head")
    waiter.join(5)
    assert taken == ["model.p.z_middle"]


def test_a_model_s_meta_priority_goes_before_the_chain_below_it(dbt_order):
    dbt_schedule.install()
    assert _first_started(_graph(), {"model.p.b_alone": {"priority": 1}}) == "model.p.b_alone"
    # not a whole number: no priority
    assert _first_started(_graph(), {"model.p.b_alone": {"priority": "high"}}) == "model.p.z_head"
