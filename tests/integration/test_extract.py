"""The nightly extract against a real PostgreSQL: incremental, idempotent, atomic, quarantining."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from winback.config import get_settings
from winback.extract import ENTITIES, DeliveryRejected, QuarantineLimitExceeded, bulk_load, extract_entity, staged

pytestmark = pytest.mark.integration

UTC = dt.UTC
SALES_COLUMNS = ("line_id, order_id, client_id, order_date, quantity, net_amount, cost_amount, product_id, "
                 "channel, status, updated_at")


def create_source(source_dsn: str) -> None:
    with psycopg.connect(source_dsn) as conn:
        conn.execute("""create table public.sales_lines (
            line_id text, order_id text, client_id text, order_date date, quantity numeric,
            net_amount numeric, cost_amount numeric, product_id text, channel text, status text,
            updated_at timestamptz)""")


def put_lines(source_dsn: str, *lines: tuple) -> None:
    """Insert or replace source lines: (line_id, client_id, order_date, net_amount, updated_at)."""
    with psycopg.connect(source_dsn) as conn:
        for line_id, client, day, amount, updated in lines:
            conn.execute("delete from public.sales_lines where line_id = %s", (line_id,))
            conn.execute(
                f"insert into public.sales_lines ({SALES_COLUMNS}) values "
                "(%s, %s, %s, %s, 1, %s, null, 'P1', 'direct', 'completed', %s)",
                (line_id, f"O-{line_id}", client, day, amount, updated),
            )


def raw_lines(warehouse_dsn: str) -> dict[str, tuple]:
    with psycopg.connect(warehouse_dsn) as conn:
        rows = conn.execute(
            "select line_id, net_amount, updated_at, _load_id, _loaded_at from raw.sales_lines").fetchall()
    return {r[0]: r[1:] for r in rows}


def settings_for(warehouse_dsn, source_dsn, landing, **extra):
    return get_settings(warehouse_url=warehouse_dsn, source_url=source_dsn, landing_url=str(landing),
                        timezone="UTC", lookback_days=2, **extra)


def at(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def sql_setup(warehouse_dsn, source_dsn, tmp_path):
    create_source(source_dsn)
    return warehouse_dsn, source_dsn, settings_for(warehouse_dsn, source_dsn, tmp_path)


def test_incremental_pickup_across_nightly_runs(sql_setup):
    warehouse_dsn, source_dsn, settings = sql_setup
    put_lines(source_dsn, ("L1", "C1", "2025-01-01", 100, at("2025-01-01")),
              ("L2", "C1", "2025-01-02", 50, at("2025-01-02")))
    first = extract_entity("sales_lines", as_of=dt.date(2025, 1, 1), settings=settings)
    assert (first.rows_read, first.rows_inserted) == (1, 1)  # L2 was updated after the as-of day
    assert set(raw_lines(warehouse_dsn)) == {"L1"}

    second = extract_entity("sales_lines", as_of=dt.date(2025, 1, 2), settings=settings)
    assert second.rows_inserted == 1 and second.rows_unchanged == 1  # L1 re-read inside the lookback
    put_lines(source_dsn, ("L3", "C2", "2025-01-03", 70, at("2025-01-03")))
    third = extract_entity("sales_lines", as_of=dt.date(2025, 1, 3), settings=settings)
    assert third.rows_inserted == 1
    assert third.watermark_after == at("2025-01-03")
    assert set(raw_lines(warehouse_dsn)) == {"L1", "L2", "L3"}


def test_rerun_of_the_same_date_leaves_raw_exactly_as_before(sql_setup):
    warehouse_dsn, source_dsn, settings = sql_setup
    put_lines(source_dsn, ("L1", "C1", "2025-01-01", 100, at("2025-01-01")),
              ("L2", "C2", "2025-01-01", 20, at("2025-01-01", 13)))
    extract_entity("sales_lines", as_of=dt.date(2025, 1, 1), settings=settings)
    before = raw_lines(warehouse_dsn)
    again = extract_entity("sales_lines", as_of=dt.date(2025, 1, 1), settings=settings)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 2)
    assert raw_lines(warehouse_dsn) == before  # including _load_id and _loaded_at


def test_backfill_of_a_date_range_equals_one_late_run(sql_setup, make_database, tmp_path):
    warehouse_dsn, source_dsn, settings = sql_setup
    put_lines(source_dsn, *[(f"L{d}", "C1", f"2025-01-0{d}", 10 * d, at(f"2025-01-0{d}")) for d in range(1, 6)])
    for day in range(1, 6):
        extract_entity("sales_lines", as_of=dt.date(2025, 1, day), settings=settings)
    other = make_database("wb_wh2")
    from winback.warehouse import bootstrap

    bootstrap(other)
    extract_entity("sales_lines", as_of=dt.date(2025, 1, 5), settings=settings_for(other, source_dsn, tmp_path))

    def business(dsn):
        return {k: v[:2] for k, v in raw_lines(dsn).items()}

    assert business(warehouse_dsn) == business(other)
    assert len(business(warehouse_dsn)) == 5


def test_backfilling_an_old_date_rereads_its_window_without_moving_the_watermark(sql_setup):
    warehouse_dsn, source_dsn, settings = sql_setup
    put_lines(source_dsn, ("L1", "C1", "2025-01-10", 100, at("2025-01-10")))
    extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    # A line of Jan 3 appears in the source, older than the watermark and the lookback:
    put_lines(source_dsn, ("L0", "C1", "2025-01-03", 5, at("2025-01-03")))
    old = extract_entity("sales_lines", as_of=dt.date(2025, 1, 3), settings=settings)
    assert old.rows_inserted == 1
    assert old.watermark_after == at("2025-01-10")


def test_late_update_inside_the_lookback_is_picked_up(sql_setup):
    warehouse_dsn, source_dsn, settings = sql_setup
    put_lines(source_dsn, ("L1", "C1", "2025-01-05", 100, at("2025-01-05", 20)))
    extract_entity("sales_lines", as_of=dt.date(2025, 1, 5), settings=settings)
    # A correction whose updated_at lies before the watermark (a slow source transaction
    # committed late) but inside the 2-day lookback:
    put_lines(source_dsn, ("L1", "C1", "2025-01-05", 90, at("2025-01-05", 19)),
              ("L2", "C1", "2025-01-04", 40, at("2025-01-04", 8)))
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 6), settings=settings)
    lines = raw_lines(warehouse_dsn)
    assert "L2" in lines
    # latest updated_at wins: the older correction of L1 must not overwrite the newer row
    assert lines["L1"][0] == 100
    assert result.rows_updated == 0


def test_a_correction_with_a_newer_updated_at_wins(sql_setup):
    warehouse_dsn, source_dsn, settings = sql_setup
    put_lines(source_dsn, ("L1", "C1", "2025-01-05", 100, at("2025-01-05")))
    extract_entity("sales_lines", as_of=dt.date(2025, 1, 5), settings=settings)
    put_lines(source_dsn, ("L1", "C1", "2025-01-05", 80, at("2025-01-06")))
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 6), settings=settings)
    assert result.rows_updated == 1
    assert raw_lines(warehouse_dsn)["L1"][0] == 80


def test_a_key_twice_in_the_source_table_on_a_first_load_is_read_again_and_quarantined(sql_setup):
    """The bulk path copies both rows; the key build refuses them; the table is read a second
    time and loaded the usual way, which keeps the first row and quarantines the second."""
    warehouse_dsn, source_dsn, _ = sql_setup
    settings = settings_for(warehouse_dsn, source_dsn, "/nonexistent", quarantine_max_share=0.5)
    put_lines(source_dsn, ("L1", "C1", "2025-01-01", 10, at("2025-01-01", 9)),
              ("L2", "C1", "2025-01-01", 20, at("2025-01-01", 10)))
    with psycopg.connect(source_dsn) as conn:  # the source has no key: L1 again, updated later
        conn.execute(f"insert into public.sales_lines ({SALES_COLUMNS}) values "
                     "('L1', 'O-L1', 'C1', '2025-01-01', 1, 11, null, 'P1', 'direct', 'completed', %s)",
                     (at("2025-01-01", 11),))
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 1), settings=settings)
    assert (result.rows_read, result.rows_inserted, result.rows_quarantined) == (3, 2, 1)
    assert [reason for _, _, reason, _ in quarantine(warehouse_dsn)] == [
        "duplicate line_id L1 in this delivery (first at row 1)"]
    assert {k: v[0] for k, v in raw_lines(warehouse_dsn).items()} == {"L1": 10, "L2": 20}


@pytest.mark.parametrize("path", ["bulk", "usual"])
def test_a_failing_chunk_leaves_no_partial_rows_and_the_next_run_completes(sql_setup, monkeypatch, path):
    """The first load into an empty table takes the bulk path (straight into raw); a later
    one stages through the landing table. A crash in the middle of either leaves raw as it was."""
    warehouse_dsn, source_dsn, _ = sql_setup
    settings = settings_for(warehouse_dsn, source_dsn, "/nonexistent", chunk_bytes=4096)
    if path == "usual":
        with psycopg.connect(warehouse_dsn) as conn:
            conn.execute(f"insert into raw.sales_lines ({SALES_COLUMNS}, _source_object, _load_id) values "
                         "('L_old', 'O', 'C1', '2024-12-01', 1, 5, null, 'P1', 'direct', 'completed', null, 't', 0)")
    before = raw_lines(warehouse_dsn)
    key_before = primary_key(warehouse_dsn)
    put_lines(source_dsn, *[(f"L{i:04d}", "C1", "2025-01-01", i, at("2025-01-01")) for i in range(350)])
    module, name = (bulk_load, "bulk_write") if path == "bulk" else (staged, "copy_chunk")
    real = getattr(module, name)
    calls = {"n": 0}

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("network dropped in the middle of the load")
        real(*args)

    monkeypatch.setattr(module, name, failing)
    with pytest.raises(ConnectionError):
        extract_entity("sales_lines", as_of=dt.date(2025, 1, 1), settings=settings)
    assert calls["n"] == 3
    assert raw_lines(warehouse_dsn) == before
    assert primary_key(warehouse_dsn) == key_before  # the bulk path's dropped key is back
    with psycopg.connect(warehouse_dsn) as conn:
        status, message = conn.execute("select status, message from audit.load_runs").fetchone()
        assert conn.execute("select count(*) from audit.watermarks").fetchone()[0] == 0
    assert status == "failed" and "network dropped" in message

    monkeypatch.setattr(module, name, real)
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 1), settings=settings)
    assert result.rows_inserted == 350
    assert len(raw_lines(warehouse_dsn)) == 350 + len(before)


# ------------------------------------------------------------------------------ file drops
CONTACT_HEADER = "contact_id,client_id,manager_id,contact_at,channel,direction,outcome,loss_reason,nps_score,notes"


def quarantine(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as conn:
        return conn.execute(
            "select source_object, row_number, reason, raw_row from audit.quarantine order by quarantine_id"
        ).fetchall()


def test_every_bad_input_case_lands_in_quarantine_with_its_reason(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", quarantine_max_share=0.9)
    (tmp_path / "sales_lines_20250110.csv").write_bytes(
        b"line_id,order_id,client_id,order_date,quantity,net_amount,status\n"
        b"L1,O1,C1,2025-01-10,1,100.00,completed\n"           # 1 good
        b"L2,O1,C1,10/01/2025,1,100.00,completed\n"           # 2 unparseable date
        b"L3,O1,C1,2025-01-10,one,100.00,completed\n"         # 3 unparseable number
        b",O1,C1,2025-01-10,1,100.00,completed\n"             # 4 missing key
        b"L5,O1,C1,2025-02-01,1,100.00,completed\n"           # 5 future order_date
        b"L1,O9,C9,2025-01-09,1,5.00,completed\n"             # 6 duplicate key in one delivery
        b"L7,O1,C\xff\xfe,2025-01-10,1,100.00,completed\n"    # 7 undecodable bytes
        b"L8,O1,C1,2025-01-10,1\n"                            # 8 ragged row
    )
    (tmp_path / "contacts_20250110.csv").write_text(
        CONTACT_HEADER + "\nK1,C1,M1,2025-01-10 10:00,call,outbound,reached,price,12,\n"
        "K2,C1,M1,2025-01-10 11:00,email,outbound,reached,,9,\n")
    sales = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    contacts = extract_entity("contacts", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (sales.rows_read, sales.rows_inserted, sales.rows_quarantined) == (8, 1, 7)
    assert contacts.rows_quarantined == 1
    reasons = {(obj.rsplit("/", 1)[-1], row): reason for obj, row, reason, _ in quarantine(warehouse_dsn)}
    expected = {
        ("sales_lines_20250110.csv", 2): "order_date is not an ISO date",
        ("sales_lines_20250110.csv", 3): "quantity is not a number",
        ("sales_lines_20250110.csv", 4): "missing line_id",
        ("sales_lines_20250110.csv", 5): "after the as-of date",
        ("sales_lines_20250110.csv", 6): "duplicate line_id L1 in this delivery (first at row 1)",
        ("sales_lines_20250110.csv", 7): "undecodable bytes",
        ("sales_lines_20250110.csv", 8): "row has 5 fields",
        ("contacts_20250110.csv", 1): "nps_score 12 outside 0-10",
    }
    assert set(reasons) == set(expected)
    for key, part in expected.items():
        assert part in reasons[key], (key, reasons[key])
    # the raw content is kept, readable, for every quarantined row
    raw_of_row_5 = next(raw for obj, row, _, raw in quarantine(warehouse_dsn) if row == 5 and "sales" in obj)
    assert "2025-02-01" in raw_of_row_5


def test_a_missing_required_column_rejects_the_file_and_names_the_column(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    (tmp_path / "sales_lines_a.csv").write_text(
        "line_id,order_id,order_date,quantity,net_amount\nL1,O1,2025-01-10,1,10\n")
    (tmp_path / "sales_lines_b.csv").write_text(
        "line_id,order_id,client_id,order_date,quantity,net_amount\nL2,O2,C2,2025-01-10,1,20\n")
    with pytest.raises(DeliveryRejected, match="'client_id'"):
        extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert set(raw_lines(warehouse_dsn)) == {"L2"}  # the good file loads, nothing from the bad one
    with psycopg.connect(warehouse_dsn) as conn:
        status, message = conn.execute("select status, message from audit.load_runs").fetchone()
        landed = [r[0] for r in conn.execute("select file_url from audit.landed_files")]
    assert status == "rejected" and "sales_lines_a.csv" in message and "'client_id'" in message
    assert [u.rsplit("/", 1)[-1] for u in landed] == ["sales_lines_b.csv"]


def test_files_load_once_and_a_redelivery_with_corrections_loads_again(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    header = "line_id,order_id,client_id,order_date,quantity,net_amount,updated_at\n"
    drop = tmp_path / "sales_lines_20250110.csv"
    drop.write_text(header + "L1,O1,C1,2025-01-10,1,100,2025-01-10T10:00:00Z\n"
                             "L2,O1,C1,2025-01-10,1,200,2025-01-10T10:00:00Z\n")
    assert extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings).rows_inserted == 2
    assert extract_entity("sales_lines", as_of=dt.date(2025, 1, 11), settings=settings).deliveries == 0
    drop.write_text(header + "L1,O1,C1,2025-01-10,1,100,2025-01-10T10:00:00Z\n"
                             "L2,O1,C1,2025-01-10,1,150,2025-01-11T09:00:00Z\n")
    again = extract_entity("sales_lines", as_of=dt.date(2025, 1, 11), settings=settings)
    assert (again.deliveries, again.rows_updated, again.rows_unchanged) == (1, 1, 1)
    assert raw_lines(warehouse_dsn)["L2"][0] == 150
    assert drop.exists()  # the user's files are never deleted


def test_schema_drift_keeps_extra_columns_and_reports_them(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    (tmp_path / "sales_lines_x.csv").write_text(
        "line_id,order_id,client_id,order_date,quantity,net_amount,warehouse_code\nL1,O1,C1,2025-01-10,1,10,W7\n")
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert result.drift_columns == ["warehouse_code"]
    with psycopg.connect(warehouse_dsn) as conn:
        extra = conn.execute("select _extra from raw.sales_lines").fetchone()[0]
        drift = conn.execute("select drift_columns from audit.load_runs").fetchone()[0]
    assert extra == {"warehouse_code": "W7"} and drift == ["warehouse_code"]


def test_quarantine_share_above_the_limit_fails_and_loads_nothing(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", quarantine_max_share=0.2)
    (tmp_path / "sales_lines_x.csv").write_text(
        "line_id,order_id,client_id,order_date,quantity,net_amount\n"
        "L1,O1,C1,2025-01-10,1,10\nL2,O1,C1,2025-01-10,1,x\nL3,O1,C1,2025-01-10,1,y\n")
    with pytest.raises(QuarantineLimitExceeded, match="2 of 3 rows"):
        extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert raw_lines(warehouse_dsn) == {}
    assert len(quarantine(warehouse_dsn)) == 2
    with psycopg.connect(warehouse_dsn) as conn:
        assert conn.execute("select count(*) from audit.landed_files").fetchone()[0] == 0


@pytest.mark.parametrize("bulk_load", [True, False])
def test_the_same_row_in_two_files_of_a_first_load_keeps_the_later_file(warehouse_dsn, tmp_path, bulk_load):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", bulk_load=bulk_load)
    for name in ("a", "b"):
        (tmp_path / f"sales_lines_{name}.csv").write_text(
            "line_id,order_id,client_id,order_date,quantity,net_amount\nL1,O1,C1,2025-01-10,1,10\n")
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (1, 0, 0)
    with psycopg.connect(warehouse_dsn) as conn:
        source = conn.execute("select _source_object from raw.sales_lines").fetchone()[0]
    assert source.endswith("sales_lines_b.csv")


def test_a_crlf_file_with_a_bad_row_keeps_the_bulk_path(warehouse_dsn, tmp_path, monkeypatch):
    """Chunks copied as they are and chunks written out again go into one COPY: their line
    endings must agree, or PostgreSQL refuses the COPY and the file is read a second time."""
    from winback.extract import sources

    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", chunk_bytes=1024)
    lines = [f"L{i:03d},O1,C1,2025-01-10,1,{i if i != 150 else 'x'}" for i in range(1, 201)]
    (tmp_path / "sales_lines_x.csv").write_bytes(
        ("line_id,order_id,client_id,order_date,quantity,net_amount\r\n" + "\r\n".join(lines) + "\r\n").encode())
    monkeypatch.setattr(sources, "read_file", lambda *a, **k: pytest.fail("the file was read a second time"))
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (result.rows_read, result.rows_inserted, result.rows_quarantined) == (200, 199, 1)
    assert [(row, reason) for _, row, reason, _ in quarantine(warehouse_dsn)] == [
        (150, "net_amount is not a number: 'x'")]


def test_a_first_load_above_the_limit_empties_what_the_bulk_path_copied(warehouse_dsn, tmp_path):
    """Clean chunks went straight into raw before the bad ones were counted: all of it goes."""
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", chunk_bytes=1024)
    lines = [f"L{i:03d},O1,C1,2025-01-10,1,{i if i <= 150 else 'x'}" for i in range(1, 201)]
    (tmp_path / "sales_lines_x.csv").write_text(
        "line_id,order_id,client_id,order_date,quantity,net_amount\n" + "\n".join(lines) + "\n")
    copied = []
    real = bulk_load.bulk_write
    bulk_load.bulk_write = lambda copy, chunk: (copied.append(chunk), real(copy, chunk))
    try:
        with pytest.raises(QuarantineLimitExceeded, match="50 of 200 rows"):
            extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    finally:
        bulk_load.bulk_write = real
    assert copied  # the first chunks did go straight into raw
    assert raw_lines(warehouse_dsn) == {}
    assert len(quarantine(warehouse_dsn)) == 50
    assert primary_key(warehouse_dsn)[:2] == ("sales_lines_pkey", "PRIMARY KEY (line_id)")


def test_parquet_drops_load_like_csv(warehouse_dsn, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    table = pa.table({"line_id": ["L1", "L2"], "order_id": ["O1", "O1"], "client_id": ["C1", "C1"],
                      "order_date": [dt.date(2025, 1, 9), dt.date(2025, 1, 10)], "quantity": [1.0, -1.0],
                      "net_amount": [10.5, -10.5], "status": ["completed", "returned"]})
    pq.write_table(table, tmp_path / "sales_lines_20250110.parquet")
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert result.rows_inserted == 2
    assert raw_lines(warehouse_dsn)["L2"][0] == -10.5


def test_unknown_client_keys_are_kept_and_counted(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    (tmp_path / "clients.csv").write_text("client_id,name\nC1,Acme\n")
    (tmp_path / "sales_lines_x.csv").write_text(
        "line_id,order_id,client_id,order_date,quantity,net_amount\n"
        "L1,O1,C1,2025-01-10,1,10\nL2,O2,C404,2025-01-10,1,10\n")
    extract_entity("clients", as_of=dt.date(2025, 1, 10), settings=settings)
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert result.unknown_keys == 1
    assert set(raw_lines(warehouse_dsn)) == {"L1", "L2"}


def test_more_contract_breaches_are_caught_in_the_database(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", quarantine_max_share=0.9)
    (tmp_path / "sales_lines_1.csv").write_bytes(
        b"line_id,order_id,client_id,order_date,quantity,net_amount,status\n"
        b"L1,O1,C1,2025-01-10,1,NaN,completed\n"
        b"L2,O1,C1,2025-02-30,1,10,completed\n"
        b"L3,O1,C1,2025-01-10,1,10,lost\n"
        b"L4,O1,C1,2025-01-10,1,10,\n"
        b"L5,O1,C1,2025-01-10,1,10,CANCELLED\n"
        b"L6,O1,C1,2025-01-10,1,1\x00,completed\n")
    (tmp_path / "managers.csv").write_text("manager_id,name,active\nM1,Ann,yes\nM2,Bob,maybe\n")
    (tmp_path / "contacts_1.csv").write_text(
        "contact_id,contact_at,channel,nps_score\nK1,2025-01-10 10:00,call,7.5\nK2,2025-01-10 10:00,call,\n")
    extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    extract_entity("managers", as_of=dt.date(2025, 1, 10), settings=settings)
    extract_entity("contacts", as_of=dt.date(2025, 1, 10), settings=settings)
    reasons = {(obj.rsplit("/", 1)[-1], row): reason for obj, row, reason, _ in quarantine(warehouse_dsn)}
    assert "net_amount is not a number" in reasons[("sales_lines_1.csv", 1)]
    assert "order_date is not an ISO date" in reasons[("sales_lines_1.csv", 2)]
    assert "unknown status" in reasons[("sales_lines_1.csv", 3)]
    assert "NUL byte" in reasons[("sales_lines_1.csv", 6)]
    assert "active is not a boolean" in reasons[("managers.csv", 2)]
    assert "nps_score is not an integer" in reasons[("contacts_1.csv", 1)]
    assert len(reasons) == 6
    with psycopg.connect(warehouse_dsn) as conn:
        statuses = dict(conn.execute("select line_id, status from raw.sales_lines").fetchall())
        active = conn.execute("select active from raw.managers where manager_id = 'M1'").fetchone()[0]
    assert statuses == {"L4": "completed", "L5": "cancelled"}  # default and normalised case
    assert active is True


# ------------------------------------------------------------------------------ data contract v2
V2_CONTACT_HEADER = "contact_id,client_id,manager_id,contact_at,channel,outcome,campaign_id,offer_type,offer_value"
CAMPAIGN_HEADER = "campaign_id,name,start_date,end_date,target_segment,cost"


def load_accounts(dsn, entity):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select regexp_replace(f.source_object, '^.*/', ''), f.records, f.loaded, f.unchanged, f.superseded,"
            " f.quarantined from audit.load_files f join audit.load_runs r using (load_id) where r.entity = %s"
            " order by f.load_id, f.delivery", (entity,)).fetchall()


def test_a_v1_contacts_file_and_no_campaigns_file_load_as_before(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    (tmp_path / "contacts_20250110.csv").write_text(
        CONTACT_HEADER + "\nK1,C1,M1,2025-01-10 10:00,call,outbound,reached,price,9,\n")
    campaigns = extract_entity("campaigns", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (campaigns.deliveries, campaigns.rows_read, campaigns.drift_columns, campaigns.rejected) == (0, 0, [], [])
    contacts = extract_entity("contacts", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (contacts.rows_read, contacts.rows_inserted, contacts.rows_quarantined) == (1, 1, 0)
    assert contacts.drift_columns == []
    with psycopg.connect(warehouse_dsn) as conn:
        row = conn.execute("select nps_score, campaign_id, offer_type, offer_value, _extra from raw.contacts").fetchone()
        runs = conn.execute("select entity, status, drift_columns from audit.load_runs order by load_id").fetchall()
    assert row == (9, None, None, None, None)
    assert runs == [("campaigns", "success", None), ("contacts", "success", None)]


@pytest.mark.parametrize("bulk_load", [True, False])
def test_a_v2_contacts_file_and_a_campaigns_file_load_their_values(warehouse_dsn, tmp_path, bulk_load):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", bulk_load=bulk_load)
    (tmp_path / "campaigns.csv").write_text(
        CAMPAIGN_HEADER + "\nW1,Spring win-back,2025-01-01,2025-03-31,lost A,1500.50\n"
        "W2,Planned,2025-06-01,,lost B/C,\n")  # starts after the as-of date: planned, not a breach
    (tmp_path / "contacts_20250110.csv").write_text(
        V2_CONTACT_HEADER + "\nK1,C1,M1,2025-01-09 10:00,call,reached,W1,gift,25.00\n"
        "K2,C2,M1,2025-01-09 11:00,email,no_answer, W1 ,none,0\n"
        "K3,C3,M1,2025-01-09 12:00,call,reached,W9,discount,12.5\n"  # W9: its campaigns row may come later
        "K4,C4,M1,2025-01-09 13:00,call,reached,,,\n")
    campaigns = extract_entity("campaigns", as_of=dt.date(2025, 1, 10), settings=settings)
    contacts = extract_entity("contacts", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (campaigns.rows_inserted, campaigns.rows_quarantined, campaigns.drift_columns) == (2, 0, [])
    assert (contacts.rows_inserted, contacts.rows_quarantined, contacts.drift_columns) == (4, 0, [])
    with psycopg.connect(warehouse_dsn) as conn:
        stored_campaigns = conn.execute(
            "select campaign_id, name, start_date, end_date, target_segment, cost from raw.campaigns order by 1"
        ).fetchall()
        stored_contacts = conn.execute(
            "select contact_id, campaign_id, offer_type, offer_value from raw.contacts order by 1").fetchall()
    assert stored_campaigns == [
        ("W1", "Spring win-back", dt.date(2025, 1, 1), dt.date(2025, 3, 31), "lost A", Decimal("1500.50")),
        ("W2", "Planned", dt.date(2025, 6, 1), None, "lost B/C", None)]
    assert stored_contacts == [("K1", "W1", "gift", Decimal("25.00")), ("K2", "W1", "none", Decimal("0")),
                               ("K3", "W9", "discount", Decimal("12.5")), ("K4", None, None, None)]


@pytest.mark.parametrize("bulk_load", [True, False])
def test_v2_breaches_are_quarantined_with_their_reasons_and_every_record_is_accounted_for(warehouse_dsn, tmp_path,
                                                                                        bulk_load):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", quarantine_max_share=0.6,
                            bulk_load=bulk_load)
    (tmp_path / "campaigns_1.csv").write_text(
        CAMPAIGN_HEADER + "\nW1,Spring,2025-01-01,2025-03-31,lost A,1000\n"
        "W2,Bad cost,2025-01-01,,lost B/C,-100\n"
        "W3,Backwards,2024-02-01,2024-01-01,,\n"
        "W4,One day,2025-01-05,2025-01-05,,0\n")
    (tmp_path / "contacts_1.csv").write_text(
        V2_CONTACT_HEADER + "\nK1,C1,M1,2025-01-09 10:00,call,reached,W1,gift,25.00\n"
        "K2,C1,M1,2025-01-09 11:00,call,refused,W1,discount,-5\n"
        "K3,C2,M1,2025-01-09 12:00,email,reached,W1,none,0\n")
    campaigns = extract_entity("campaigns", as_of=dt.date(2025, 1, 10), settings=settings)
    contacts = extract_entity("contacts", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (campaigns.rows_read, campaigns.rows_inserted, campaigns.rows_quarantined) == (4, 2, 2)
    assert (contacts.rows_read, contacts.rows_inserted, contacts.rows_quarantined) == (3, 2, 1)
    reasons = {(obj.rsplit("/", 1)[-1], row): reason for obj, row, reason, _ in quarantine(warehouse_dsn)}
    assert reasons == {("campaigns_1.csv", 2): "cost -100 is negative",
                       ("campaigns_1.csv", 3): "end_date 2024-01-01 is before start_date 2024-02-01",
                       ("contacts_1.csv", 2): "offer_value -5 is negative"}

    # The corrected campaign arrives with an unchanged one: records = loaded + quarantined + unchanged.
    (tmp_path / "campaigns_2.csv").write_text(
        CAMPAIGN_HEADER + "\nW1,Spring,2025-01-01,2025-03-31,lost A,1000\nW3,Backwards,2024-01-01,2024-02-01,,\n"
        "W5,Worse,2025-01-01,2024-12-31,,-1\n")
    again = extract_entity("campaigns", as_of=dt.date(2025, 1, 11), settings=settings)
    assert (again.rows_inserted, again.rows_unchanged, again.rows_quarantined) == (1, 1, 1)
    accounts = load_accounts(warehouse_dsn, "campaigns") + load_accounts(warehouse_dsn, "contacts")
    assert accounts == [("campaigns_1.csv", 4, 2, 0, 0, 2), ("campaigns_2.csv", 3, 1, 1, 0, 1),
                        ("contacts_1.csv", 3, 2, 0, 0, 1)]
    for _, records, loaded, unchanged, superseded, quarantined in accounts:
        assert records == loaded + quarantined + unchanged + superseded
    # A row that breaks two rules is quarantined for the first: its own values before the rule across them.
    assert quarantine(warehouse_dsn)[-1][2] == "cost -1 is negative"
    with psycopg.connect(warehouse_dsn) as conn:
        assert [r[0] for r in conn.execute("select campaign_id from raw.campaigns order by 1")] == ["W1", "W3", "W4"]
        assert [r[0] for r in conn.execute("select contact_id from raw.contacts order by 1")] == ["K1", "K3"]


# ------------------------------------------------------------------------------ cheap and careful checks
# Each value in its own file (its own delivery, checked on its own): valid edge cases and
# contract breaches of every kind. The loader checks a delivery with cheap operators first
# and runs the careful checks only when a row fails them (validation.py).
SALES_EDGE_HEADER = "line_id,order_id,client_id,order_date,quantity,net_amount,cost_amount,status,updated_at,note"
SALES_EDGE_ROWS = {  # name: (row after line_id, breaks the contract)
    "plain": ("O,C,2025-01-10,1,10.50,,completed,2025-01-10 10:00:00+00,x", False),
    "iso_t_zulu": ("O,C,2025-01-10,2,20,5,,2025-01-10T10:00:00Z,", False),
    "ts_offset_minutes": ("O,C,2025-01-09,-1,-20.5,-5,returned,2025-01-10 10:00:00.123+05:30,", False),
    "ts_date_only": ('O,C,2025-01-09,1,10,,CANCELLED,2025-01-10,""', False),
    "ts_zone_name": ("O,C,2025-01-09,1,10,,Completed,2025-01-10 10:00:00 Europe/Berlin,", False),
    "number_forms": ('O,C,2025-01-09,+1.5, 1e2 ,"",completed,,', False),
    "quoted_empties": ('"O","C","2025-01-09","1","10","","","",""', False),
    "nan": ("O,C,2025-01-10,1,NaN,,completed,,", True),
    "infinity": ("O,C,2025-01-10,1,10,-Infinity,completed,,", True),
    "inf_lower": ("O,C,2025-01-10,inf,10,,completed,,", True),
    "not_a_number": ("O,C,2025-01-10,1,10 EUR,,completed,,", True),
    "date_us": ("O,C,01/10/2025,1,10,,completed,,", True),
    "date_compact": ("O,C,20250110,1,10,,completed,,", True),
    "date_word": ("O,C,yesterday,1,10,,completed,,", True),
    "date_infinity": ("O,C,-infinity,1,10,,completed,,", True),
    "date_padded": ("O,C, 2025-01-10,1,10,,completed,,", True),
    "date_invalid": ("O,C,2025-02-30,1,10,,completed,,", True),
    "date_future": ("O,C,2025-01-11,1,10,,completed,,", True),
    "ts_us": ("O,C,2025-01-10,1,10,,completed,01/10/2025 10:00,", True),
    "ts_word": ("O,C,2025-01-10,1,10,,completed,now,", True),
    "ts_infinity": ("O,C,2025-01-10,1,10,,completed,infinity,", True),
    "ts_short_day": ("O,C,2025-01-10,1,10,,completed,2025-01-1  10:00,", True),
    "ts_invalid": ("O,C,2025-01-10,1,10,,completed,2025-01-10 25:00,", True),
    "status_unknown": ("O,C,2025-01-10,1,10,,lost,,", True),
    "missing_order": ('"",C,2025-01-10,1,10,,completed,,', True),
    "missing_amount": ("O,C,2025-01-10,1,,,completed,,", True),
}
MANAGER_EDGE_ROWS = {"yes": ("Ann,YES", False), "t": ("Bob, t", True), "on": ("Cy,on", True), "empty": ("Di,", False),
                     "false": ("Ed,False", False), "maybe": ("Flo,maybe", True)}
CONTACT_EDGE_ROWS = {"nps": ("2025-01-10 09:00,call,7", False), "nps_high": ("2025-01-10 09:00,call,11", True),
                     "nps_padded": ("2025-01-10 09:00,call, 10", False), "nps_decimal": ("2025-01-10 09:00,call,5.0", True),
                     "future": ("2025-01-11 00:30,call,", True), "no_channel": ("2025-01-10T09:00,,", True)}
OFFER_EDGE_HEADER = "contact_id,contact_at,channel,campaign_id,offer_type,offer_value"
OFFER_EDGE_ROWS = {"offer": ("2025-01-10 09:00,call,W1,gift,12.5", False),
                   "offer_zero": ("2025-01-10 09:00,call,W1,none,0", False),
                   "offer_minus_zero": ("2025-01-10 09:00,call,W1,none,-0.00", False),
                   "offer_padded_campaign": ("2025-01-10 09:00,call, W1 ,gift,", False),
                   "offer_negative": ("2025-01-10 09:00,call,W1,discount,-5", True),
                   "offer_tiny_negative": ("2025-01-10 09:00,call,W1,discount,-0.001", True),
                   "offer_nan": ("2025-01-10 09:00,call,W1,gift,NaN", True)}
CAMPAIGN_EDGE_HEADER = "campaign_id,start_date,end_date,cost"
CAMPAIGN_EDGE_ROWS = {"plain": ("2025-01-01,2025-03-31,1000", False), "planned": ("2025-06-01,,", False),
                      "one_day": ("2025-02-01,2025-02-01,0", False), "cost_minus_zero": ("2025-02-01,,-0", False),
                      "ends_before": ("2025-02-01,2025-01-31,", True), "cost_negative": ("2025-02-01,,-0.01", True),
                      "no_start": (",2025-02-01,", True), "end_invalid": ("2025-02-01,2025-02-30,", True),
                      "both_bad": ("2025-02-01,2025-01-01,-1", True)}


def write_edge_files(landing):
    for name, (row, _) in SALES_EDGE_ROWS.items():
        (landing / f"sales_lines_{name}.csv").write_text(f"{SALES_EDGE_HEADER}\nL_{name},{row}\n")
    for name, (row, _) in MANAGER_EDGE_ROWS.items():
        (landing / f"managers_{name}.csv").write_text(f"manager_id,name,active\nM_{name},{row}\n")
    for name, (row, _) in CONTACT_EDGE_ROWS.items():
        (landing / f"contacts_{name}.csv").write_text(f"contact_id,contact_at,channel,nps_score\nK_{name},{row}\n")
    for name, (row, _) in OFFER_EDGE_ROWS.items():
        (landing / f"contacts_{name}.csv").write_text(f"{OFFER_EDGE_HEADER}\nK_{name},{row}\n")
    for name, (row, _) in CAMPAIGN_EDGE_ROWS.items():
        (landing / f"campaigns_{name}.csv").write_text(f"{CAMPAIGN_EDGE_HEADER}\nW_{name},{row}\n")


@pytest.fixture
def careful_checks(monkeypatch) -> list[str]:
    """The files the careful checks ran on, once per chunk."""
    from winback.extract.validation import DeliveryColumns

    calls: list[str] = []
    real = DeliveryColumns.move_statement

    def spy(self, as_of, source_object, load_id, delivery):
        calls.append(source_object.rsplit("/", 1)[-1])
        return real(self, as_of, source_object, load_id, delivery)

    monkeypatch.setattr(DeliveryColumns, "move_statement", spy)
    return calls


def load_edge_files(dsn, landing):
    settings = settings_for(dsn, None, landing, sales_source="files", quarantine_max_share=1.0)
    for entity in ("managers", "sales_lines", "campaigns", "contacts"):
        extract_entity(entity, as_of=dt.date(2025, 1, 10), settings=settings)


def loaded_state(dsn):
    with psycopg.connect(dsn) as conn:
        raw = {table: conn.execute(
            f"select to_jsonb(t) - '_loaded_at' from raw.{table} t order by 1").fetchall()
            for table in ("sales_lines", "managers", "campaigns", "contacts")}
        quarantined = conn.execute(
            "select entity, source_object, row_number, raw_row, reason from audit.quarantine"
            " order by entity, source_object, row_number").fetchall()
    return raw, quarantined


def test_cheap_checks_pass_exactly_the_rows_the_careful_checks_pass(warehouse_dsn, make_database, tmp_path,
                                                                    monkeypatch, careful_checks):
    from psycopg import sql

    from winback.extract.validation import DeliveryColumns
    from winback.warehouse import bootstrap

    write_edge_files(tmp_path)
    load_edge_files(warehouse_dsn, tmp_path)
    careful_on = set(careful_checks)
    careful_only = make_database("wb_wh_careful")
    bootstrap(careful_only)
    # No row passes: every delivery goes to the careful checks.
    monkeypatch.setattr(DeliveryColumns, "_fast_checks", lambda self, as_of: [sql.SQL("false")])
    load_edge_files(careful_only, tmp_path)

    # Same raw rows (values and types), same quarantine rows (row, raw content, reason).
    assert loaded_state(warehouse_dsn) == loaded_state(careful_only)
    # The careful checks ran exactly on the files with a bad row; the good ones passed the cheap ones.
    bad = {f"sales_lines_{n}.csv" for n, (_, breaks) in SALES_EDGE_ROWS.items() if breaks}
    bad |= {f"managers_{n}.csv" for n, (_, breaks) in MANAGER_EDGE_ROWS.items() if breaks}
    bad |= {f"contacts_{n}.csv" for n, (_, breaks) in {**CONTACT_EDGE_ROWS, **OFFER_EDGE_ROWS}.items() if breaks}
    bad |= {f"campaigns_{n}.csv" for n, (_, breaks) in CAMPAIGN_EDGE_ROWS.items() if breaks}
    assert careful_on == bad
    raw, quarantined = loaded_state(warehouse_dsn)
    assert {r[1].rsplit("/", 1)[-1] for r in quarantined} == bad
    for table, cases in (("sales_lines", SALES_EDGE_ROWS), ("managers", MANAGER_EDGE_ROWS),
                         ("contacts", {**CONTACT_EDGE_ROWS, **OFFER_EDGE_ROWS}), ("campaigns", CAMPAIGN_EDGE_ROWS)):
        assert len(raw[table]) == sum(not breaks for _, breaks in cases.values())
    reasons = {r[1].rsplit("/", 1)[-1]: r[4] for r in quarantined}
    assert reasons["contacts_offer_tiny_negative.csv"] == "offer_value -0.001 is negative"
    assert reasons["campaigns_ends_before.csv"] == "end_date 2025-01-31 is before start_date 2025-02-01"
    assert reasons["campaigns_both_bad.csv"] == "cost -1 is negative"
    assert reasons["campaigns_end_invalid.csv"] == "end_date is not an ISO date: '2025-02-30'"


def test_a_duplicate_key_in_a_clean_delivery_is_quarantined_without_the_careful_checks(warehouse_dsn, tmp_path,
                                                                                     careful_checks):
    (tmp_path / "sales_lines_x.csv").write_text(
        "line_id,order_id,client_id,order_date,quantity,net_amount\n"
        "L1,O1,C1,2025-01-10,1,10\nL2,O1,C1,2025-01-10,1,20\nL1,O9,C9,2025-01-09,1,5\n")
    load_edge_files(warehouse_dsn, tmp_path)
    assert careful_checks == []
    assert [(row, reason) for _, row, reason, _ in quarantine(warehouse_dsn)] == [
        (3, "duplicate line_id L1 in this delivery (first at row 1)")]
    assert {k: v[0] for k, v in raw_lines(warehouse_dsn).items()} == {"L1": 10, "L2": 20}


def test_a_bad_row_sends_only_its_own_chunk_to_the_careful_checks(warehouse_dsn, tmp_path, careful_checks):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files", chunk_bytes=1024)
    lines = [f"L{i:03d},O1,C1,2025-01-10,1,{i}" for i in range(1, 121)]  # ~27 bytes: 3-4 chunks
    lines[49] = "L050,O1,C1,2025-01-10,1,ten"  # does not cast
    lines[89] = "L090,O1,C1,2025-01-10,1"  # ragged: refused by COPY, quarantined row by row
    (tmp_path / "sales_lines_x.csv").write_text(
        "line_id,order_id,client_id,order_date,quantity,net_amount\n" + "\n".join(lines) + "\n")
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (result.rows_read, result.rows_inserted, result.rows_quarantined) == (120, 118, 2)
    assert careful_checks == ["sales_lines_x.csv"]
    assert [(row, reason) for _, row, reason, _ in quarantine(warehouse_dsn)] == [
        (50, "net_amount is not a number: 'ten'"), (90, "row has 5 fields, the header has 6")]
    assert raw_lines(warehouse_dsn)["L120"][0] == 120


# ------------------------------------------------------------------------------ the bulk path of a first load
# A first load (an empty raw table) checks each chunk on the client and COPYs the rows that
# pass straight into raw (bulk.py). Each case below is loaded on its own into an empty table,
# once by the bulk path and once with it turned off; both must store and quarantine the same.
BULK_SALES_HEADER = "line_id,order_id,client_id,order_date,quantity,net_amount,cost_amount,status,updated_at"
BULK_SALES_CASES = {  # name: (rows after line_id, the bulk path copies some of them and keeps them)
    "plain": (["O,C,2025-01-10,1,10.50,,completed,2025-01-10 10:00:00+00"], True),
    "ts_forms": (["O,C,2025-01-09,-1,-20.5,-5,returned,2025-01-10 10:00:00.123+05:30",
                  "O,C,2025-01-09,2,1e2,.5,cancelled,2025-01-10T10:00:00Z", "O,C,2025-01-09,2,3,4,completed,"], True),
    "ts_local": (["O,C,2025-01-09,1,10,,completed,2025-01-10 23:30:00"], True),  # read in the session's zone
    "no_optional_columns": (["O,C,2025-01-10,1,10,,completed,"], True),
    # Valid, but written in forms the SQL path rewrites: such a row takes the SQL path.
    "status_case": (["O,C,2025-01-10,1,10,,Completed,"], False),
    "status_empty": (["O,C,2025-01-10,1,10,,,"], False),
    "quoted_empty": (['O,C,2025-01-10,1,10,"",completed,'], False),
    "number_padded": (["O,C,2025-01-10, 1 ,10,,completed,"], False),
    # Contract breaches: never copied by the bulk path.
    "nan": (["O,C,2025-01-10,1,NaN,,completed,"], False),
    "infinity": (["O,C,2025-01-10,1,10,-Infinity,completed,"], False),
    "date_us": (["O,C,01/10/2025,1,10,,completed,"], False),
    "date_invalid": (["O,C,2025-02-30,1,10,,completed,"], False),
    "date_year_zero": (["O,C,0000-01-10,1,10,,completed,"], False),
    "date_future": (["O,C,2025-01-11,1,10,,completed,"], False),
    "ts_us": (["O,C,2025-01-10,1,10,,completed,01/10/2025 10:00"], False),
    "status_unknown": (["O,C,2025-01-10,1,10,,lost,"], False),
    "missing_order": ([",C,2025-01-10,1,10,,completed,"], False),
    "ragged": (["O,C,2025-01-10,1,10,,completed", "O,C,2025-01-10,1,10,,completed,"], False),
    "blank_line": (["O,C,2025-01-10,1,10,,completed,", "", "O,C,2025-01-10,1,11,,completed,"], False),
    # Passes the client checks, refused by PostgreSQL's cast (offset beyond 15:59): rolled
    # back, loaded the usual way.
    "ts_offset_too_far": (["O,C,2025-01-10,1,10,,completed,2025-01-10 10:00:00+20:00",
                           "O,C,2025-01-10,1,11,,completed,"], False),
    # A key twice: the key build fails, the delivery is loaded the usual way (the first stays).
    "duplicate_key": (["O,C,2025-01-10,1,10,,completed,", "O,C,2025-01-10,1,11,,completed,"], False),
    # Good and bad rows in one chunk: the good ones are copied, the others take the SQL path
    # (which quarantines the bad and loads the valid-but-rewritten).
    "mixed": (["O,C,2025-01-10,1,10,,completed,", "O,C,2025-01-10,1,NaN,,completed,",
               "O,C,2025-01-10,1,12,,Completed,", "O,C,2025-01-10,1,13,,completed,2025-01-10T09:00:00Z"], True),
    # A quote inside a field: PostgreSQL reads C"9"9 as C99, Arrow not; the SQL path decides.
    "quote_mid_field": (['O,C"9"9,2025-01-10,1,10,,completed,', "O,C,2025-01-10,1,NaN,,completed,"], False),
    # The same key copied and held back: rolled back, loaded the usual way.
    "duplicate_split": (["O,C,2025-01-10,1,10,,completed,", "O,C,2025-01-10,1,11,,Cancelled,"], False),
}
BULK_OFFER_CASES = {  # contact_at, channel, offer_value
    "offer_ok": (["2025-01-08 09:00,call,25.50", "2025-01-08 10:00,call,0", "2025-01-08 11:00,call,"], True),
    "offer_negative": (["2025-01-08 09:00,call,-5"], False),
    "offer_mixed": (["2025-01-08 09:00,call,5", "2025-01-08 10:00,call,-0.5", "2025-01-08 11:00,call,1e1"], True),
}
BULK_CAMPAIGN_CASES = {  # start_date, end_date, cost: never copied, a row rule keeps campaigns on the SQL path
    "campaign_ok": (["2025-01-01,2025-03-31,100"], False),
    "campaign_backwards": (["2025-02-01,2025-01-01,100", "2025-01-01,,-3"], False),
}
BULK_CONTACT_CASES = {
    "past": (["2025-01-08 09:00,call,7", "2025-01-08T23:00:00+01:00,visit,"], True),
    "on_the_as_of_day": (["2025-01-10 09:00,call,7"], False),  # its zone decides: the SQL path
    "far_west_offset": (["2025-01-09T23:59:00-15:59,call,"], False),  # two days may move it past D
    "nps_high": (["2025-01-09 09:00,call,11"], False),
    "nps_decimal": (["2025-01-09 09:00,call,5.0"], False),
}


def load_each_on_its_own(dsn, tmp_path, name, header, rows, entity, bulk_load=True):
    """Load one case's file into an emptied raw table; returns its raw rows and quarantine rows."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    key = ENTITIES[entity].key
    numbered = [f"{key[0].upper()}_{name}_{i if not name.startswith('duplicate') else 0},{row}" if row else ""
                for i, row in enumerate(rows)]
    (folder / f"{entity}_{name}.csv").write_text(header + "\n" + "\n".join(numbered) + "\n")
    with psycopg.connect(dsn) as conn:
        conn.execute(f"truncate raw.{entity}")
    settings = settings_for(dsn, None, folder, sales_source="files", quarantine_max_share=1.0, bulk_load=bulk_load)
    result = extract_entity(entity, as_of=dt.date(2025, 1, 10), settings=settings)
    with psycopg.connect(dsn) as conn:
        raw = conn.execute(  # the file's name only: the two runs read it from different folders
            "select to_jsonb(t) - '_loaded_at' - '_load_id' || jsonb_build_object('_source_object',"
            f" regexp_replace(_source_object, '^.*/', '')) from raw.{entity} t order by 1").fetchall()
        quarantined = conn.execute("select row_number, raw_row, reason from audit.quarantine where load_id = %s"
                                   " order by row_number", (result.load_id,)).fetchall()
        key_def = conn.execute("select pg_get_constraintdef(oid) from pg_constraint"
                               " where conrelid = %s::regclass and contype = 'p'", (f"raw.{entity}",)).fetchone()
    assert key_def == (f"PRIMARY KEY ({key})",)
    return (raw, quarantined, result.rows_read, result.rows_inserted)


