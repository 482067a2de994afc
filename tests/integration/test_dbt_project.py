"""The dbt project on a real PostgreSQL: a small hand-made raw dataset, `dbt build` (models,
data tests and unit tests) for a fixed as-of date, a few figures computed by hand from the
metric contract, and an incremental run after a correction that must equal a full refresh.

The dataset (L = 180, so lost_date = last purchase day + 181 days; D = 2024-12-31):

* A: buys 2023-01-10 (1000) and 2023-02-15 (500; a cancelled 9999 line that day is
  ignored), returns goods on 2023-02-20 (-100, not a purchase day), then nothing until
  2024-03-01 (800). Lost on 2023-02-15 + 181 = 2023-08-15, back on 2024-03-01 (199 days);
  lost again on 2024-03-01 + 181 = 2024-08-29, still lost at D.
* B: buys every ~5 months (200 each), never a gap over 180 days; one line after D.
* C: only a returned line (-50): never a purchase day, class N.
* D: no row in raw.clients (late-arriving), one small purchase 2024-01-20 (20): lost on
  2024-07-19, one-time small buyer.
* E: 2023-03-01, then 2023-08-29 = exactly 2023-03-01 + 181 (bought on the day it would
  have been lost: no episode), then 2024-02-27 = 2023-08-29 + 182: lost 2024-02-26,
  back the next day; then 2024-07-01 and 2024-10-01 (100 each).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql
from scratch_databases import scratch_database

from winback import warehouse
from winback.dbt import DbtRunError, dbt_env, run_dbt

AS_OF = "2024-12-31"
d = dt.date.fromisoformat

# line_id, order_id, client_id, order_date, net_amount, status, channel
LINES = [
    ("A1", "OA1", "A", "2023-01-10", "1000", "completed", "direct"),
    ("A2", "OA2", "A", "2023-02-15", "500", "completed", "direct"),
    ("A2X", "OA2", "A", "2023-02-15", "9999", "cancelled", "direct"),
    ("A2R", "OA2R", "A", "2023-02-20", "-100", "returned", "direct"),
    ("A3", "OA3", "A", "2024-03-01", "800", "completed", "online"),
    ("B1", "OB1", "B", "2023-01-05", "200", "completed", "dealer"),
    ("B2", "OB2", "B", "2023-06-01", "200", "completed", "dealer"),
    ("B3", "OB3", "B", "2023-11-01", "200", "completed", "dealer"),
    ("B4", "OB4", "B", "2024-04-01", "200", "completed", "dealer"),
    ("B5", "OB5", "B", "2024-09-01", "200", "completed", "dealer"),
    ("B6", "OB6", "B", "2024-12-15", "200", "completed", "dealer"),
    ("B7", "OB7", "B", "2025-01-10", "500", "completed", "dealer"),  # after D: never used
    ("C1", "OC1", "C", "2023-05-05", "-50", "returned", "phone"),
    ("D1", "OD1", "D", "2024-01-20", "20", "completed", "online"),
    ("E1", "OE1", "E", "2023-03-01", "100", "completed", "phone"),
    ("E2", "OE2", "E", "2023-08-29", "100", "completed", "phone"),
    ("E3", "OE3", "E", "2024-02-27", "100", "completed", "phone"),
    ("E4", "OE4", "E", "2024-07-01", "100", "completed", "phone"),
    ("E5", "OE5", "E", "2024-10-01", "100", "completed", "phone"),
]
# client_id, name (PII), region, industry, manager_id, acquisition_channel, potential_revenue
CLIENTS = [
    ("A", "Alpha LLC", "North", "retail", "M1", "web", None),
    ("B", "Beta LLC", "South", "food", "M2", "fair", "5000"),
    ("C", "Gamma LLC", "North", "food", "M1", "web", None),
    ("E", "Epsilon LLC", "West", "retail", "M2", "referral", None),
]
# contact_id, client_id, manager_id, contact_at, channel, outcome, loss_reason, nps_score
CONTACTS = [
    ("K1", "A", "M1", "2023-08-20 10:00+00", "call", "refused", "price", 4),
    ("K2", "A", "M2", "2024-02-10 15:00+00", "meeting", "order_promised", None, None),
    ("K3", "D", "M1", "2024-06-01 09:00+00", "call", "reached", "competitor", None),
    ("K4", "A", "M1", "2025-01-05 09:00+00", "call", "reached", "service", 9),  # after D
    ("K5", None, "M2", "2024-05-05 09:00+00", "email", "no_answer", None, None),  # unmatched
]


def load_raw(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into raw.managers (manager_id, name, team, active, _source_object, _load_id) "
                     "values ('M1', 'Manager One', 'T1', true, 'test', 0), ('M2', 'Manager Two', 'T1', true, 'test', 0)")
        for row in CLIENTS:
            conn.execute("insert into raw.clients (client_id, name, region, industry, manager_id, acquisition_channel, "
                         "potential_revenue, _source_object, _load_id) values (%s, %s, %s, %s, %s, %s, %s, 'test', 0)",
                         row)
        for line_id, order_id, client, day, amount, status, channel in LINES:
            quantity = 1 if Decimal(amount) >= 0 else -1
            conn.execute(
                "insert into raw.sales_lines (line_id, order_id, client_id, order_date, quantity, net_amount, "
                "cost_amount, product_id, channel, status, _source_object, _load_id) "
                "values (%s, %s, %s, %s, %s, %s, %s, 'P1', %s, %s, 'test', 0)",
                (line_id, order_id, client, day, quantity, amount, Decimal(amount) * Decimal("0.6"), channel, status))
        for row in CONTACTS:
            conn.execute("insert into raw.contacts (contact_id, client_id, manager_id, contact_at, channel, outcome, "
                         "loss_reason, nps_score, _source_object, _load_id) "
                         "values (%s, %s, %s, %s, %s, %s, %s, %s, 'test', 0)", row)


def query(dsn: str, statement: str, *params) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(statement, params).fetchall()


# Bookkeeping of the incremental models (when a row was computed), not a figure.
BOOKKEEPING = {"processed_through", "computed_as_of"}


def snapshot(dsn: str) -> dict[str, list[tuple]]:
    """Every row of every marts and kpi_staging table, sorted (for exact comparison)."""
    tables = query(dsn, "select table_schema, table_name from information_schema.tables "
                        "where table_schema in ('marts', 'kpi_staging') order by 1, 2")
    out = {}
    for schema, table in tables:
        columns = [c for (c,) in query(dsn, "select column_name from information_schema.columns where table_schema = %s "
                                            "and table_name = %s order by ordinal_position", schema, table)
                   if c not in BOOKKEEPING]
        statement = sql.SQL("select {} from {}").format(sql.SQL(", ").join(map(sql.Identifier, columns)),
                                                       sql.Identifier(schema, table))
        with psycopg.connect(dsn) as conn:
            out[f"{schema}.{table}"] = sorted(conn.execute(statement).fetchall(), key=repr)
    return out


@pytest.fixture(scope="module")
def built_dsn(pg_admin_dsn):
    """One warehouse for the module's read-only tests: raw data loaded, `dbt build` done."""
    with scratch_database(pg_admin_dsn, "wb_dbt") as (_, dsn):
        warehouse.bootstrap(dsn)
        load_raw(dsn)
        run_dbt(["build"], dsn, as_of=AS_OF)  # models, data tests and the unit tests
        yield dsn


