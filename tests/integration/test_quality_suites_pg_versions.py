"""Every check of the raw and the kpi suite runs on each PostgreSQL server at hand, with the same figures.

The suites must run on PostgreSQL 14 to 18 (many managed warehouses still run 14 or 15).
Two servers are tested: the embedded one (PostgreSQL 18, or whatever
``WINBACK_TEST_ADMIN_URL`` names) and the machine's PostgreSQL on 127.0.0.1:5432 (a
PostgreSQL 15 in the project's dev image; trust authentication), skipped when it is not
there. On each, a throw-away warehouse is bootstrapped, filled with the dataset of
``test_quality_gate.py`` by COPY (the extract cannot load on 15: it needs
``pg_input_is_valid``, PostgreSQL 16+), built by dbt, gated clean, then broken so that
the SQL checks return rows, and gated again. No check may end in an execution error
(GX reports those as ``exception_info``, the gate as ``GateResult.errors``), and both
servers must give the same verdicts, observed values and offending rows.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from scratch_databases import create_database, drop_database, unique_name
from test_quality_gate import AS_OF, QUARTER, load_raw

from winback import warehouse
from winback.dbt import run_dbt
from winback.quality import load_suite, run_gate
from winback.quality.gate import DELIVERY_MARK, RUN_FACTS
from winback.quality.suites import RunContext

pytestmark = pytest.mark.integration

MACHINE_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SERVERS = ("embedded", "machine")

# One database, broken in several ways at once, so that the checks PostgreSQL < 16 could
# not run (they used JOIN) return offending rows, and those rows are compared too.
BREAKAGES = [
    # D's delivery went missing (daily volume); 40 lines the day before for clients without
    # a clients row (unknown clients).
    "delete from raw.sales_lines where order_date = date '2025-04-04'",
    "insert into raw.sales_lines (line_id, order_id, client_id, order_date, quantity, net_amount, status, "
    "_source_object, _load_id) select 'LX' || n, 'OX' || n, 'X' || n, date '2025-04-03', 1, 100, 'completed', "
    "'test', 1 from generate_series(1, 40) as n",
    # Lines dated after the as-of date of the load that delivered them.
    "insert into raw.sales_lines (line_id, order_id, client_id, order_date, quantity, net_amount, status, "
    "_source_object, _load_id) select line_id || '-future', order_id, client_id, date '2025-04-09', quantity, "
    "net_amount, status, _source_object, _load_id from raw.sales_lines where order_date = date '2025-04-03'",
    # Clients whose manager has no managers row; contacts of a campaign without a campaigns row.
    "update raw.clients set manager_id = 'M9' where client_id in ('C001', 'C002')",
    "update raw.contacts set campaign_id = 'W9' where contact_id in ('K5', 'K15')",
    # The revenue mart doubled for a quarter; a raw line changed after the build.
    "update marts.fct_revenue_deviations set net_revenue = 2 * net_revenue where quarter_start = date '2025-01-01'",
    "update raw.sales_lines set net_amount = net_amount + 0.05 where line_id = (select min(line_id) "
    "from raw.sales_lines where status = 'completed' and order_date = date '2025-02-03')",
    # A breakdown value that does not add up; lost clients not matching the episodes.
    "update kpi_staging.kpi_quarterly_breakdown set lost_clients = lost_clients + 1 where quarter_start = "
    "date '2024-10-01' and dimension = 'region' and dimension_value = (select min(dimension_value) "
    "from kpi_staging.kpi_quarterly_breakdown where quarter_start = date '2024-10-01' and dimension = 'region')",
    "update kpi_staging.kpi_quarterly set lost_clients = lost_clients + 1, churn_rate = (lost_clients + 1)::float8 "
    "/ nullif(active_clients_start, 0) where quarter_start = date '2024-07-01'",
]
# What the breakages must fail (each of these used a JOIN before PostgreSQL 15 was tested).
BROKEN = {
    "raw": {"sales_lines.no_future_dates", "sales_lines.unknown_clients_recent", "sales_lines.daily_volume",
            "clients.manager_known", "contacts.campaign_known"},
    "kpi": {"fct_revenue_deviations.reconciles_with_raw", "int_client_daily_revenue.reconciles_with_raw",
            "kpi_quarterly_breakdown.sums_match_overall", "kpi_quarterly.matches_lost_episodes"},
}


def _machine_admin_dsn() -> str:
    try:
        with psycopg.connect(MACHINE_ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({str(exc).strip().splitlines()[0]})")
    return MACHINE_ADMIN_DSN


def _gate(dsn: str, home, label: str) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WINBACK_HOME", str(home))  # Data Docs and GX results of the test
        return {"raw": run_gate(dsn, "raw", AS_OF, None, f"pg-versions-{label}"),
                "kpi": run_gate(dsn, "kpi", AS_OF, QUARTER, f"pg-versions-{label}")}


def _build(admin_dsn: str, tmp_path_factory, server: str, created: list[tuple[str, str]]) -> dict[str, Any]:
    name = unique_name("wb_pgv")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        version = conn.execute("select current_setting('server_version_num')::int").fetchone()[0]
    dsn = create_database(admin_dsn, name)
    created.append((admin_dsn, name))
    home = tmp_path_factory.mktemp(f"pg_versions_{server}")
    warehouse.bootstrap(dsn)
    load_raw(dsn)
    with psycopg.connect(dsn) as conn:  # delivered, so that the checks that need campaigns run too
        conn.execute("insert into raw.campaigns (campaign_id, name, start_date, cost, _source_object, _load_id)"
                     " values ('W1', 'Spring win-back', date '2025-02-01', 500, 'test', 1)")
    run_dbt(["build", "--target-path", str(home / "dbt_target")], dsn, as_of=AS_OF.isoformat())
    clean = _gate(dsn, home, f"{server}-clean")
    with psycopg.connect(dsn) as conn:
        for statement in BREAKAGES:
            conn.execute(statement)
    broken = _gate(dsn, home, f"{server}-broken")
    # The same data as a first load of history (the load that brought it is the earliest), so
    # the checks that run only then run too.
    with psycopg.connect(dsn) as conn:
        conn.execute("update audit.load_runs set rows_inserted = 1 where entity = 'sales_lines'")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WINBACK_HOME", str(home))
        first_load = {"raw": run_gate(dsn, "raw", AS_OF, None, f"pg-versions-{server}-first-load")}
    return {"version": version, "clean": clean, "broken": broken, "first_load": first_load}


@pytest.fixture(scope="module")
def servers(pg_admin_dsn, tmp_path_factory):
    """``servers(name)`` -> the gate results on that server, built once per module."""
    built: dict[str, dict[str, Any]] = {}
    created: list[tuple[str, str]] = []

    def _get(server: str) -> dict[str, Any]:
        if server not in built:
            admin = pg_admin_dsn if server == "embedded" else _machine_admin_dsn()
            built[server] = _build(admin, tmp_path_factory, server, created)
        return built[server]

    yield _get
    for admin_dsn, name in created:
        drop_database(admin_dsn, name)


def _comparable(observed: dict[str, Any]) -> dict[str, Any]:
    """Observed values with row lists in a fixed order (SQL without ORDER BY may differ),
    without the delivery mark (a time)."""
    observed = {key: value for key, value in observed.items() if key != DELIVERY_MARK}

    def ordered(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: ordered(item) for key, item in value.items()}
        if isinstance(value, list):
            return sorted((ordered(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
        return value

    return ordered(observed)


@pytest.mark.parametrize("server", SERVERS)
def test_every_check_runs_without_an_sql_error(servers, server):
    built = servers(server)
    assert 140000 <= built["version"] < 190000, f"server_version_num {built['version']} outside 14-18"
    reported: dict[str, set[str]] = {"raw": set(), "kpi": set()}
    for state in ("clean", "broken", "first_load"):
        for suite, result in built[state].items():
            assert result.errors == {}, f"{suite} ({state}) on PostgreSQL {built['version']}: {result.errors}"
            applying = {check.name for check in load_suite(suite, AS_OF, result.quarter_start,
                                                           RunContext(first_load=result.first_load)).checks}
            assert set(result.observed) - set(RUN_FACTS) == applying, f"{suite} ({state}): not every check reported"
            reported[suite] |= applying
            assert not any("error" in entry for entry in result.observed.values() if isinstance(entry, dict)), \
                result.observed
            for name, entry in result.observed.items():
                for row in entry.get("rows", []) if isinstance(entry, dict) else []:
                    assert "error" not in row, f"{name}: sample rows failed: {row}"
    for suite, names in reported.items():  # between the runs, every check of the suite ran
        assert names == {check.name for check in load_suite(suite, AS_OF, QUARTER).checks}, suite

    clean = built["clean"]
    assert clean["raw"].success and clean["raw"].failed_warning == [], clean["raw"].message
    assert clean["kpi"].success, clean["kpi"].message
    assert clean["kpi"].failed_warning == ["kpi_quarterly.recovered_revenue_final"]

    for suite, expected in BROKEN.items():
        result = built["broken"][suite]
        failed = set(result.failed_blocking) | set(result.failed_warning)
        assert expected <= failed, (suite, expected - failed, result.message)
        for name in expected:
            assert result.observed[name]["rows"], f"{name}: a failed SQL check keeps its offending rows"


def test_figures_are_the_same_on_every_server(servers):
    embedded, machine = servers("embedded"), servers("machine")
    for state in ("clean", "broken", "first_load"):
        for suite in embedded[state]:
            ours, theirs = embedded[state][suite], machine[state][suite]
            label = f"{suite} ({state}): PostgreSQL {embedded['version']} vs {machine['version']}"
            assert (ours.success, ours.failed_blocking, ours.failed_warning) == \
                (theirs.success, theirs.failed_blocking, theirs.failed_warning), label
            assert _comparable(ours.observed) == _comparable(theirs.observed), label