def test_the_bulk_path_stores_and_quarantines_exactly_what_the_usual_path_does(warehouse_dsn, make_database,
                                                                               tmp_path, monkeypatch):
    from winback.warehouse import bootstrap

    copied: list[str] = []
    real_write = bulk_load.bulk_write
    monkeypatch.setattr(bulk_load, "bulk_write", lambda copy, chunk: (copied.append(chunk), real_write(copy, chunk)))
    cases = [("sales_lines", BULK_SALES_HEADER, n, c) for n, c in BULK_SALES_CASES.items()]
    cases += [("contacts", "contact_id,contact_at,channel,nps_score", n, c) for n, c in BULK_CONTACT_CASES.items()]
    cases += [("contacts", "contact_id,contact_at,channel,offer_value", n, c) for n, c in BULK_OFFER_CASES.items()]
    cases += [("campaigns", "campaign_id,start_date,end_date,cost", n, c) for n, c in BULK_CAMPAIGN_CASES.items()]
    with_bulk, kept_by_bulk = {}, set()
    for entity, header, name, (rows, _) in cases:
        copied.clear()
        with_bulk[name] = load_each_on_its_own(warehouse_dsn, tmp_path / "bulk", name, header, rows, entity)
        if copied:
            kept_by_bulk.add(name)
    usual_only = make_database("wb_wh_usual")
    bootstrap(usual_only)
    copied.clear()
    for entity, header, name, (rows, _) in cases:
        usual = load_each_on_its_own(usual_only, tmp_path / "usual", name, header, rows, entity, bulk_load=False)
        assert usual == with_bulk[name], name
    assert len(copied) == 0  # the usual path never copied straight into raw

    # The bulk path kept exactly the clean cases (the others it left, or rolled back).
    assert kept_by_bulk >= {n for _, _, n, (_, keeps) in cases if keeps}
    rolled_back = {"ts_offset_too_far", "duplicate_key", "duplicate_split"}
    assert kept_by_bulk == {n for _, _, n, (_, keeps) in cases if keeps} | rolled_back
    for name in rolled_back:  # copied, then rolled back: loaded and quarantined the usual way
        assert with_bulk[name][1], name