def test_dbt_env_reads_tcp_and_unix_socket_uris():
    tcp = dbt_env("postgresql://bi:p%40ss@db.internal:6432/dwh?sslmode=require")
    assert (tcp["DBT_HOST"], tcp["DBT_PORT"], tcp["DBT_USER"], tcp["DBT_PASSWORD"], tcp["DBT_DBNAME"]) == (
        "db.internal", "6432", "bi", "p@ss", "dwh")
    assert tcp["DBT_SSLMODE"] == "require"
    socket = dbt_env("postgresql://postgres:@/winback?host=/var/run/pg%20sock")
    assert (socket["DBT_HOST"], socket["DBT_PORT"], socket["DBT_USER"], socket["DBT_PASSWORD"],
            socket["DBT_DBNAME"]) == ("/var/run/pg sock", "5432", "postgres", "", "winback")
    assert socket["DBT_PROFILES_DIR"].endswith("dbt_project")


@pytest.mark.integration
def test_lost_episodes_follow_the_contract(built_dsn):
    rows = query(built_dsn, "select client_id, episode_number, last_purchase_date, lost_date, return_date, "
                            "days_to_return, is_returned from marts.fct_lost_episodes order by 1, 2")
    assert rows == [
        ("A", 1, d("2023-02-15"), d("2023-08-15"), d("2024-03-01"), 199, True),
        ("A", 2, d("2024-03-01"), d("2024-08-29"), None, None, False),
        ("D", 1, d("2024-01-20"), d("2024-07-19"), None, None, False),
        ("E", 1, d("2023-08-29"), d("2024-02-26"), d("2024-02-27"), 1, True),
    ]
    money = query(built_dsn, "select revenue_lost_ttm, revenue_recovered_90d, is_contacted_after_loss, loss_reason "
                             "from marts.fct_lost_episodes where client_id = 'A' and episode_number = 1")
    # 1000 + 500 - 100 (the cancelled 9999 ignored); recovered: the 800 of 2024-03-01.
    assert money == [(Decimal("1400"), Decimal("800"), True, "price")]


