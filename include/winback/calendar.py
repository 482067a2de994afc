"""The project's calendar: as-of dates and calendar quarters, in one place.

Time: a run describes the as-of date ``D`` = the last calendar day (in the configured
time zone) that ends at or before the run's data interval end. The run triggered in the
night of the 24th describes the 23rd; rows updated after the end of ``D`` wait for the
next run. Nothing dated after ``D`` is used.

A quarter is named by its first day (``2025-01-01`` is Q1 2025). A quarter is *closed* as
of ``D`` when its last day is ``D`` or earlier.

Plain functions of dates, no I/O: the DAG files, the extract, the gate, publication and
the report all import them from here.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo


# ----------------------------------------------------------------------------- as-of dates
def as_of_for(data_interval_end: dt.datetime, timezone: str) -> dt.date:
    """The last full local day before the data interval end (see the module docstring)."""
    local = data_interval_end.astimezone(zoneinfo.ZoneInfo(timezone))
    return local.date() - dt.timedelta(days=1)


def day_end(day: dt.date, timezone: str) -> dt.datetime:
    """The first instant after ``day`` in the configured time zone."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zoneinfo.ZoneInfo(timezone))


# ----------------------------------------------------------------------------- quarters
def quarter_of(day: dt.date) -> dt.date:
    """First day of the calendar quarter ``day`` lies in."""
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def is_quarter_start(day: dt.date) -> bool:
    """Whether ``day`` is the first day of a calendar quarter (the name of a quarter)."""
    return day.day == 1 and day.month in (1, 4, 7, 10)


def shift_quarters(quarter_start: dt.date, quarters: int) -> dt.date:
    """The quarter ``quarters`` after (negative: before) the one starting ``quarter_start``."""
    index = quarter_start.year * 4 + (quarter_start.month - 1) // 3 + quarters
    return dt.date(index // 4, (index % 4) * 3 + 1, 1)


def quarter_end(quarter_start: dt.date) -> dt.date:
    """Last day of the quarter starting ``quarter_start``."""
    month = quarter_start.month + 3
    year = quarter_start.year + (month > 12)
    return dt.date(year, (month - 1) % 12 + 1, 1) - dt.timedelta(days=1)


def last_closed_quarter(as_of: dt.date) -> dt.date:
    """First day of the last calendar quarter whose last day is <= ``as_of``."""
    running = quarter_of(as_of + dt.timedelta(days=1))
    return quarter_of(running - dt.timedelta(days=1))


def quarter_label(quarter_start: dt.date) -> str:
    """``Q1 2025``."""
    return f"Q{(quarter_start.month - 1) // 3 + 1} {quarter_start.year}"