def primary_key(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select conname, pg_get_constraintdef(oid), conindid from pg_constraint"
            " where conrelid = 'raw.sales_lines'::regclass and contype = 'p'").fetchone()


def test_a_load_as_large_as_the_table_rebuilds_its_primary_key_a_small_one_keeps_it(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    header = "line_id,order_id,client_id,order_date,quantity,net_amount,updated_at\n"
    (tmp_path / "sales_lines_1.csv").write_text(header + "".join(
        f"L{i},O1,C1,2025-01-10,1,{i}0,2025-01-10T10:00:00Z\n" for i in range(1, 4)))
    first = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert first.rows_inserted == 3
    name, definition, index_after_first = primary_key(warehouse_dsn)
    assert (name, definition) == ("sales_lines_pkey", "PRIMARY KEY (line_id)")

    # 4 rows against 3 in the table: the key is built again; updates and inserts as usual.
    (tmp_path / "sales_lines_2.csv").write_text(
        header + "L1,O1,C1,2025-01-10,1,10,2025-01-10T10:00:00Z\nL2,O1,C1,2025-01-10,1,25,2025-01-11T08:00:00Z\n"
                 "L4,O1,C1,2025-01-11,1,40,2025-01-11T08:00:00Z\nL5,O1,C1,2025-01-11,1,50,2025-01-11T08:00:00Z\n")
    second = extract_entity("sales_lines", as_of=dt.date(2025, 1, 11), settings=settings)
    assert (second.rows_inserted, second.rows_updated, second.rows_unchanged) == (2, 1, 1)
    name, definition, index_after_second = primary_key(warehouse_dsn)
    assert (name, definition) == ("sales_lines_pkey", "PRIMARY KEY (line_id)")
    assert index_after_second != index_after_first

    # 1 row against 5: the index is kept (and maintained).
    (tmp_path / "sales_lines_3.csv").write_text(header + "L6,O1,C1,2025-01-11,1,60,2025-01-11T09:00:00Z\n")
    third = extract_entity("sales_lines", as_of=dt.date(2025, 1, 11), settings=settings)
    assert third.rows_inserted == 1
    assert primary_key(warehouse_dsn)[2] == index_after_second
    assert {k: v[0] for k, v in raw_lines(warehouse_dsn).items()} == {
        "L1": 10, "L2": 25, "L3": 30, "L4": 40, "L5": 50, "L6": 60}


def test_a_login_with_only_the_loader_grants_loads_and_keeps_the_primary_key(warehouse_dsn, tmp_path):
    import urllib.parse
    import uuid

    role, password = f"wb_login_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(f"create role {role} login password '{password}' in role winback_loader")
    try:
        parts = urllib.parse.urlsplit(warehouse_dsn)
        as_loader = parts._replace(netloc=f"{role}:{password}@{parts.netloc.rsplit('@', 1)[-1]}").geturl()
        index_before = primary_key(warehouse_dsn)[2]
        (tmp_path / "sales_lines_1.csv").write_text(
            "line_id,order_id,client_id,order_date,quantity,net_amount\nL1,O1,C1,2025-01-10,1,10\n")
        result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10),
                                settings=settings_for(as_loader, None, tmp_path, sales_source="files"))
        assert result.rows_inserted == 1
        assert primary_key(warehouse_dsn)[2] == index_before  # not the owner: the key was kept
    finally:
        with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")


