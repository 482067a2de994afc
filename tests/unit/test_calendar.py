"""The calendar: quarters named by their first day, closed as of an as-of date."""

import datetime as dt

import pytest

from winback import calendar


@pytest.mark.parametrize(("day", "quarter"), [
    (dt.date(2025, 1, 1), dt.date(2025, 1, 1)), (dt.date(2025, 3, 31), dt.date(2025, 1, 1)),
    (dt.date(2025, 4, 1), dt.date(2025, 4, 1)), (dt.date(2025, 12, 31), dt.date(2025, 10, 1)),
])
def test_a_day_lies_in_the_quarter_named_by_its_first_day(day, quarter):
    assert calendar.quarter_of(day) == quarter
    assert calendar.is_quarter_start(quarter)
    assert calendar.is_quarter_start(day) == (day == quarter)


@pytest.mark.parametrize(("as_of", "closed"), [
    (dt.date(2025, 3, 30), dt.date(2024, 10, 1)), (dt.date(2025, 3, 31), dt.date(2025, 1, 1)),
    (dt.date(2025, 4, 1), dt.date(2025, 1, 1)), (dt.date(2025, 1, 1), dt.date(2024, 10, 1)),
])
def test_the_last_closed_quarter_ends_on_or_before_the_as_of_date(as_of, closed):
    assert calendar.last_closed_quarter(as_of) == closed
    assert calendar.quarter_end(closed) <= as_of < calendar.quarter_end(calendar.shift_quarters(closed, 1))


def test_quarters_shift_across_years_and_have_labels():
    assert calendar.shift_quarters(dt.date(2025, 1, 1), -1) == dt.date(2024, 10, 1)
    assert calendar.shift_quarters(dt.date(2025, 1, 1), -4) == dt.date(2024, 1, 1)
    assert calendar.shift_quarters(dt.date(2024, 10, 1), 1) == dt.date(2025, 1, 1)
    assert calendar.quarter_end(dt.date(2024, 10, 1)) == dt.date(2024, 12, 31)
    assert calendar.quarter_end(dt.date(2024, 1, 1)) == dt.date(2024, 3, 31)
    assert calendar.quarter_label(dt.date(2024, 10, 1)) == "Q4 2024"


def test_the_end_of_a_day_is_the_next_local_midnight():
    end = calendar.day_end(dt.date(2025, 3, 23), "Europe/Berlin")
    assert end.isoformat() == "2025-03-24T00:00:00+01:00"
    assert calendar.as_of_for(end, "Europe/Berlin") == dt.date(2025, 3, 23)
