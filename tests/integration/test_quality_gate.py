"""The quality gate on a real warehouse: clean data passes and publishes, corruptions fail.

Once per module a small, deterministic raw dataset (50 clients buying on weekdays since
2023, with clients that stop, pause and come back, cancellations, return lines, one
late-arriving client and a few contacts) is loaded into a fresh warehouse, the dbt project
is built for D = 2025-04-04 (a Friday), the raw and kpi gates run and Q1 2025 is
published as version 1. That database is the template: every test works on its own copy,
breaks one thing the way production data breaks, and checks that the gate fails naming
the broken rule, that the failure is recorded, and that the published reporting rows are
untouched (publishing with the failed validation is refused).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from scratch_databases import scratch_database

from winback import warehouse
from winback.dbt import run_dbt
from winback.publish import PublishError, publish_quarter
from winback.quality import GateError, GateFailed, gate, run_gate, run_gates

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 4, 4)            # a Friday; the last closed quarter is Q1 2025
QUARTER = dt.date(2025, 1, 1)
FIRST_DAY = dt.date(2023, 1, 2)
LOAD_ID = 1
MANAGERS = ["M1", "M2", "M3", "M4"]
REGIONS = ["North", "South", "West"]
INDUSTRIES = ["retail", "food", "construction"]
CHANNELS = ["direct", "online", "dealer"]
UNKNOWN_CLIENT = "C049"                # sells, but has no clients row (late-arriving dimension)


# ----------------------------------------------------------------------------- the raw dataset
def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _business_days(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        if day.weekday() < 5:
            yield day
        day += dt.timedelta(days=1)


def _buys(client: int, day: dt.date) -> bool:
    """Client purchase patterns: steady buyers, clients that stop (lost for good) and
    clients that pause for longer than L = 180 days (lost, then won back)."""
    if client % 10 == 3 and day > dt.date(2024, 3, 1):
        return False                    # stops: lost in Q3 2024
    if client % 10 == 5 and day > dt.date(2024, 8, 1):
        return False                    # stops: lost in Q1 2025
    if client % 10 == 7 and dt.date(2023, 9, 1) <= day < dt.date(2024, 5, 6):
        return False                    # pause: lost in Q1 2024, back in Q2 2024
    if client % 10 == 1 and client > 20 and dt.date(2024, 4, 1) <= day < dt.date(2025, 1, 20):
        return False                    # pause: lost in Q3 2024, back in Q1 2025 (90-day window still open)
    return True


def sales_lines(clients: int = 50) -> list[dict]:
    rows = []
    for n, day in enumerate(_business_days(FIRST_DAY, AS_OF)):
        for i in range(1, clients + 1):
            rhythm = (3, 5, 7, 10, 15)[i % 5]
            if (n + i) % rhythm or not _buys(i, day):
                continue
            client = f"C{i:03d}"
            order = f"O{client}-{n}"
            changed = dt.datetime.combine(day, dt.time(17, 0), tzinfo=dt.UTC)
            for k in range(1 + _h(order) % 3):
                line = f"L{client}-{n}-{k}"
                amount = Decimal(100 + _h(line) % 900) + Decimal(_h(line, "c") % 100) / 100
                rows.append({
                    "line_id": line, "order_id": order, "client_id": client, "order_date": day,
                    "quantity": Decimal(1 + _h(line, "q") % 5), "net_amount": amount,
                    "cost_amount": (amount * Decimal("0.6")).quantize(Decimal("0.01")),
                    "product_id": f"P{_h(line, 'p') % 20}", "channel": CHANNELS[_h(client) % 3],
                    "status": "cancelled" if _h(line, "s") % 40 == 0 else "completed", "updated_at": changed,
                })
            if _h(order, "r") % 50 == 0:
                rows.append({
                    "line_id": f"L{client}-{n}-r", "order_id": order, "client_id": client, "order_date": day,
                    "quantity": Decimal(-1), "net_amount": Decimal("-50.00"), "cost_amount": Decimal("-30.00"),
                    "product_id": "P1", "channel": CHANNELS[_h(client) % 3], "status": "returned",
                    "updated_at": changed,
                })
    return rows


def clients_rows(clients: int = 50) -> list[dict]:
    return [{"client_id": f"C{i:03d}", "name": f"Client {i}", "region": REGIONS[i % 3],
             "industry": INDUSTRIES[i % 2], "manager_id": MANAGERS[i % 4], "acquisition_channel": "web",
             "potential_revenue": None}
            for i in range(1, clients + 1) if f"C{i:03d}" != UNKNOWN_CLIENT]


def contacts_rows() -> list[dict]:
    """Win-back calls to the clients that stop in 2024-08 (some within 30 days of loss)."""
    rows = []
    for i in range(5, 51, 10):
        at = dt.datetime(2025, 2, 10 + i % 7, 10, 0, tzinfo=dt.UTC)
        rows.append({"contact_id": f"K{i}", "client_id": f"C{i:03d}", "manager_id": MANAGERS[i % 4],
                     "contact_at": at, "channel": "call", "direction": "outbound", "outcome": "refused",
                     "loss_reason": ["price", "competitor"][i % 2], "nps_score": 4})
    return rows


def _copy(conn: psycopg.Connection, table: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    names = sql.SQL(", ").join(map(sql.Identifier, [*columns, "_source_object", "_load_id"]))
    with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(sql.SQL(table), names)) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns] + ["test", LOAD_ID])


def load_raw(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into audit.load_runs (load_id, logical_date, entity, source_kind, status) "
                     "values (%s, %s, 'sales_lines', 'sql', 'success')", (LOAD_ID, AS_OF))
        _copy(conn, "raw.managers", [{"manager_id": m, "name": f"Manager {m}", "team": "T1", "active": True}
                                     for m in MANAGERS])
        _copy(conn, "raw.clients", clients_rows())
        _copy(conn, "raw.sales_lines", sales_lines())
        _copy(conn, "raw.contacts", contacts_rows())


# ----------------------------------------------------------------------------- databases
@contextlib.contextmanager
def raw_warehouse(admin_dsn: str, prefix: str) -> Iterator[tuple[str, str]]:
    """A scratch warehouse, bootstrapped, with the raw dataset loaded (no dbt yet): (name, DSN)."""
    with scratch_database(admin_dsn, prefix) as (name, dsn):
        warehouse.bootstrap(dsn)
        load_raw(dsn)
        yield name, dsn


def reporting_snapshot(dsn: str) -> dict[str, list[tuple]]:
    with psycopg.connect(dsn) as conn:
        return {relation: conn.execute(f"select * from {relation} order by 1, 2, 3").fetchall()
                for relation in ("reporting.kpi_publications", "reporting.kpi_quarterly_versions",
                                 "reporting.kpi_quarterly_breakdown_versions", "reporting.kpi_quarterly",
                                 "reporting.kpi_quarterly_breakdown")}


@pytest.fixture(scope="module")
def template(pg_admin_dsn, tmp_path_factory):
    """A warehouse built by dbt from the raw dataset, gated, with Q1 2025 published (v1)."""
    home = tmp_path_factory.mktemp("gate_template_home")
    with raw_warehouse(pg_admin_dsn, "wb_gate_tpl") as (name, dsn):
        target = tmp_path_factory.mktemp("dbt_target")
        run_dbt(["build", "--target-path", str(target)], dsn, as_of=AS_OF.isoformat())
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("WINBACK_HOME", str(home))
            raw = run_gate(dsn, "raw", AS_OF, None, "template").raise_for_failure()
            kpi = run_gate(dsn, "kpi", AS_OF, QUARTER, "template").raise_for_failure()
        version = publish_quarter(dsn, QUARTER, kpi.validation_id, "quarterly publication")
        assert version == 1
        yield {"name": name, "raw": raw, "kpi": kpi}


@pytest.fixture
def gate_home(pg_admin_dsn, tmp_path, monkeypatch) -> Path:
    """Data Docs and GX results of the test go to its own state dir (after the server started)."""
    monkeypatch.setenv("WINBACK_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def wh(template, pg_admin_dsn, gate_home) -> str:
    """A private copy of the template warehouse."""
    with scratch_database(pg_admin_dsn, "wb_gate", template=template["name"]) as (_, dsn):
        yield dsn


def execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn) as conn:
        for statement in statements:
            conn.execute(statement)


def one(dsn: str, query: str, params: tuple = ()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchone()


# ----------------------------------------------------------------------------- clean data
def test_clean_warehouse_passes_and_was_published(template, wh, gate_home):
    # The template's own gate runs passed; both are recorded in the audit trail.
    assert template["raw"].success and template["kpi"].success
    for result in (template["raw"], template["kpi"]):
        row = one(wh, "select success, failed_blocking, suite from audit.validation_results "
                      "where validation_id = %s", (result.validation_id,))
        assert row == (True, [], result.suite)

    # Version 1 of Q1 2025 is what the view shows, equal to the staged rows.
    published = one(wh, "select lost_clients, returned_clients, lost_pool_start, churn_rate, version, reason "
                        "from reporting.kpi_quarterly where quarter_start = %s", (QUARTER,))
    staged = one(wh, "select lost_clients, returned_clients, lost_pool_start, churn_rate "
                     "from kpi_staging.kpi_quarterly where quarter_start = %s", (QUARTER,))
    assert published == (*staged, 1, "quarterly publication")
    breakdown = one(wh, "select count(*) from reporting.kpi_quarterly_breakdown where quarter_start = %s",
                    (QUARTER,))[0]
    assert breakdown == one(wh, "select count(*) from kpi_staging.kpi_quarterly_breakdown "
                                "where quarter_start = %s", (QUARTER,))[0] > 0

    # A fresh run on the copy passes too, without a quarter as well; Data Docs are written.
    kpi = run_gate(wh, "kpi", AS_OF, None, "clean")
    raw = run_gate(wh, "raw", AS_OF, None, "clean")
    assert kpi.success and raw.success, (kpi.message, raw.message)
    assert kpi.data_docs_path == gate_home / "output" / "data_docs" / "index.html"
    assert kpi.data_docs_path.is_file()
    assert "winback.kpi.kpi_quarterly" in kpi.data_docs_path.read_text()
    assert kpi.observed["kpi_quarterly.one_row_per_quarter"]["success"] is True
    # The DSN as Airflow's connection carries it (socket directory in the host part) works too.
    assert run_gate(warehouse.airflow_conn_uri(wh), "raw", AS_OF, None, "airflow-dsn").success


# Every closed quarter of the dataset, oldest first (2023 Q1 to 2025 Q1).
CLOSED_QUARTERS = [dt.date(year, month, 1) for year in (2023, 2024, 2025) for month in (1, 4, 7, 10)][:9]


@pytest.mark.parametrize("count", [2, gate.SHARED_FROM + 1], ids=["alone", "with-a-helper-process"])
def test_several_quarters_gate_as_one_by_one_with_one_data_docs_build(wh, gate_home, monkeypatch, count):
    quarters = CLOSED_QUARTERS[-count:]
    alone = {quarter: run_gate(wh, "kpi", AS_OF, quarter, "one-by-one") for quarter in quarters}
    builds = []
    build = gate._build_docs
    monkeypatch.setattr(gate, "_build_docs",
                        lambda context, pages, docs_dir: builds.append(len(pages)) or build(context, pages, docs_dir))
    here = []  # the quarters this process validated itself (the helper process validates the others)
    validate_here = gate._here
    monkeypatch.setattr(gate, "_here", lambda job: here.append(job[3]) or validate_here(job))

    together = run_gates(wh, "kpi", AS_OF, quarters, "together")

    assert builds == [count * 4]  # one Data Docs build after all runs, for their pages (4 tables each)
    assert [result.quarter_start for result in together] == quarters
    if count >= gate.SHARED_FROM:
        # From the front here, from the back in the helper: both took some.
        assert 0 < len(here) < count and here == quarters[:len(here)]
    index = gate_home / "output" / "data_docs" / "index.html"
    for result in together:
        single = alone[result.quarter_start]
        assert result.validation_id != single.validation_id
        assert (result.success, result.failed_blocking, result.failed_warning, result.waived, result.evaluated,
                result.observed) == (single.success, single.failed_blocking, single.failed_warning, single.waived,
                                     single.evaluated, single.observed)
        assert result.data_docs_path == index
        recorded, recorded_alone = (one(wh, "select quarter_start, success, failed_blocking, failed_warning, observed, "
                                            "staged_fingerprint, data_docs_path from audit.validation_results "
                                            "where validation_id = %s", (validation_id,))
                                    for validation_id in (result.validation_id, single.validation_id))
        assert recorded == recorded_alone
        assert recorded[5] is not None and recorded[6] == str(index)
    # Each quarter's run has its own pages in the site (one folder per run time).
    for asset in ("kpi_quarterly", "kpi_quarterly_breakdown"):
        runs = index.parent / "validations" / "winback" / "kpi" / asset / f"together_kpi_{AS_OF}"
        assert len(list(runs.iterdir())) == len(quarters)
    assert index.read_text().count(f"together_kpi_{AS_OF}") >= len(quarters)


@pytest.mark.parametrize("quarters", [[QUARTER], CLOSED_QUARTERS[-gate.SHARED_FROM:]], ids=["alone", "with-a-helper-process"])
def test_quarters_gated_before_one_that_cannot_run_are_still_recorded(wh, gate_home, quarters):
    with pytest.raises(GateError, match="not closed as of 2025-04-04"):
        run_gates(wh, "kpi", AS_OF, [*quarters, dt.date(2025, 4, 1)], "cut-short")
    index = gate_home / "output" / "data_docs" / "index.html"
    with psycopg.connect(wh) as conn:
        rows = conn.execute("select quarter_start, data_docs_path from audit.validation_results "
                            "where run_id = 'cut-short' order by created_at").fetchall()
    # Every quarter before it, in their order, each with the site's page (with a helper too,
    # which took the last quarter first: this process still ran the ones before it).
    assert rows == [(quarter, str(index)) for quarter in quarters]
    assert index.is_file()


def test_warning_is_reported_but_does_not_block(template):
    # Clients C021, C031, C041 came back on 2025-01-20 or later: their 90-day windows end
    # after 2025-04-04, so Q1 2025's recovered revenue is not final: a warning only.
    kpi = template["kpi"]
    assert kpi.success
    assert kpi.failed_warning == ["kpi_quarterly.recovered_revenue_final"]
    assert kpi.observed["kpi_quarterly.recovered_revenue_final"]["severity"] == "warning"


# ----------------------------------------------------------------------------- corruptions
def _some_line(day_filter: str) -> str:
    return (f"(select line_id from raw.sales_lines where status = 'completed' and {day_filter} "
            "order by line_id limit 1)")


RAW_CORRUPTIONS = {
    # A day's delivery went missing: D has no lines at all.
    "missing_day": (["delete from raw.sales_lines where order_date = date '2025-04-04'"],
                    "sales_lines.daily_volume"),
    # Lines dated after the as-of date of the load that delivered them.
    "future_dated_lines": ([
        "insert into raw.sales_lines (line_id, order_id, client_id, order_date, quantity, net_amount, status, "
        "_source_object, _load_id) select line_id || '-future', order_id, client_id, date '2025-04-09', "
        "quantity, net_amount, status, _source_object, _load_id from raw.sales_lines "
        "where order_date = date '2025-04-04' limit 5"],
        "sales_lines.no_future_dates"),
    # 40 lines on D for clients that have no clients row.
    "unknown_client_spike": ([
        "insert into raw.sales_lines (line_id, order_id, client_id, order_date, quantity, net_amount, status, "
        "_source_object, _load_id) select 'LX' || n, 'OX' || n, 'X' || n, date '2025-04-04', 1, 100, "
        "'completed', 'test', 1 from generate_series(1, 40) as n"],
        "sales_lines.unknown_clients_recent"),
    # Everything ordered in the last week cancelled at once.
    "mass_cancellations": (["update raw.sales_lines set status = 'cancelled' "
                            "where order_date > date '2025-04-04' - 7"],
                           "sales_lines.cancellations_recent"),
    # No new sales for ten days.
    "stale_data": (["delete from raw.sales_lines where order_date > date '2025-04-04' - 10"],
                   "sales_lines.fresh"),
    # (an update stamps _loaded_at, as the extract does: the row rules judge delivered rows)
    "amount_sign_flipped": ([f"update raw.sales_lines set net_amount = -net_amount, _loaded_at = now() "
                             f"where line_id = {_some_line('quantity > 0')}"],
                            "sales_lines.amount_sign_matches_quantity"),
    "unknown_status": ([f"update raw.sales_lines set status = 'lost', _loaded_at = now() "
                        f"where line_id = {_some_line('true')}"],
                       "sales_lines.status_known"),
}

Q = "date '2025-01-01'"
FEBRUARY_LINE = _some_line("order_date = date '2025-02-03'")
KPI_CORRUPTIONS = {
    # The same client x day twice in the revenue every KPI is computed from: a warehouse
    # built before the table's unique index (dbt creates it with the table), so first
    # without it; the gate's check backs the index up.
    "duplicated_daily_revenue_row": ([
        "do $$ declare grain text; begin select indexrelid::regclass::text into strict grain from pg_index "
        "where indrelid = 'intermediate.int_client_daily_revenue'::regclass and indisunique; "
        "execute 'drop index ' || grain; end $$",
        "insert into intermediate.int_client_daily_revenue select * from intermediate.int_client_daily_revenue "
        "where order_date = date '2025-02-03' and net_amount > 0 limit 1"],
        "int_client_daily_revenue.one_row_per_client_day"),
    # The same client x quarter twice in the revenue mart.
    "duplicated_mart_revenue_row": ([
        f"insert into marts.fct_revenue_deviations select * from marts.fct_revenue_deviations "
        f"where quarter_start = {Q} and net_revenue > 0 limit 1"],
        "fct_revenue_deviations.one_row_per_client_quarter"),
    # The mart holds twice the quarter's revenue.
    "revenue_doubled": ([f"update marts.fct_revenue_deviations set net_revenue = 2 * net_revenue "
                         f"where quarter_start = {Q}"],
                        "fct_revenue_deviations.reconciles_with_raw"),
    # A raw line changed by 5 cents after the marts were built: raw and marts disagree.
    "raw_mart_not_reconciling": ([f"update raw.sales_lines set net_amount = net_amount + 0.05 "
                                  f"where line_id = {FEBRUARY_LINE}"],
                                 "fct_revenue_deviations.reconciles_with_raw"),
    "rate_above_one": ([f"update kpi_staging.kpi_quarterly set winback_rate = 1.25 where quarter_start = {Q}"],
                       "kpi_quarterly.winback_rate_within_0_1"),
    "breakdown_rate_above_one": ([
        f"update kpi_staging.kpi_quarterly_breakdown set churn_rate = 1.5 "
        f"where quarter_start = {Q} and dimension = 'region'"],
        "kpi_quarterly_breakdown.churn_rate_within_0_1"),
    "duplicated_quarter_row": ([f"insert into kpi_staging.kpi_quarterly select * from kpi_staging.kpi_quarterly "
                                f"where quarter_start = {Q}"],
                               "kpi_quarterly.one_row_per_quarter"),
    "duplicated_breakdown_row": ([
        f"insert into kpi_staging.kpi_quarterly_breakdown select * from kpi_staging.kpi_quarterly_breakdown "
        f"where quarter_start = {Q} and dimension = 'manager' limit 1"],
        "kpi_quarterly_breakdown.one_row_per_dimension_value"),
    "returned_more_than_lost_pool": ([
        f"update kpi_staging.kpi_quarterly set returned_clients = lost_pool_start + lost_clients + 1 "
        f"where quarter_start = {Q}"],
        "kpi_quarterly.returned_within_lost_pool"),
    "breakdown_does_not_add_up": ([
        f"update kpi_staging.kpi_quarterly_breakdown set lost_clients = lost_clients + 1 "
        f"where (quarter_start, dimension, dimension_value) = (select quarter_start, dimension, dimension_value "
        f"from kpi_staging.kpi_quarterly_breakdown where quarter_start = {Q} and dimension = 'manager' "
        f"order by dimension_value limit 1)"],
        "kpi_quarterly_breakdown.sums_match_overall"),
    "future_quarter_row": ([
        f"insert into kpi_staging.kpi_quarterly select * from kpi_staging.kpi_quarterly where quarter_start = {Q}",
        "update kpi_staging.kpi_quarterly set quarter_start = date '2025-04-01' where ctid = "
        f"(select max(ctid) from kpi_staging.kpi_quarterly where quarter_start = {Q})"],
        "kpi_quarterly.closed_quarters_only"),
    "null_quarter_start": ([
        "insert into kpi_staging.kpi_quarterly select * from kpi_staging.kpi_quarterly "
        "where quarter_start = date '2024-10-01'",
        "update kpi_staging.kpi_quarterly set quarter_start = null where ctid = "
        "(select max(ctid) from kpi_staging.kpi_quarterly where quarter_start = date '2024-10-01')"],
        "kpi_quarterly.quarter_start_not_null"),
    "quarter_missing": ([f"delete from kpi_staging.kpi_quarterly where quarter_start = {Q}"],
                        "kpi_quarterly.quarter_staged"),
    "kpis_of_another_as_of": (["update kpi_staging.kpi_quarterly set as_of_date = date '2025-04-03'"],
                              "kpi_quarterly.built_for_as_of"),
    # Per-column checks generated from the KPI definition (meta.kpi.gate of _kpi__models.yml).
    "count_missing": ([f"update kpi_staging.kpi_quarterly set new_clients = null where quarter_start = {Q}"],
                      "kpi_quarterly.new_clients_present"),
    "negative_median": ([f"update kpi_staging.kpi_quarterly_breakdown set median_days_to_return = -1 "
                         f"where quarter_start = {Q} and dimension = 'region'"],
                        "kpi_quarterly_breakdown.median_days_to_return_not_negative"),
    "lost_clients_not_matching_episodes": ([
        f"update kpi_staging.kpi_quarterly set lost_clients = lost_clients + 1, "
        f"churn_rate = (lost_clients + 1)::float8 / nullif(active_clients_start, 0) where quarter_start = {Q}"],
        "kpi_quarterly.matches_lost_episodes"),
}


@pytest.mark.parametrize("corruption", sorted(RAW_CORRUPTIONS))
def test_raw_corruption_fails_the_raw_gate(corruption, wh):
    statements, expected = RAW_CORRUPTIONS[corruption]
    before = reporting_snapshot(wh)
    execute(wh, *statements)

    result = run_gate(wh, "raw", AS_OF, None, f"test-{corruption}")

    assert not result.success
    assert expected in result.failed_blocking, result.message
    assert result.observed[expected]["success"] is False
    row = one(wh, "select success, failed_blocking from audit.validation_results where validation_id = %s",
              (result.validation_id,))
    assert row[0] is False and expected in row[1]
    with pytest.raises(GateFailed, match=expected):
        result.raise_for_failure()
    assert reporting_snapshot(wh) == before


@pytest.mark.parametrize("mark", ["now", "before D - 3 days", "no passed gate"])
@pytest.mark.parametrize(("newest_load", "warns"), [
    ("timestamptz '2025-03-20 02:00+00'", True),  # loads stopped before D - 3 days
    ("timestamptz '2025-04-02 02:00+00'", False),  # within 3 days of D
    ("now()", False),
])
def test_loaded_recently_judges_the_newest_load(mark, newest_load, warns, wh):
    """Whatever the last passed gate's delivery mark (the check looks at the rows delivered
    since then first): the template's (now), an older one, none (every row delivered)."""
    name = "sales_lines.loaded_recently"
    execute(wh, "update raw.sales_lines set _loaded_at = timestamptz '2025-03-01 02:00+00'",
            f"update raw.sales_lines set _loaded_at = {newest_load} where line_id = {_some_line('true')}")
    if mark == "before D - 3 days":
        execute(wh, "update audit.validation_results set observed = jsonb_set(observed, '{delivery_mark}', "
                    "to_jsonb(timestamptz '2025-03-10 02:00+00')) where suite = 'raw'")
    elif mark == "no passed gate":
        execute(wh, "delete from audit.validation_results where suite = 'raw'")

    result = run_gate(wh, "raw", AS_OF, None, "test-loaded-recently")

    assert (name in result.failed_warning) is warns, result.message
    if warns:
        assert result.observed[name]["rows"] == [
            {"latest_loaded_at": "2025-03-20T02:00:00+00:00", "as_of": AS_OF.isoformat()}]


