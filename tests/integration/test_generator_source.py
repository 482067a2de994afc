"""The demo sales system in a real PostgreSQL: table shapes, counts, and one day more."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from winback.generator import GeneratorConfig, GeneratorError, advance_one_day, generate_source

pytestmark = pytest.mark.integration

# Column names and types of the data contract (docs/data-contract.md).
TABLES = {
    "sales_lines": [("line_id", "text"), ("order_id", "text"), ("client_id", "text"), ("order_date", "date"),
                    ("quantity", "numeric"), ("net_amount", "numeric"), ("cost_amount", "numeric"),
                    ("product_id", "text"), ("channel", "text"), ("status", "text"),
                    ("updated_at", "timestamp with time zone")],
    "clients": [("client_id", "text"), ("name", "text"), ("region", "text"), ("industry", "text"),
                ("manager_id", "text"), ("acquisition_channel", "text"), ("potential_revenue", "numeric"),
                ("email", "text"), ("phone", "text"), ("created_at", "timestamp with time zone"),
                ("updated_at", "timestamp with time zone")],
    "managers": [("manager_id", "text"), ("name", "text"), ("team", "text"), ("active", "boolean")],
}
CONTACT_COLUMNS = ["contact_id", "client_id", "manager_id", "contact_at", "channel", "direction", "outcome",
                   "loss_reason", "nps_score", "notes", "campaign_id", "offer_type", "offer_value", "updated_at"]
CAMPAIGN_COLUMNS = ["campaign_id", "name", "start_date", "end_date", "target_segment", "cost", "updated_at"]

# More corrections and contacts than the default, so that every advanced day of this small
# population re-delivers some lines and has a contacts file.
CONFIG = GeneratorConfig(seed=11, target_lines=5_000, correction_share=0.25, contacts_per_client_year=12)


def contact_rows(folder: Path, entity: str = "contacts", columns: list[str] = CONTACT_COLUMNS) -> list[dict[str, str]]:
    rows = []
    for path in sorted(folder.glob(f"{entity}_*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == columns
            rows.extend(reader)
    return rows


def lines(conn: psycopg.Connection) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in conn.execute(
        "select line_id, order_date, net_amount, status, updated_at from public.sales_lines")}


def test_generate_source_builds_the_contract_tables(source_dsn, tmp_path):
    summary = generate_source(CONFIG, source_dsn, str(tmp_path))
    assert summary.as_of == CONFIG.as_of
    with psycopg.connect(source_dsn) as conn:
        for table, columns in TABLES.items():
            found = conn.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'public' and table_name = %s order by ordinal_position", (table,)).fetchall()
            assert found == columns, table
        indexed = {row[0] for row in conn.execute(
            "select tablename from pg_indexes where schemaname = 'public' and indexdef like '%(updated_at)%'")}
        assert {"sales_lines", "clients"} <= indexed

        count, distinct, last_day, last_update, returns, cancelled = conn.execute(
            "select count(*), count(distinct line_id), max(order_date), max(updated_at)::date, "
            "count(*) filter (where status = 'returned' and quantity < 0 and net_amount < 0), "
            "count(*) filter (where status = 'cancelled') from public.sales_lines").fetchone()
        assert count == summary.sales_lines == distinct
        assert 4_000 <= count <= 6_000
        assert last_day <= CONFIG.as_of and last_update <= CONFIG.as_of
        assert returns == summary.returns > 0 and cancelled == summary.cancelled > 0
        corrected = conn.execute(
            "select count(*) from public.sales_lines where updated_at::date > order_date").fetchone()[0]
        assert corrected >= summary.corrections > 0
        assert conn.execute("select count(*) from public.clients").fetchone()[0] == summary.clients
        assert conn.execute("select count(*) from public.managers").fetchone()[0] == summary.managers
        scale = conn.execute("select max(scale(net_amount)), min(scale(net_amount)) from public.sales_lines").fetchone()
        assert scale == (2, 2)

    contacts = contact_rows(tmp_path)
    assert len(contacts) == summary.contacts > 0
    assert {p.name for p in tmp_path.iterdir()} == {p.rsplit("/", 1)[-1] for p in summary.files}
    assert max(dt.datetime.fromisoformat(r["contact_at"]).date() for r in contacts) <= CONFIG.as_of
    # The CRM's campaigns, each in the file of its start day, named by the campaign contacts.
    campaigns = contact_rows(tmp_path, "campaigns", CAMPAIGN_COLUMNS)
    assert len(campaigns) == summary.campaigns > 0
    for row in campaigns:
        start = dt.date.fromisoformat(row["start_date"])
        assert start <= CONFIG.as_of and (tmp_path / f"campaigns_{start.strftime('%Y%m%d')}.csv").exists()
    named = {r["campaign_id"] for r in contacts if r["campaign_id"]}
    assert named and named <= {r["campaign_id"] for r in campaigns}

    # Generating again replaces the tables instead of adding to them.
    again = generate_source(CONFIG, source_dsn, str(tmp_path))
    with psycopg.connect(source_dsn) as conn:
        assert conn.execute("select count(*) from public.sales_lines").fetchone()[0] == again.sales_lines == count


def test_advance_one_day_adds_the_next_day(source_dsn, tmp_path):
    generate_source(CONFIG, source_dsn, str(tmp_path))
    with psycopg.connect(source_dsn) as conn:
        before = lines(conn)
    total_new = total_changed = total_contacts = 0
    for offset in (1, 2, 3):
        day = CONFIG.as_of + dt.timedelta(days=offset)
        summary = advance_one_day(CONFIG, source_dsn, str(tmp_path), day)
        assert summary.as_of == day
        with psycopg.connect(source_dsn) as conn:
            after = lines(conn)
            distinct = conn.execute("select count(distinct line_id) from public.sales_lines").fetchone()[0]
        assert distinct == len(after)
        new = {k: v for k, v in after.items() if k not in before}
        changed = {k: v for k, v in after.items() if k in before and v != before[k]}
        assert len(new) == summary.sales_lines
        assert len(changed) == summary.corrections
        assert all(v[0] == day and v[3].date() == day for v in new.values())
        assert all(isinstance(v[1], Decimal) for v in new.values())
        for line_id, (order_date, amount, status, updated) in changed.items():
            old_date, old_amount, old_status, old_updated = before[line_id]
            assert order_date == old_date < day
            assert updated.date() == day and updated > old_updated
            assert (amount, status) != (old_amount, old_status)
        with psycopg.connect(source_dsn) as conn:
            newest = conn.execute("select max(updated_at)::date from public.sales_lines").fetchone()[0]
        assert newest <= day

        day_file = tmp_path / f"contacts_{day.strftime('%Y%m%d')}.csv"
        assert day_file.exists() == (summary.contacts > 0)
        if summary.contacts:
            with day_file.open(encoding="utf-8", newline="") as handle:
                day_contacts = list(csv.DictReader(handle))
            assert len(day_contacts) == summary.contacts
            assert {dt.datetime.fromisoformat(r["contact_at"]).date() for r in day_contacts} == {day}
        assert max(dt.datetime.fromisoformat(r["contact_at"]).date() for r in contact_rows(tmp_path)) <= day

        total_new += summary.sales_lines
        total_changed += summary.corrections
        total_contacts += summary.contacts
        before = after
    assert total_new > 0 and total_changed > 0 and total_contacts > 0

    # A day applied again changes nothing.
    repeat = advance_one_day(CONFIG, source_dsn, str(tmp_path), day)
    assert (repeat.sales_lines, repeat.corrections, repeat.clients, repeat.client_updates) == (0, 0, 0, 0)
    with psycopg.connect(source_dsn) as conn:
        assert lines(conn) == before


def test_advance_one_day_needs_a_generated_source(source_dsn, tmp_path):
    with pytest.raises(GeneratorError, match="generate_source"):
        advance_one_day(CONFIG, source_dsn, str(tmp_path), CONFIG.as_of + dt.timedelta(days=1))
