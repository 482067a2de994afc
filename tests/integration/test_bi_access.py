"""BI access: a login granted winback_bi_reader reads the marts and the reporting layer,
and nothing else — no raw, audit, staging, intermediate or unpublished KPI rows, and no
personal data (client names, e-mails, phones, contact notes) anywhere it can read.

The warehouse is the report tests' one (tests/integration/test_report.py): built by dbt
from the quality gate's dataset (the BI views in reporting are dbt models:
dbt_project/models/reporting), with published quarters. The login is
a real role on the server (roles are cluster-wide: a unique name, dropped at teardown)
and every check connects as it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import urllib.parse
import uuid

import psycopg
import pytest
from integration.test_report import build_published_warehouse
from psycopg import sql
from scratch_databases import scratch_database

from winback.report import bi_views, render_report

pytestmark = pytest.mark.integration

# The BI views, one dbt model per file of dbt_project/models/reporting.
BI_VIEWS = bi_views()

# What BI must be able to start from.
MARTS = ["lost_clients", "dim_clients", "fct_lost_episodes", "fct_client_segments", "fct_segment_migrations",
         "fct_manager_segment_migrations", "fct_cohort_return_rates", "fct_revenue_deviations",
         "fct_contacts_not_converted", "fct_winback_attribution"]
REPORTING = ["kpi_quarterly", "kpi_quarterly_breakdown", "kpi_quarterly_versions",
             "kpi_quarterly_breakdown_versions", "kpi_publications", *(v.split(".")[1] for v in BI_VIEWS)]
FORBIDDEN_SCHEMAS = ["raw", "audit", "staging", "intermediate", "kpi_staging"]
# Column names that hold personal data in a client, manager or contact context (and the
# raw layer's catch-all for unknown source columns, which may carry any of them).
PII_COLUMN = re.compile(r"(^|_)(name|full_name|e_?mail|phone|mobile|notes?|comment|address)($|_)|^_extra$")
# Names that are not a person's: a win-back campaign's name, as sales wrote it.
NOT_PERSONAL = {"campaign_name"}


@pytest.fixture(scope="module")
def bi_warehouse(pg_admin_dsn, tmp_path_factory):
    with scratch_database(pg_admin_dsn, "wb_bi") as (_, dsn):
        with pytest.MonkeyPatch.context() as patch:
            build_published_warehouse(dsn, tmp_path_factory.mktemp("bi_home"), tmp_path_factory.mktemp("bi_target"),
                                      patch)
        yield dsn


@pytest.fixture(scope="module")
def bi_login(bi_warehouse):
    """A LOGIN role granted winback_bi_reader, and a DSN that connects as it."""
    role = f"wb_bi_login_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(16)
    with psycopg.connect(bi_warehouse, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login password {} in role winback_bi_reader").format(
            sql.Identifier(role), sql.Literal(password)))
    parts = urllib.parse.urlsplit(bi_warehouse)
    host = parts.netloc.rpartition("@")[2]
    dsn = parts._replace(netloc=f"{role}:{urllib.parse.quote(password, safe='')}@{host}").geturl()
    try:
        yield {"role": role, "dsn": dsn}
    finally:
        with psycopg.connect(bi_warehouse, autocommit=True) as conn:
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def relations(dsn: str, schema: str) -> list[str]:
    """Tables and views of a schema, listed by the warehouse owner."""
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p') order by 1", (schema,)).fetchall()]


def test_the_login_is_who_we_think(bi_login):
    with psycopg.connect(bi_login["dsn"]) as conn:
        user, superuser = conn.execute("select current_user, current_setting('is_superuser')").fetchone()
        member = conn.execute("select pg_has_role(current_user, 'winback_bi_reader', 'member')").fetchone()[0]
    assert (user, superuser, member) == (bi_login["role"], "off", True)


def test_bi_reads_the_marts_and_the_reporting_layer(bi_warehouse, bi_login):
    assert set(MARTS) <= set(relations(bi_warehouse, "marts"))
    assert set(REPORTING) <= set(relations(bi_warehouse, "reporting"))
    with psycopg.connect(bi_login["dsn"]) as conn:
        for schema, names in (("marts", relations(bi_warehouse, "marts")),
                              ("reporting", relations(bi_warehouse, "reporting"))):
            for name in names:
                count = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, name)))
                assert count.fetchone()[0] >= 0, f"{schema}.{name}"
        # The published figures and the views over the marts hold the data, not just the shape.
        assert conn.execute("select lost_clients, returned_clients from reporting.kpi_quarterly "
                            "where quarter_start = date '2025-01-01'").fetchone() == (5, 3)
        assert conn.execute("select count(*) from reporting.lost_clients_top "
                            "where quarter_start = date '2025-01-01'").fetchone()[0] == 5
        assert conn.execute("select count(*) from marts.lost_clients").fetchone()[0] == 10


@pytest.mark.parametrize("schema", FORBIDDEN_SCHEMAS)
def test_bi_cannot_read_raw_audit_or_unpublished_layers(schema, bi_warehouse, bi_login):
    names = relations(bi_warehouse, schema)
    assert names, f"{schema} is empty: nothing would be proven"
    with psycopg.connect(bi_login["dsn"], autocommit=True) as conn:
        for name in names:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("select 1 from {} limit 1").format(sql.Identifier(schema, name)))


def test_bi_cannot_change_anything(bi_login):
    statements = [
        "insert into reporting.kpi_publications (quarter_start, version, validation_id, reason, kpi_rows, "
        "breakdown_rows) values (date '2030-01-01', 1, 'x', 'x', 0, 0)",
        "delete from reporting.kpi_quarterly_versions",
        "update marts.lost_clients set winback_rank = 0",
        "create table marts.bi_scratch (x int)",
        "create view reporting.bi_scratch as select 1 as x",
    ]
    with psycopg.connect(bi_login["dsn"], autocommit=True) as conn:
        for statement in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_no_personal_data_is_readable(bi_warehouse, bi_login):
    # The warehouse does hold personal data: in raw, where BI cannot go.
    with psycopg.connect(bi_warehouse) as conn:
        pii = conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema not in ('pg_catalog', 'information_schema') and column_name ~ %s",
            (PII_COLUMN.pattern,)).fetchall()
        assert {("raw", "clients", "name"), ("raw", "clients", "email"), ("raw", "clients", "phone"),
                ("raw", "contacts", "notes"), ("raw", "managers", "name")} <= set(pii)
        readable_pii = [row for row in pii if row[2] not in NOT_PERSONAL and conn.execute(
            "select has_column_privilege(%s, format('%%I.%%I', %s::text, %s::text), %s, 'select')",
            (bi_login["role"], *row)).fetchone()[0]]
    assert readable_pii == []

    # What the login itself can see: information_schema lists only columns it has a
    # privilege on, so this is everything it can read.
    with psycopg.connect(bi_login["dsn"]) as conn:
        visible = conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema not in ('pg_catalog', 'information_schema')").fetchall()
        granted = conn.execute(
            "select distinct table_schema from information_schema.column_privileges "
            "where grantee in (current_user, 'winback_bi_reader', 'PUBLIC') "
            "and table_schema not in ('pg_catalog', 'information_schema')").fetchall()
    assert {schema for schema, _, _ in visible} == {"marts", "reporting"}
    assert {row[0] for row in granted} <= {"marts", "reporting"}
    assert {(s, t) for s, t, _ in visible} >= {("marts", m) for m in MARTS} | {("reporting", r) for r in REPORTING}
    assert [row for row in visible if PII_COLUMN.search(row[2]) and row[2] not in NOT_PERSONAL] == []


def test_bi_views_are_documented(bi_warehouse):
    with psycopg.connect(bi_warehouse) as conn:
        for view in BI_VIEWS:
            assert conn.execute("select obj_description(%s::regclass, 'pg_class')", (view,)).fetchone()[0], view
            undocumented = conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 "
                "and not attisdropped and col_description(attrelid, attnum) is null", (view,)).fetchall()
            assert undocumented == [], view


def test_bi_views_are_the_marts_renamed(bi_warehouse):
    pairs = [
        ("select quarter_end, segmentation, from_segment, to_segment, clients, revenue_last_4_quarters "
         "from reporting.segment_migration",
         "select quarter_end, segmentation, from_class, to_class, clients, window_revenue "
         "from marts.fct_segment_migrations"),
        ("select cohort_quarter, dimension, dimension_value, lost_clients, returned_within_180_days, "
         "return_rate_365_days, is_final_90_days from reporting.cohort_return_rates",
         "select cohort_quarter, dimension, dimension_value, lost_episodes, returned_within_180, return_rate_365, "
         "window_closed_90 from marts.fct_cohort_return_rates"),
        ("select client_id, episode_number, lost_date, revenue_12m_before_loss, contacted_within_30_days "
         "from reporting.lost_clients_top",
         "select client_id, episode_number, lost_date, revenue_lost_ttm, is_contacted_after_loss "
         "from marts.fct_lost_episodes"),
        ("select quarter_start, client_id, contacts_not_converted from reporting.contacts_not_converted",
         "select quarter_start, client_id, contacts_not_converted from marts.fct_contacts_not_converted"),
        ("select quarter_start, sum(clients_won_back) from reporting.winback_by_manager group by 1",
         "select return_quarter, count(*) from marts.fct_winback_attribution group by 1"),
        ("select quarter_start, sum(clients_won_back) from reporting.winback_by_channel group by 1",
         "select return_quarter, count(*) from marts.fct_winback_attribution group by 1"),
    ]
    with psycopg.connect(bi_warehouse) as conn:
        for view_query, mart_query in pairs:
            view_rows = sorted(conn.execute(view_query).fetchall())
            assert view_rows, view_query
            assert view_rows == sorted(conn.execute(mart_query).fetchall()), view_query
        # Ranks restart per quarter and follow the revenue.
        assert conn.execute("select count(*) from (select quarter_start, revenue_rank, revenue_12m_before_loss, "
                            "lag(revenue_12m_before_loss) over (partition by quarter_start order by revenue_rank) "
                            "as previous from reporting.lost_clients_top) as ranked "
                            "where revenue_12m_before_loss > previous").fetchone()[0] == 0


def test_the_bi_views_are_the_reporting_dbt_models():
    assert sorted(BI_VIEWS) == sorted(f"reporting.{name}" for name in (
        "segment_migration", "manager_segment_moves", "cohort_return_rates", "lost_clients_top",
        "winback_attribution", "winback_by_manager", "winback_by_channel", "contacts_not_converted",
        "clients_at_risk", "early_warning_backtest", "nps_by_quarter", "winback_work_list", "client_loyalty",
        "promoters", "contact_coverage_by_manager", "revenue_deviations", "loss_reason_recording",
        "campaign_results"))


def test_bi_views_are_views_granted_to_bi_by_dbt(bi_warehouse):
    # dbt's grants config: each view's own ACL names winback_bi_reader, after every rebuild.
    with psycopg.connect(bi_warehouse) as conn:
        for view in BI_VIEWS:
            kind, grantees = conn.execute(
                "select c.relkind, array(select a.grantee::regrole::text from aclexplode(c.relacl) as a "
                "where a.privilege_type = 'SELECT') from pg_class as c where c.oid = %s::regclass",
                (view,)).fetchone()
            assert (kind, "winback_bi_reader" in grantees) == ("v", True), (view, kind, grantees)


def test_the_bi_login_can_render_the_report(bi_login, tmp_path):
    # The report reads the published reporting layer only: a BI login renders it; the gate
    # run's details (audit schema) are the one thing it cannot see, and the page says so.
    html = render_report(bi_login["dsn"], dt.date(2025, 1, 1), tmp_path, pdf=False).read_text(encoding="utf-8")
    assert 'data-kpi="lost_clients" data-kind="count" data-value="5"' in html
    assert 'data-gate="unknown"' in html
    assert "which this login cannot read" in html