def test_row_rules_judge_the_rows_delivered_since_the_last_passed_gate(wh):
    sign = "sales_lines.amount_sign_matches_quantity"
    (line,) = one(wh, f"select {_some_line('quantity > 0')}")
    # The template's raw gate passed: the rows it judged are not read again. A change made
    # outside the extract (which stamps _loaded_at on every row it writes) is no delivery.
    execute(wh, f"update raw.sales_lines set net_amount = -net_amount where line_id = '{line}'")
    assert run_gate(wh, "raw", AS_OF, None, "untouched").success
    # Delivered again: judged, and judged again by the next run, since a failed run does
    # not move the mark.
    execute(wh, f"update raw.sales_lines set _loaded_at = now() where line_id = '{line}'")
    for run in ("delivered", "still-failing"):
        result = run_gate(wh, "raw", AS_OF, None, run)
        assert sign in result.failed_blocking, result.message
        assert [row["line_id"] for row in result.observed[sign]["rows"]] == [line]
    # The correction is delivered: the gate passes, and its mark is where the next one starts.
    execute(wh, f"update raw.sales_lines set net_amount = -net_amount, _loaded_at = now() where line_id = '{line}'")
    passed = run_gate(wh, "raw", AS_OF, None, "corrected")
    assert passed.success, passed.message
    runs = one(wh, "select array_agg(success order by created_at), array_agg((observed->>'delivery_mark')"
                   "::timestamptz order by created_at) from audit.validation_results where suite = 'raw'")
    assert runs[0] == [True, True, False, False, True]
    assert [mark is not None for mark in runs[1]] == runs[0]  # a failed run sets no mark
    assert [mark for mark in runs[1] if mark] == sorted(mark for mark in runs[1] if mark)


