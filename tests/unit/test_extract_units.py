"""Pure parts of the extract: record-aligned chunking, header mapping, the as-of date."""

import csv
import datetime as dt
import io

import pytest

from winback.calendar import as_of_for
from winback.extract.contract import SALES_LINES
from winback.extract.sources import record_chunks
from winback.extract.validation import DeliveryColumns, MissingColumnsError, landing_columns

TRICKY_CSV = (
    b'line_id,notes\n'
    b'L1,"a quoted, comma"\n'
    b'L2,"a quoted\nnewline and ""escaped"" quotes"\n'
    b'L3,plain\n'
    b'L4,"ends with newline\n"\n'
) * 50


@pytest.mark.parametrize("block", [1, 3, 7, 64, 4096])
def test_chunks_end_on_record_boundaries_whatever_the_block_size(block):
    blocks = [TRICKY_CSV[i:i + block] for i in range(0, len(TRICKY_CSV), block)]
    chunks = list(record_chunks(blocks, min_bytes=16))
    assert b"".join(chunks) == TRICKY_CSV
    expected = list(csv.reader(io.StringIO(TRICKY_CSV.decode(), newline="")))
    parsed = [row for chunk in chunks for row in csv.reader(io.StringIO(chunk.decode(), newline=""))]
    assert parsed == expected  # no record was cut in two
    assert len(chunks) > 1


def test_missing_required_column_names_the_column():
    with pytest.raises(MissingColumnsError) as caught:
        DeliveryColumns(SALES_LINES, ["line_id", "order_id", "order_date", "quantity", "net_amount"], "f.csv")
    assert caught.value.missing == ("client_id",)
    assert "'client_id'" in str(caught.value) and "f.csv" in str(caught.value)


def test_header_matching_ignores_case_and_spaces_and_reports_drift():
    columns = DeliveryColumns(SALES_LINES, [" Line_ID", "ORDER_ID", "client_id", "order_date", "quantity",
                                            "net_amount", "Warehouse Code"], "f.csv")
    assert columns.source_of["line_id"] == "Line_ID"
    assert columns.source_of["cost_amount"] is None
    assert columns.drift == ["Warehouse Code"]


def test_landing_columns_are_unique_and_never_empty():
    assert landing_columns(["a", "A", "", "a"]) == ["a", "A_2", "column_3", "a_3"]


def test_a_run_describes_the_last_full_local_day_before_it():
    night = dt.datetime(2025, 3, 24, 2, 30, tzinfo=dt.UTC)
    assert as_of_for(night, "UTC") == dt.date(2025, 3, 23)
    assert as_of_for(dt.datetime(2025, 3, 24, 0, 0, tzinfo=dt.UTC), "UTC") == dt.date(2025, 3, 23)
    # 23:30 UTC on the 23rd is already 02:30 on the 24th in Moscow
    assert as_of_for(dt.datetime(2025, 3, 23, 23, 30, tzinfo=dt.UTC), "Europe/Moscow") == dt.date(2025, 3, 23)


def test_the_nightly_run_for_a_date_is_scheduled_the_next_morning():
    from winback.config import get_settings
    from winback.orchestration import logical_date_for

    settings = get_settings(extract_schedule="30 2 * * *", timezone="Europe/Berlin")
    logical = logical_date_for(dt.date(2025, 3, 23), settings)
    assert (logical.day, logical.hour, logical.minute) == (24, 2, 30)
    assert as_of_for(logical, "Europe/Berlin") == dt.date(2025, 3, 23)