@pytest.mark.integration
def test_quarterly_kpis_by_hand(built_dsn):
    kpis = {row[0]: row[1:] for row in query(
        built_dsn, "select quarter_start, active_clients_start, new_clients, lost_clients, returned_clients, "
                   "lost_pool_start, churn_rate, winback_rate, revenue_lost_ttm, revenue_recovered_90d, "
                   "is_window_complete, median_days_to_return, lost_contacted_share, as_of_date "
                   "from kpi_staging.kpi_quarterly")}
    # Quarters from the earliest purchase day's (2023-Q1) to the last closed one (2024-Q4).
    assert sorted(kpis) == [d(f"{y}-{m:02d}-01") for y in (2023, 2024) for m in (1, 4, 7, 10)]
    # 2023-Q1: nobody bought before it: no active client, churn and winback null.
    assert kpis[d("2023-01-01")][:7] == (0, 3, 0, 0, 0, None, None)
    # 2023-Q3: A, B, E active; A lost (contacted 5 days later).
    q3 = kpis[d("2023-07-01")]
    assert q3[:5] == (3, 0, 1, 0, 0)
    assert q3[5] == pytest.approx(1 / 3) and q3[6] == 0
    assert (q3[7], q3[11]) == (Decimal("1400"), 1)
    # 2024-Q1: B, E active, A in the pool, D new, E lost, A and E back: winback 2 / (1 + 1).
    q1 = kpis[d("2024-01-01")]
    assert q1[:7] == (2, 1, 1, 2, 1, 0.5, 1.0)
    assert (q1[7], q1[8], q1[9], q1[10], q1[12]) == (Decimal("200"), Decimal("900"), True, 100, d(AS_OF))


@pytest.mark.integration
def test_segments_and_work_list_by_hand(built_dsn):
    # 2023-06-30, window 2022-07-01..2023-06-30: A 1400, B 400, E 100 (total 1900); C -50.
    # share_before: A 0, B 1400/1900 = 0.74 (A), E 1800/1900 = 0.947 (B).
    segments = dict(query(built_dsn, "select client_id, abc_class from marts.fct_client_segments "
                                     "where quarter_end = '2023-06-30'"))
    assert segments == {"A": "A", "B": "A", "C": "N", "E": "B"}
    # 2024-06-30: A 800, B 400, E 200, D 20 (1420): D's share_before 1400/1420 -> C.
    work_list = query(built_dsn, "select client_id, lost_date, purchase_days, abc_class, winback_eligible, "
                                 "winback_rank, contacted_since_lost from marts.lost_clients order by winback_rank")
    assert work_list == [
        ("A", d("2024-08-29"), 3, "A", True, 1, False),
        ("D", d("2024-07-19"), 1, "C", False, 2, False),
    ]
    attribution = query(built_dsn, "select client_id, is_attributed, attributed_manager_id, attributed_channel "
                                   "from marts.fct_winback_attribution order by 1")
    assert attribution == [("A", True, "M2", "meeting"), ("E", False, None, None)]
    cohort = query(built_dsn, "select lost_episodes, returned_within_90, returned_within_365, return_rate_365, "
                              "window_closed_365 from marts.fct_cohort_return_rates "
                              "where cohort_quarter = '2023-07-01' and dimension = 'overall'")
    assert cohort == [(1, 0, 1, 1.0, True)]


