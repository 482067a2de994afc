"""Pure parts of the extract: record-aligned chunking, header mapping, the as-of date."""

import csv
import datetime as dt
import io

import pytest

from winback.calendar import as_of_for
from winback.extract.contract import CAMPAIGNS, CONTACTS, ENTITIES, SALES_LINES, Column
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


V1_CONTACT_HEADER = ["contact_id", "client_id", "manager_id", "contact_at", "channel", "direction", "outcome",
                     "loss_reason", "nps_score", "notes", "updated_at"]
V2_CONTACT_COLUMNS = ("campaign_id", "offer_type", "offer_value")


def test_contract_v2_adds_optional_contact_columns_and_the_campaigns_entity():
    # After updated_at, as the upgrade of a v1 warehouse appends them to raw.contacts.
    assert CONTACTS.column_names == (*V1_CONTACT_HEADER, *V2_CONTACT_COLUMNS)
    assert not set(V2_CONTACT_COLUMNS) & set(CONTACTS.required)
    assert ENTITIES["campaigns"] is CAMPAIGNS
    assert CAMPAIGNS.column_names == ("campaign_id", "name", "start_date", "end_date", "target_segment", "cost",
                                      "updated_at")
    assert (CAMPAIGNS.key, CAMPAIGNS.required, CAMPAIGNS.event_date) == ("campaign_id", ("campaign_id", "start_date"),
                                                                          None)


def test_a_v1_contacts_header_maps_without_drift_and_a_v2_one_maps_every_column():
    v1 = DeliveryColumns(CONTACTS, V1_CONTACT_HEADER, "contacts.csv")
    assert v1.drift == [] and [v1.source_of[c] for c in V2_CONTACT_COLUMNS] == [None, None, None]
    v2 = DeliveryColumns(CONTACTS, [*V1_CONTACT_HEADER, "Offer_Value", "campaign_id", "offer_type"], "contacts.csv")
    assert v2.drift == [] and v2.source_of["offer_value"] == "Offer_Value"


def test_a_campaigns_file_without_start_date_is_rejected_naming_it():
    with pytest.raises(MissingColumnsError) as caught:
        DeliveryColumns(CAMPAIGNS, ["campaign_id", "name", "end_date"], "campaigns.csv")
    assert caught.value.missing == ("start_date",)


def test_bounds_say_how_a_value_breaks_them():
    assert CONTACTS.column("nps_score").out_of_range == "outside 0-10"
    assert CONTACTS.column("offer_value").out_of_range == "is negative"
    assert CAMPAIGNS.column("cost").out_of_range == "is negative"
    assert Column("n", "numeric", minimum=1).out_of_range == "is below 1"
    assert Column("n", "integer", maximum=5).out_of_range == "is above 5"
    assert not CONTACTS.column("notes").bounded
    with pytest.raises(ValueError, match="only a numeric or integer column"):
        Column("d", "date", minimum=0)


def test_bounds_are_checked_by_both_sql_paths():
    columns = DeliveryColumns(CONTACTS, ["contact_id", "contact_at", "channel", "nps_score", "offer_value"], "k.csv")
    careful = columns.move_statement(dt.date(2025, 1, 10), "k.csv", 1, 0).as_string(None)
    fast = columns.fast_move_statement(dt.date(2025, 1, 10), "k.csv", 1, 0).as_string(None)
    assert """when not (nullif("offer_value", '')::numeric >= 0) then 'offer_value' || ' ' || """ in careful
    assert "' is negative'" in careful and "' outside 0-10'" in careful
    assert """(l."offer_value" > '-Infinity' and l."offer_value" < 'Infinity' and l."offer_value" >= 0)""" in fast
    assert """(l."nps_score" is null or (l."nps_score" >= 0 and l."nps_score" <= 10))""" in fast


def test_a_row_rule_is_checked_by_both_sql_paths_when_the_delivery_has_both_columns():
    as_of = dt.date(2025, 1, 10)
    both = DeliveryColumns(CAMPAIGNS, ["campaign_id", "start_date", "end_date"], "c.csv")
    careful = both.move_statement(as_of, "c.csv", 1, 0).as_string(None)
    # The rule comes last: CASE reaches it only once both dates passed their own checks.
    assert careful.index("' is before '") > careful.index("'end_date' || ' is not an ISO date: '")
    assert """(l."end_date" is null or l."start_date" is null or l."end_date" >= l."start_date")""" in \
        both.fast_move_statement(as_of, "c.csv", 1, 0).as_string(None)
    only_start = DeliveryColumns(CAMPAIGNS, ["campaign_id", "start_date"], "c.csv")
    assert "is before" not in only_start.move_statement(as_of, "c.csv", 1, 0).as_string(None)
    assert ">= l." not in only_start.fast_move_statement(as_of, "c.csv", 1, 0).as_string(None)


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