@pytest.mark.parametrize("corruption", sorted(KPI_CORRUPTIONS))
def test_kpi_corruption_fails_the_gate_and_is_not_published(corruption, wh):
    statements, expected = KPI_CORRUPTIONS[corruption]
    before = reporting_snapshot(wh)
    execute(wh, *statements)

    result = run_gate(wh, "kpi", AS_OF, QUARTER, f"test-{corruption}")

    assert not result.success
    assert expected in result.failed_blocking, result.message
    with pytest.raises(PublishError, match="failed") as refused:
        publish_quarter(wh, QUARTER, result.validation_id, f"attempt after {corruption}")
    assert "\n" not in str(refused.value)
    assert reporting_snapshot(wh) == before


def test_reconciliation_reports_the_difference(wh):
    raw_q1 = one(wh, "select sum(net_amount) from raw.sales_lines where status <> 'cancelled' "
                     "and order_date between date '2025-01-01' and date '2025-03-31'")[0]
    execute(wh, *KPI_CORRUPTIONS["revenue_doubled"][0])

    result = run_gate(wh, "kpi", AS_OF, QUARTER, "test-difference")

    rows = result.observed["fct_revenue_deviations.reconciles_with_raw"]["rows"]
    assert [(r["quarter_start"], round(r["difference"], 2)) for r in rows] == [("2025-01-01", float(raw_q1))]
    stored = one(wh, "select observed -> 'fct_revenue_deviations.reconciles_with_raw' ->> 'observed_value' "
                     "from audit.validation_results where validation_id = %s", (result.validation_id,))[0]
    assert stored == "1"


