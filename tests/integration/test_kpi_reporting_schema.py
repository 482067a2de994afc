"""The published KPI tables and views follow the one KPI definition (issue 16), on a real
warehouse: bootstrap gives them every defined column with its comment, and a KPI column
added to the definition is added to the tables and shown by the views (no SQL edited)."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from winback import kpi_definition, warehouse

pytestmark = pytest.mark.integration

RELATIONS = ("reporting.kpi_quarterly_versions", "reporting.kpi_quarterly_breakdown_versions",
             "reporting.kpi_quarterly", "reporting.kpi_quarterly_breakdown")


def columns(dsn: str, relation: str) -> dict[str, tuple[str, str | None]]:
    """column -> (type, comment), in column order."""
    with psycopg.connect(dsn) as conn:
        return {name: (kind, comment) for name, kind, comment in conn.execute(
            "select attname, format_type(atttypid, atttypmod), col_description(attrelid, attnum) "
            "from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum",
            (relation,)).fetchall()}


def test_bootstrap_gives_the_published_tables_every_defined_column(warehouse_dsn):
    definition = kpi_definition.load()
    with psycopg.connect(warehouse_dsn) as conn:
        assert kpi_definition.published_columns_missing(conn, definition) == []
    for relation in RELATIONS:
        got = columns(warehouse_dsn, relation)
        for column in definition.columns:
            assert got[column.name] == (column.data_type, column.comment), (relation, column.name)
        assert all(comment for _, comment in got.values()), relation
    view = list(columns(warehouse_dsn, "reporting.kpi_quarterly"))
    assert view == ["quarter_start", *definition.names, "as_of_date", "version", "published_at", "reason"]
    breakdown = list(columns(warehouse_dsn, "reporting.kpi_quarterly_breakdown"))
    assert breakdown[:3] == ["quarter_start", "dimension", "dimension_value"]
    assert breakdown[3:3 + len(definition.names)] == list(definition.names)


def test_a_kpi_added_to_the_definition_reaches_tables_views_and_bi(warehouse_dsn):
    definition = kpi_definition.load()
    added = dataclasses.replace(definition.column("churn_rate"), name="lost_value_share",
                                comment="A KPI added to the definition only.")
    columns_ = list(definition.columns)
    columns_.insert(3, added)  # in the middle: the views are re-created, not appended to
    grown = dataclasses.replace(definition, columns=tuple(columns_))
    with warehouse.connect(warehouse_dsn) as conn:
        assert kpi_definition.published_columns_missing(conn, grown) == [
            f"{relation}.lost_value_share" for relation in RELATIONS]
        kpi_definition.apply_reporting_schema(conn, grown)
        assert kpi_definition.published_columns_missing(conn, grown) == []
    for relation in RELATIONS:
        assert columns(warehouse_dsn, relation)["lost_value_share"] == ("double precision",
                                                                        "A KPI added to the definition only.")
    assert list(columns(warehouse_dsn, "reporting.kpi_quarterly"))[1:1 + len(grown.names)] == list(grown.names)
    with psycopg.connect(warehouse_dsn) as conn:
        assert conn.execute("select has_table_privilege('winback_bi_reader', 'reporting.kpi_quarterly', 'select')"
                            ).fetchone()[0]
    # bootstrap again with the project's definition: idempotent, the added column is kept in the
    # tables (published versions are never rewritten) and the views show the definition's columns
    warehouse.bootstrap(warehouse_dsn)
    assert "lost_value_share" in columns(warehouse_dsn, "reporting.kpi_quarterly_versions")
    assert "lost_value_share" not in columns(warehouse_dsn, "reporting.kpi_quarterly")
