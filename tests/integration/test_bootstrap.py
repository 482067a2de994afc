"""Warehouse bootstrap: idempotent, and the role layout the README promises."""

from __future__ import annotations

import psycopg
import pytest

from winback import warehouse

pytestmark = pytest.mark.integration

CATALOG = {
    "schemas": "select nspname, nspacl::text from pg_namespace where nspname !~ '^(pg_|information_schema)' order by 1",
    "relations": "select n.nspname, c.relname, c.relkind, c.relacl::text from pg_class c "
                 "join pg_namespace n on n.oid = c.relnamespace "
                 "where n.nspname !~ '^(pg_|information_schema)' order by 1, 2",
    "columns": "select table_schema, table_name, column_name, data_type, is_nullable from information_schema.columns "
               "where table_schema !~ '^(pg_|information_schema)' order by 1, 2, 3",
    "default_acl": "select defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype, "
                   "defaclacl::text from pg_default_acl order by 1, 2, 3",
    "roles": "select rolname, rolcanlogin from pg_roles where rolname like 'winback_%' order by 1",
}


def catalog(dsn: str) -> dict[str, list[tuple]]:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG.items()}


def test_running_bootstrap_twice_changes_nothing(warehouse_dsn):
    first = catalog(warehouse_dsn)
    warehouse.bootstrap(warehouse_dsn)
    assert catalog(warehouse_dsn) == first


def test_layers_and_group_roles_exist(warehouse_dsn):
    state = catalog(warehouse_dsn)
    schemas = {name for name, _ in state["schemas"]}
    assert set(warehouse.SCHEMAS) <= schemas
    assert state["roles"] == [("winback_bi_reader", False), ("winback_loader", False),
                              ("winback_transformer", False)]


def test_bi_reader_reaches_only_marts_and_reporting(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as conn:
        usable = {schema for (schema,) in conn.execute(
            "select nspname from pg_namespace where has_schema_privilege('winback_bi_reader', oid, 'USAGE') "
            "and nspname !~ '^(pg_|information_schema)' and nspname <> 'public'")}
        # a table dbt creates later in marts is readable by BI through the default privileges
        conn.execute("create table marts.created_later (x int)")
        readable = conn.execute(
            "select has_table_privilege('winback_bi_reader', 'marts.created_later', 'SELECT')").fetchone()[0]
        raw = conn.execute(
            "select has_table_privilege('winback_bi_reader', 'raw.sales_lines', 'SELECT')").fetchone()[0]
    assert usable == {"marts", "reporting"}
    assert readable is True and raw is False


def test_an_unreachable_warehouse_is_one_clear_error():
    with pytest.raises(warehouse.WarehouseError, match="cannot connect to PostgreSQL") as caught:
        warehouse.bootstrap("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert "\n" not in str(caught.value)


def raw_columns(conn: psycopg.Connection, table: str) -> list[tuple]:
    return conn.execute("select column_name, data_type from information_schema.columns where table_schema = 'raw'"
                        " and table_name = %s order by ordinal_position", (table,)).fetchall()


def test_a_v1_warehouse_is_upgraded_in_place_to_the_same_tables_as_a_new_one(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as conn:
        new = {table: raw_columns(conn, table) for table in ("contacts", "campaigns")}
        # The raw layer as the v1 bootstrap left it, with a contact in it.
        conn.execute("alter table raw.contacts drop column campaign_id, drop column offer_type,"
                     " drop column offer_value")
        conn.execute("drop table raw.campaigns")
        conn.execute("insert into raw.contacts (contact_id, contact_at, channel, nps_score, _source_object, _load_id)"
                     " values ('K1', '2025-01-10 10:00+00', 'call', 7, 'contacts.csv', 1)")
    warehouse.bootstrap(warehouse_dsn)
    with psycopg.connect(warehouse_dsn) as conn:
        assert {table: raw_columns(conn, table) for table in ("contacts", "campaigns")} == new
        assert conn.execute("select contact_id, nps_score, campaign_id, offer_type, offer_value"
                            " from raw.contacts").fetchall() == [("K1", 7, None, None, None)]
        assert conn.execute("select has_table_privilege('winback_loader', 'raw.campaigns', 'INSERT')").fetchone()[0]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("update raw.contacts set offer_value = -1")
    # The v2 columns come after the load's own in both: the upgrade can only append them.
    assert [name for name, _ in new["contacts"]] == [
        "contact_id", "client_id", "manager_id", "contact_at", "channel", "direction", "outcome", "loss_reason",
        "nps_score", "notes", "updated_at", "_extra", "_source_object", "_load_id", "_loaded_at",
        "campaign_id", "offer_type", "offer_value"]
    assert [name for name, _ in new["campaigns"]] == [
        "campaign_id", "name", "start_date", "end_date", "target_segment", "cost", "updated_at", "_extra",
        "_source_object", "_load_id", "_loaded_at"]