def test_publish_after_correction_creates_version_2(template, wh):
    # Staged figures change (e.g. a late correction), the gate passes again, a new version
    # appears with its reason; version 1 stays queryable.
    execute(wh, f"update kpi_staging.kpi_quarterly set median_days_to_return = median_days_to_return + 1 "
                f"where quarter_start = {Q}")
    result = run_gate(wh, "kpi", AS_OF, QUARTER, "test-correction").raise_for_failure()

    assert publish_quarter(wh, QUARTER, result.validation_id, "correction: late returns") == 2
    v1 = one(wh, "select median_days_to_return from reporting.kpi_quarterly_versions "
                 "where quarter_start = %s and version = 1", (QUARTER,))[0]
    shown = one(wh, "select version, reason, median_days_to_return from reporting.kpi_quarterly "
                    "where quarter_start = %s", (QUARTER,))
    assert shown == (2, "correction: late returns", v1 + 1)
    assert one(wh, "select count(distinct version) from reporting.kpi_quarterly_breakdown_versions "
                   "where quarter_start = %s", (QUARTER,))[0] == 2
    # Re-publishing the same figures is a no-op.
    assert publish_quarter(wh, QUARTER, result.validation_id, "again") == 2
    assert one(wh, "select count(*) from reporting.kpi_publications where quarter_start = %s", (QUARTER,))[0] == 2


