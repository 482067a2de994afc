"""The order of the dbt group's retries (winback.dbt_watch.upstream_verdict)."""

from __future__ import annotations

import pytest

from winback.dbt_watch import upstream_verdict

PARENTS = ["dbt.stg_erp__clients.test", "dbt.int_clients.test"]


@pytest.mark.parametrize(("states", "verdict"), [
    ({"dbt.stg_erp__clients.test": "success", "dbt.int_clients.test": "success"}, "go"),
    # a skipped parent (an ephemeral model, a node the build did not run) does not hold it
    ({"dbt.stg_erp__clients.test": "skipped", "dbt.int_clients.test": "success"}, "go"),
    # a parent still retrying, running or not started yet: wait
    ({"dbt.stg_erp__clients.test": "success", "dbt.int_clients.test": "up_for_retry"}, "wait"),
    ({"dbt.stg_erp__clients.test": "success", "dbt.int_clients.test": "deferred"}, "wait"),
    ({"dbt.stg_erp__clients.test": "success", "dbt.int_clients.test": None}, "wait"),
    ({"dbt.stg_erp__clients.test": "success"}, "wait"),
    # a parent that ended failed: this one cannot be built on it
    ({"dbt.stg_erp__clients.test": "failed", "dbt.int_clients.test": "up_for_retry"}, "failed"),
    ({"dbt.stg_erp__clients.test": "success", "dbt.int_clients.test": "upstream_failed"}, "failed"),
])
def test_a_retry_waits_for_its_dbt_parents(states, verdict):
    assert upstream_verdict(states, PARENTS) == verdict


def test_a_node_without_parents_in_the_group_goes_at_once():
    assert upstream_verdict({}, []) == "go"
