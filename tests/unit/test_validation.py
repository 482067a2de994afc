"""Row validation against the data contract (no database)."""

import datetime as dt
import json

import pytest

from winback.extract.contract import CONTACTS, SALES_LINES
from winback.extract.validation import MissingColumnsError, RowValidator

AS_OF = dt.date(2025, 3, 31)
SALES_HEADER = ["line_id", "order_id", "client_id", "order_date", "quantity", "net_amount", "status"]


def sales(values):
    return RowValidator(SALES_LINES, SALES_HEADER, AS_OF, "test.csv").validate(values)


def test_a_good_line_passes_with_default_status_and_no_extra():
    typed, reason = sales(["L1", "O1", "C1", "2025-03-31", "2", "100.50", None])
    assert reason is None
    by_name = dict(zip([*SALES_LINES.column_names, "_extra"], typed, strict=True))
    assert by_name["status"] == "completed"
    assert by_name["net_amount"] == "100.50"
    assert by_name["cost_amount"] is None and by_name["_extra"] is None


@pytest.mark.parametrize(
    ("values", "reason_part"),
    [
        (["L1", "O1", "C1", "31.03.2025", "1", "10", None], "order_date is not an ISO date"),
        (["L1", "O1", "C1", "2025-03-01", "1", "ten", None], "net_amount is not a number"),
        (["L1", "O1", "C1", "2025-03-01", "1", "NaN", None], "net_amount is not a number"),
        ([None, "O1", "C1", "2025-03-01", "1", "10", None], "missing line_id"),
        (["L1", "O1", "", "2025-03-01", "1", "10", None], "missing client_id"),
        (["L1", "O1", "C1", "2025-04-01", "1", "10", None], "after the as-of date"),
        (["L1", "O1", "C1", "2025-03-01", "1", "10", "lost"], "unknown status"),
        (["L1", "O1", "C1", "2025-03-01", "1", "10"], "row has 6 fields"),
    ],
)
def test_contract_breaches_give_a_reason(values, reason_part):
    typed, reason = sales(values)
    assert typed is None
    assert reason_part in reason


def test_order_date_on_the_as_of_day_is_not_in_the_future():
    assert sales(["L1", "O1", "C1", AS_OF.isoformat(), "1", "10", None])[1] is None


def test_nps_must_be_between_0_and_10():
    header = ["contact_id", "contact_at", "channel", "nps_score"]
    validator = RowValidator(CONTACTS, header, AS_OF, "c.csv")
    assert validator.validate(["K1", "2025-03-01 10:00", "call", "10"])[1] is None
    assert "outside 0-10" in validator.validate(["K1", "2025-03-01 10:00", "call", "11"])[1]
    assert "not an integer" in validator.validate(["K1", "2025-03-01 10:00", "call", "7.5"])[1]


def test_missing_required_column_names_the_column():
    with pytest.raises(MissingColumnsError) as caught:
        RowValidator(SALES_LINES, ["line_id", "order_id", "order_date", "quantity", "net_amount"], AS_OF, "f.csv")
    assert caught.value.missing == ("client_id",)
    assert "'client_id'" in str(caught.value) and "f.csv" in str(caught.value)


def test_extra_columns_are_kept_as_json_and_reported():
    validator = RowValidator(SALES_LINES, [*SALES_HEADER, "Warehouse Code"], AS_OF, "f.csv")
    typed, reason = validator.validate(["L1", "O1", "C1", "2025-03-01", "1", "10", None, "W-7"])
    assert reason is None
    assert json.loads(typed[-1]) == {"Warehouse Code": "W-7"}
    assert validator.drift_columns == ["Warehouse Code"]


def test_header_matching_ignores_case_and_spaces():
    validator = RowValidator(SALES_LINES, [" Line_ID", "ORDER_ID", "client_id", "order_date", "quantity",
                                          "net_amount"], AS_OF, "f.csv")
    assert validator.validate(["L1", "O1", "C1", "2025-03-01", "1", "10"])[1] is None


def test_a_run_describes_the_last_full_local_day_before_it():
    from winback.extract import as_of_for

    night = dt.datetime(2025, 3, 24, 2, 30, tzinfo=dt.UTC)
    assert as_of_for(night, "UTC") == dt.date(2025, 3, 23)
    assert as_of_for(dt.datetime(2025, 3, 24, 0, 0, tzinfo=dt.UTC), "UTC") == dt.date(2025, 3, 23)
    # 23:30 UTC on the 23rd is already 02:30 on the 24th in Moscow
    assert as_of_for(dt.datetime(2025, 3, 23, 23, 30, tzinfo=dt.UTC), "Europe/Moscow") == dt.date(2025, 3, 23)


def test_the_nightly_run_for_a_date_is_scheduled_the_next_morning():
    from winback.config import get_settings
    from winback.extract import as_of_for
    from winback.orchestration import logical_date_for

    settings = get_settings(extract_schedule="30 2 * * *", timezone="Europe/Berlin")
    logical = logical_date_for(dt.date(2025, 3, 23), settings)
    assert (logical.day, logical.hour, logical.minute) == (24, 2, 30)
    assert as_of_for(logical, "Europe/Berlin") == dt.date(2025, 3, 23)