def test_two_deliveries_in_one_run_the_latest_updated_at_wins_and_each_key_counts_once(warehouse_dsn, tmp_path):
    settings = settings_for(warehouse_dsn, None, tmp_path, sales_source="files")
    header = "line_id,order_id,client_id,order_date,quantity,net_amount,updated_at\n"
    (tmp_path / "sales_lines_a.csv").write_text(
        header + "L1,O1,C1,2025-01-10,1,10,2025-01-10T10:00:00Z\nL2,O1,C1,2025-01-10,1,20,2025-01-10T12:00:00Z\n")
    (tmp_path / "sales_lines_b.csv").write_text(  # L1 older than in a (a wins), L2 newer (b wins)
        header + "L1,O1,C1,2025-01-10,1,11,2025-01-10T09:00:00Z\nL2,O1,C1,2025-01-10,1,21,2025-01-10T13:00:00Z\n"
                 "L3,O1,C1,2025-01-10,1,30,2025-01-10T13:00:00Z\n")
    result = extract_entity("sales_lines", as_of=dt.date(2025, 1, 10), settings=settings)
    assert (result.deliveries, result.rows_read, result.rows_inserted, result.rows_updated,
            result.rows_unchanged) == (2, 5, 3, 0, 0)
    assert {k: v[0] for k, v in raw_lines(warehouse_dsn).items()} == {"L1": 10, "L2": 21, "L3": 30}