def test_missing_table_fails_the_gate_with_a_named_reason(wh):
    execute(wh, "drop table marts.fct_revenue_deviations cascade")  # (and the BI view on it)
    result = run_gate(wh, "kpi", AS_OF, QUARTER, "test-missing-table")
    assert not result.success
    assert "fct_revenue_deviations.reconciles_with_raw" in result.failed_blocking
    assert result.errors["fct_revenue_deviations.reconciles_with_raw"] == \
        "table marts.fct_revenue_deviations does not exist"


def test_renamed_column_fails_the_check_instead_of_passing_it(wh):
    execute(wh, "alter table kpi_staging.kpi_quarterly rename column winback_rate to win_back_rate")
    result = run_gate(wh, "kpi", AS_OF, QUARTER, "test-renamed-column")
    assert not result.success
    assert "kpi_quarterly.winback_rate_within_0_1" in result.failed_blocking
    assert "winback_rate" in result.errors["kpi_quarterly.winback_rate_within_0_1"]


@pytest.mark.parametrize(("suite", "as_of", "quarter", "message"), [
    ("nightly", AS_OF, None, "unknown quality suite 'nightly'"),
    ("kpi", AS_OF, dt.date(2025, 4, 1), "not closed as of 2025-04-04"),
    ("kpi", AS_OF, dt.date(2025, 2, 1), "not the first day of a calendar quarter"),
    ("raw", AS_OF, QUARTER, "checks a nightly load, not a quarter"),
])
def test_bad_arguments_are_one_line_errors(suite, as_of, quarter, message):
    with pytest.raises(GateError, match=message) as error:
        run_gate("postgresql://nobody@localhost:1/none", suite, as_of, quarter, "test")
    assert "\n" not in str(error.value)