@pytest.mark.integration
def test_late_arriving_client_exists_without_pii(built_dsn):
    assert query(built_dsn, "select is_known_client, region from marts.dim_clients where client_id = 'D'") == [
        (False, None)]
    columns = {c for (c,) in query(built_dsn, "select column_name from information_schema.columns "
                                              "where table_schema = 'marts'")}
    assert not columns & {"name", "email", "phone", "notes"}


@pytest.mark.integration
def test_a_new_as_of_date_keeps_dbts_partial_parse(warehouse_dsn, tmp_path):
    # D changes every night. Passed as a --vars value it would make dbt parse the whole
    # project again on every run (and in every Cosmos task); in the environment it does not.
    for as_of in ("2024-06-30", "2024-07-01"):
        run_dbt(["parse", "--target-path", str(tmp_path), "--log-path", str(tmp_path)], warehouse_dsn, as_of=as_of)
    second_run = (tmp_path / "dbt.log").read_text().split("running dbt with arguments")[-1]
    assert "Partial parsing enabled, no changes found" in second_run


@pytest.mark.integration
def test_dbt_failure_names_the_failing_node(built_dsn):
    with pytest.raises(DbtRunError, match="int_client_days"):
        run_dbt(["run", "--select", "int_client_days"], built_dsn, as_of="2024-13-45")


@pytest.mark.integration
def test_incremental_run_after_a_correction_equals_a_full_refresh(warehouse_dsn):
    load_raw(warehouse_dsn)
    run_dbt(["run"], warehouse_dsn, as_of=AS_OF)
    with psycopg.connect(warehouse_dsn) as conn:
        # Corrections re-deliver old lines: A's 2023-02-15 line moves to 2023-02-25 (its
        # cancelled twin stays), B's 2024-12-15 line turns out to be C's.
        conn.execute("update raw.sales_lines set order_date = '2023-02-25', _loaded_at = clock_timestamp() "
                     "where line_id = 'A2'")
        conn.execute("update raw.sales_lines set client_id = 'C', _loaded_at = clock_timestamp() "
                     "where line_id = 'B6'")
    run_dbt(["run"], warehouse_dsn, as_of=AS_OF)
    incremental = snapshot(warehouse_dsn)
    # Only the client-days the corrections touched were recomputed.
    latest = query(warehouse_dsn, "select client_id, order_date, line_count from intermediate.int_client_daily_revenue "
                                  "where processed_through = (select max(processed_through) "
                                  "from intermediate.int_client_daily_revenue) order by 1, 2")
    # B's 2024-12-15 lost its only line: kept with no line, so the per-client models
    # downstream see that B changed.
    assert latest == [("A", d("2023-02-15"), 1), ("A", d("2023-02-25"), 1), ("B", d("2024-12-15"), 0),
                      ("C", d("2024-12-15"), 1)]
    # The correction is in the marts: A's last purchase is now 2023-02-25, lost 181 days later.
    assert query(warehouse_dsn, "select last_purchase_date, lost_date from marts.fct_lost_episodes "
                                "where client_id = 'A' and episode_number = 1") == [(d("2023-02-25"), d("2023-08-25"))]

    run_dbt(["run", "--full-refresh"], warehouse_dsn, as_of=AS_OF)
    full = snapshot(warehouse_dsn)
    assert len(full) >= 12
    for table in full:
        assert incremental[table] == full[table], f"{table} differs between incremental and full refresh"


