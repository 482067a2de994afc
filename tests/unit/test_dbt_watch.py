"""The order of the dbt group's retries (winback.dbt_watch.upstream_verdict)."""

from __future__ import annotations

import pytest

from winback.dbt_watch import upstream_verdict

PARENTS = ["dbt.stg_erp__clients_run", "dbt.int_clients_run"]


@pytest.mark.parametrize(("states", "verdict"), [
    ({"dbt.stg_erp__clients_run": "success", "dbt.int_clients_run": "success"}, "go"),
    # a skipped parent (an ephemeral model, a node the build did not run) does not hold it
    ({"dbt.stg_erp__clients_run": "skipped", "dbt.int_clients_run": "success"}, "go"),
    # a parent still retrying, running or not started yet: wait
    ({"dbt.stg_erp__clients_run": "success", "dbt.int_clients_run": "up_for_retry"}, "wait"),
    ({"dbt.stg_erp__clients_run": "success", "dbt.int_clients_run": "deferred"}, "wait"),
    ({"dbt.stg_erp__clients_run": "success", "dbt.int_clients_run": None}, "wait"),
    ({"dbt.stg_erp__clients_run": "success"}, "wait"),
    # a parent that ended failed: this one cannot be built on it
    ({"dbt.stg_erp__clients_run": "failed", "dbt.int_clients_run": "up_for_retry"}, "failed"),
    ({"dbt.stg_erp__clients_run": "success", "dbt.int_clients_run": "upstream_failed"}, "failed"),
])
def test_a_retry_waits_for_its_dbt_parents(states, verdict):
    assert upstream_verdict(states, PARENTS) == verdict


def test_a_node_without_parents_in_the_group_goes_at_once():
    assert upstream_verdict({}, []) == "go"


MODEL = "model.winback.lost_clients"


@pytest.mark.parametrize(("model", "tests", "tested", "expected"), [
    ("success", "pass", True, "success"),
    ("success", "fail", True, "fail"),       # a data test on it failed: the task fails
    ("success", None, True, None),           # its tests have not all reported yet
    ("success", None, False, "success"),     # no tests to wait for
    ("error", None, True, "error"),          # the model itself failed
    ("skipped", None, True, "skipped"),
    (None, "pass", True, None),              # the model has not reported
])
def test_a_model_task_stands_for_the_model_and_its_tests(model, tests, tested, expected):
    from winback.dbt_watch import combined_status

    assert combined_status(model, tests, tested) == expected


def test_a_model_task_reads_its_outcome_from_the_published_results():
    from winback.dbt_watch import node_outcome

    key = MODEL.replace(".", "__")
    results = {f"{key}_status": {"status": "success"}, f"{key}_tests_status": "fail",
               f"{key}_dbt_event": {"msg": "OK"}}
    assert node_outcome(results, MODEL, tested=True) == ("fail", {"msg": "OK"})
    assert node_outcome({f"{key}_status": {"status": "success"}, f"{key}_tests_status": "pass"},
                        MODEL, tested=True) == ("success", None)
    assert node_outcome({}, MODEL, tested=True) == (None, None)


class _TaskInstance:
    """A stand-in for the producer's task instance: records the XComs sent to Airflow."""

    def __init__(self, buffer):
        self._cosmos_xcom_backup_buffer = buffer
        self.sent = {}

    def xcom_push(self, key, value, **kwargs):
        self.sent[key] = value

    def xcom_pull(self, task_ids=None, key=None, **kwargs):
        return self.sent.get(key)


def test_the_producer_holds_node_results_until_the_build_ends():
    from cosmos.operators._watcher.state import safe_xcom_push

    from winback.dbt_watch import COMPILED_SQL_XCOM_KEY, RESULTS_XCOM_KEY, holding_results, publish_results

    ti = _TaskInstance(buffer={})
    held = holding_results({"context": {"ti": ti}, "project_dir": "/p"})["context"]["ti"]
    key = MODEL.replace(".", "__")
    # Cosmos' push of a node's result or compiled SQL: kept in its backup buffer, not sent
    safe_xcom_push(held, f"{key}_status", {"status": "success"})
    safe_xcom_push(held, "test__winback__not_null_x_dbt_event", {"msg": "PASS"})
    safe_xcom_push(held, f"{key}_compiled_sql", "select 1")
    # anything else is sent as Cosmos sends it
    safe_xcom_push(held, "task_status", "completed")
    assert set(ti.sent) == {"task_status"}
    assert held.xcom_pull(task_ids="p", key=f"{key}_status") == {"status": "success"}
    # at the end, one XCom with every model's result (the tests' own events stay out),
    # one with every model's compiled SQL
    publish_results({"ti": ti})
    assert ti.sent[RESULTS_XCOM_KEY] == {f"{key}_status": {"status": "success"}}
    assert ti.sent[COMPILED_SQL_XCOM_KEY] == {key: "select 1"}


def test_without_a_backup_buffer_nothing_is_held():
    from cosmos.operators._watcher.state import safe_xcom_push

    from winback.dbt_watch import holding_results

    ti = _TaskInstance(buffer=None)
    held = holding_results({"context": {"ti": ti}})["context"]["ti"]
    safe_xcom_push(held, f"{MODEL.replace('.', '__')}_status", {"status": "success"})
    assert ti.sent == {f"{MODEL.replace('.', '__')}_status": {"status": "success"}}


def test_a_data_test_belongs_to_the_model_task_dbt_builds_it_with():
    from winback.dbt_watch import test_owners

    parents = {
        "model.w.stg": ["source.w.raw"],
        "model.w.dim": ["model.w.stg"],
        "model.w.fct": ["model.w.stg"],
        "model.w.mart": ["model.w.dim", "model.w.fct"],
        "test.w.unique_dim.1": ["model.w.dim"],
        # mart reads dim: the test runs once mart is built, with mart's task
        "test.w.relationships_mart_dim.2": ["model.w.dim", "model.w.mart"],
        # dim and fct are outside each other's lineage: one of them, the other one waited for
        "test.w.relationships_fct_dim.3": ["model.w.fct", "model.w.dim"],
        # a parent without a task (not in the DAG's selection) is not a candidate
        "test.w.on_other.4": ["model.w.other", "model.w.stg"],
    }
    owners = test_owners(parents, [n for n in parents if n.startswith("test.")],
                         ["model.w.stg", "model.w.dim", "model.w.fct", "model.w.mart"])
    assert owners["test.w.unique_dim.1"] == ("model.w.dim", [])
    assert owners["test.w.relationships_mart_dim.2"] == ("model.w.mart", [])
    assert owners["test.w.relationships_fct_dim.3"] == ("model.w.fct", ["model.w.dim"])
    assert owners["test.w.on_other.4"] == ("model.w.stg", [])