def test_observed_values_are_json(template):
    observed = template["kpi"].observed
    assert json.loads(json.dumps(observed)) == observed
    assert set(observed) >= {"kpi_quarterly.one_row_per_quarter", "fct_revenue_deviations.reconciles_with_raw",
                             "kpi_quarterly_breakdown.sums_match_overall"}


# ----------------------------------------------------------------------------- real histories
def test_a_sales_lines_only_export_passes_with_a_warning_per_missing_entity(wh):
    execute(wh, "delete from raw.contacts", "delete from raw.clients", "delete from raw.managers")

    result = run_gate(wh, "raw", AS_OF, None, "sales-only")

    assert result.success, result.message
    assert {"deliveries.clients", "deliveries.managers", "deliveries.contacts", "deliveries.campaigns"} <= \
        set(result.failed_warning)
    assert "lost_contacted_share is unknown" in result.observed["deliveries.contacts"]["note"]
    assert "campaign names, dates and costs are unknown" in result.observed["deliveries.campaigns"]["note"]
    # Checks about a dimension never delivered do not run (every client would be "unknown").
    assert "sales_lines.unknown_clients_recent" not in result.observed
    assert "clients.manager_known" not in result.observed
    assert "contacts.campaign_known" not in result.observed


def _year_end_corrections(lines: int) -> str:
    """Old lines re-delivered on D, cancelled: a correction batch, not a mass cancellation."""
    return (f"update raw.sales_lines set status = 'cancelled', updated_at = timestamptz '{AS_OF} 09:00+00' "
            f"where line_id in (select line_id from raw.sales_lines where order_date < date '2025-01-01' "
            f"order by line_id limit {lines})")