# Nights of a changing warehouse: (D, statements run on raw before that night's dbt run).
# Each night one warehouse runs dbt incrementally, a twin runs a full refresh; their marts
# must be equal. The nights cross a quarter end, A's lost date (2024-03-01 + 181 =
# 2024-08-29), late corrections into a closed quarter, a reassigned client, new
# contacts, and finally D moving backwards.
NIGHTS = [
    ("2024-06-25", []),
    ("2024-07-02", [
        # a new client's first purchase, a contact with a loss reason, A reassigned to M2
        "insert into raw.sales_lines (line_id, order_id, client_id, order_date, quantity, net_amount, cost_amount,"
        " channel, status, _source_object, _load_id, _loaded_at) values"
        " ('F1', 'OF1', 'F', '2024-07-01', 1, 300, 100, 'online', 'completed', 'test', 1, clock_timestamp())",
        "insert into raw.contacts (contact_id, client_id, manager_id, contact_at, channel, outcome, loss_reason,"
        " _source_object, _load_id, _loaded_at) values"
        " ('K6', 'D', 'M2', '2024-07-01 10:00+00', 'call', 'refused', 'price', 'test', 1, clock_timestamp())",
        "update raw.clients set manager_id = 'M2', _loaded_at = clock_timestamp() where client_id = 'A'",
    ]),
    ("2024-08-30", [
        # a late line into the closed Q2 (C's first purchase), a correction of E's 2024-07-01 line
        "insert into raw.sales_lines (line_id, order_id, client_id, order_date, quantity, net_amount, cost_amount,"
        " channel, status, _source_object, _load_id, _loaded_at) values"
        " ('C2', 'OC2', 'C', '2024-06-20', 1, 900, 500, 'phone', 'completed', 'test', 2, clock_timestamp())",
        "update raw.sales_lines set net_amount = 50, _loaded_at = clock_timestamp() where line_id = 'E4'",
    ]),
    ("2024-12-31", [
        # F's only line turns out to be B's: F has no line left
        "update raw.sales_lines set client_id = 'B', _loaded_at = clock_timestamp() where line_id = 'F1'",
        "insert into raw.contacts (contact_id, client_id, manager_id, contact_at, channel, outcome, nps_score,"
        " _source_object, _load_id, _loaded_at) values"
        " ('K7', 'A', 'M2', '2024-12-20 10:00+00', 'call', 'reached', 7, 'test', 3, clock_timestamp())",
    ]),
    ("2024-10-15", []),  # a re-run for an earlier date
]


def test_nightly_incremental_runs_equal_full_refreshes(warehouse_dsn, make_database):
    twin = make_database("wb_twin")
    warehouse.bootstrap(twin)
    for dsn in (warehouse_dsn, twin):
        load_raw(dsn)
    for night, (as_of, statements) in enumerate(NIGHTS):
        for dsn in (warehouse_dsn, twin):
            with psycopg.connect(dsn) as conn:
                for statement in statements:
                    conn.execute(statement)
        run_dbt(["run"], warehouse_dsn, as_of=as_of)
        run_dbt(["run", "--full-refresh"], twin, as_of=as_of)
        incremental, full = snapshot(warehouse_dsn), snapshot(twin)
        assert set(incremental) == set(full)
        for table in full:
            assert incremental[table] == full[table], f"night {night} (D = {as_of}): {table} differs"
    # The nights did reach the cases they are there for.
    assert query(warehouse_dsn, "select count(*) from marts.fct_lost_episodes where client_id = 'A'") == [(2,)]
    assert query(warehouse_dsn, "select count(*) from marts.dim_clients where client_id = 'F'") == [(0,)]


@pytest.mark.integration
def test_a_v1_warehouse_takes_the_v2_contact_columns_on_its_next_night(warehouse_dsn):
    """A warehouse built before data contract v2 keeps its incremental contacts copy: the next
    night appends the campaign columns (nulls for the contacts loaded before, which had none)
    and carries them through to the campaign results."""
    load_raw(warehouse_dsn)
    run_dbt(["run", "--select", "+int_contacts"], warehouse_dsn, as_of=AS_OF)
    with psycopg.connect(warehouse_dsn) as conn:  # the copy as a v1 build left it
        conn.execute("drop view intermediate.int_contacts")
        conn.execute("alter table staging.stg_crm__contacts drop column campaign_id, drop column offer_type, "
                     "drop column offer_value")
        # A's episode lost since 2024-08-29 (test_lost_episodes_follow_the_contract), called in a campaign.
        conn.execute("insert into raw.contacts (contact_id, client_id, manager_id, contact_at, channel, outcome, "
                     "campaign_id, offer_type, offer_value, _source_object, _load_id) values ('K9', 'A', 'M1', "
                     "'2024-09-10 10:00+00', 'call', 'reached', 'W1', ' Gift ', 25, 'test', 1)")
    run_dbt(["run", "--select", "+int_campaign_episodes"], warehouse_dsn, as_of=AS_OF)
    assert query(warehouse_dsn, "select contact_id, campaign_id, offer_type, offer_value from "
                                "staging.stg_crm__contacts where campaign_id is not null or contact_id = 'K1' "
                                "order by 1") == [("K1", None, None, None), ("K9", "W1", "gift", Decimal(25))]
    assert query(warehouse_dsn, "select campaign_id, client_id, offer_type, offer_value from "
                                "intermediate.int_campaign_episodes") == [("W1", "A", "gift", Decimal(25))]