def test_a_first_load_with_a_correction_batch_is_judged_as_history(wh):
    total = one(wh, "select count(*) from raw.sales_lines")[0]
    execute(wh, _year_end_corrections(total // 150),  # under 1 % of all lines
            f"update audit.load_runs set rows_inserted = {total} where load_id = {LOAD_ID}")

    first = run_gate(wh, "raw", AS_OF, None, "first-load")

    assert first.success and first.first_load, first.message
    assert "sales_lines.cancellations_recent" not in first.observed  # every line "changed" on D
    assert first.observed["sales_lines.cancellations_by_order_date"]["success"] is True
    assert "sales_lines.daily_volume" not in first.observed
    assert first.observed["sales_lines.fresh"]["severity"] == "warning"

    # The same batch in a nightly load (an earlier load brought the history) still blocks.
    execute(wh, f"update audit.load_runs set logical_date = date '{AS_OF}' - 30 where load_id = {LOAD_ID}")
    nightly = run_gate(wh, "raw", AS_OF, None, "nightly")
    assert not nightly.first_load
    assert "sales_lines.cancellations_recent" in nightly.failed_blocking


def test_a_first_load_still_blocks_mass_cancellations_by_order_date(wh):
    total = one(wh, "select count(*) from raw.sales_lines")[0]
    execute(wh, f"update audit.load_runs set rows_inserted = {total} where load_id = {LOAD_ID}",
            "update raw.sales_lines set status = 'cancelled' where order_date > date '2025-04-04' - 7")

    result = run_gate(wh, "raw", AS_OF, None, "first-load-mass")

    assert result.first_load
    assert "sales_lines.cancellations_by_order_date" in result.failed_blocking


# ----------------------------------------------------------------------------- waivers
def test_a_waiver_turns_its_check_into_a_named_warning_for_its_scope_only(wh):
    from winback.quality import waivers

    execute(wh, "delete from raw.sales_lines where order_date = date '2025-04-04'")  # daily_volume fails
    assert run_gate(wh, "raw", AS_OF, None, "blocked").failed_blocking == ["sales_lines.daily_volume"]

    with psycopg.connect(wh) as conn:
        other_day = waivers.give(conn, "sales_lines.daily_volume", "another night", as_of=AS_OF - dt.timedelta(1),
                                 waived_by="ops")
        other_check = waivers.give(conn, "sales_lines.fresh", "not this one", as_of=AS_OF, waived_by="ops")
        expired = waivers.give(conn, "sales_lines.daily_volume", "too old", as_of=AS_OF, waived_by="ops")
        conn.execute("update audit.waivers set expires_at = now() - interval '1 minute' where waiver_id = %s",
                     (expired.waiver_id,))
    assert other_day and other_check
    assert not run_gate(wh, "raw", AS_OF, None, "mismatched").success

    with psycopg.connect(wh) as conn:
        waiver = waivers.give(conn, "sales_lines.daily_volume", "public holiday: no sales", as_of=AS_OF,
                              waived_by="ops")
    result = run_gate(wh, "raw", AS_OF, None, "waived")

    assert result.success and result.waived == ["sales_lines.daily_volume"], result.message
    assert "sales_lines.daily_volume" in result.failed_warning
    assert f"waiver {waiver.waiver_id} by ops" in result.observed["sales_lines.daily_volume"]["waived"]
    assert "waived: sales_lines.daily_volume" in result.message
    assert one(wh, "select waived from audit.validation_results where validation_id = %s",
               (result.validation_id,))[0] == ["sales_lines.daily_volume"]
    page = "".join(p.read_text() for p in Path(result.data_docs_path).parent.rglob("*.html"))
    assert "WAIVED" in page and "public holiday: no sales" in page


@pytest.mark.parametrize(("check", "kwargs", "message"), [
    ("sales_lines.no_such_check", {"as_of": AS_OF}, "no blocking check"),
    ("sales_lines.loaded_recently", {"as_of": AS_OF}, "no blocking check"),  # a warning needs no waiver
    ("sales_lines.daily_volume", {"as_of": AS_OF, "reason": " "}, "needs a reason"),
    ("sales_lines.daily_volume", {}, "one as-of date"),
    ("sales_lines.daily_volume", {"quarter_start": QUARTER}, "nightly raw suite"),
    ("kpi_quarterly.one_row_per_quarter", {"quarter_start": dt.date(2025, 2, 1)}, "not the first day"),
])
def test_a_waiver_that_cannot_apply_is_refused_in_one_line(wh, check, kwargs, message):
    from winback.quality import waivers

    reason = kwargs.pop("reason", "because")
    with psycopg.connect(wh) as conn, pytest.raises(waivers.WaiverError, match=message):
        waivers.give(conn, check, reason, **kwargs)
