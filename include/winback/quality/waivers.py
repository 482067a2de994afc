"""Audited waivers: an operator accepts a failed blocking check for one as-of date or quarter.

A waiver names the check, its scope (an as-of date, or a quarter for kpi checks), a reason,
who gave it and until when it holds (``audit.waivers``). A gate run in that scope before
the waiver expires records the check's failure as a *waived* warning, naming the waiver,
in ``audit.validation_results``, the Data Docs, ``winback status`` and the report. A
waiver for another date, quarter or check, or an expired one, does not apply: there is no
other way around a blocking check.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import dataclass, fields

import psycopg
from psycopg import sql

from winback.calendar import quarter_of
from winback.quality.suites import SUITE_NAMES, load_suite

DEFAULT_VALID_DAYS = 7


class WaiverError(ValueError):
    """A waiver cannot be given as asked; the one-line message says why."""


@dataclass(frozen=True)
class Waiver:
    waiver_id: int
    check_name: str
    as_of: dt.date | None
    quarter_start: dt.date | None
    reason: str
    waived_by: str
    waived_at: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def columns(cls) -> sql.Composable:
        """The columns of audit.waivers in the order of the fields."""
        return sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(cls))

    def describe(self) -> str:
        scope = f"quarter {self.quarter_start}" if self.quarter_start else f"as of {self.as_of}"
        return (f"waiver {self.waiver_id} by {self.waived_by} on {self.waived_at:%Y-%m-%d %H:%M} for {scope}, "
                f"until {self.expires_at:%Y-%m-%d %H:%M}: {self.reason}")


def blocking_checks() -> dict[str, str]:
    """Every blocking check of every suite, with its suite (as the suites define them)."""
    checks: dict[str, str] = {}
    today = dt.date.today()
    for suite in SUITE_NAMES:
        # Any dates do: the names and severities do not depend on them; with a quarter, the
        # quarter-only checks are listed too.
        for check in load_suite(suite, today, quarter_of(today) if suite == "kpi" else None).checks:
            if check.blocking:
                checks[check.name] = suite
    return checks


def operator() -> str:
    """Who gives a waiver from the command line."""
    return os.environ.get("WINBACK_OPERATOR") or getpass.getuser()


def give(conn: psycopg.Connection, check_name: str, reason: str, *, as_of: dt.date | None = None,
         quarter_start: dt.date | None = None, waived_by: str | None = None,
         valid_days: int = DEFAULT_VALID_DAYS) -> Waiver:
    """Record a waiver; raise :class:`WaiverError` for an unknown or non-blocking check, a
    missing scope or reason."""
    known = blocking_checks()
    if check_name not in known:
        close = sorted(name for name in known if name.split(".")[0] == check_name.split(".")[0]) or sorted(known)
        raise WaiverError(f"{check_name!r} is no blocking check of the quality suites (blocking checks: "
                          f"{', '.join(close)}); warnings need no waiver")
    if not reason or not reason.strip():
        raise WaiverError("a waiver needs a reason (--reason TEXT): it is shown wherever the check is")
    if (as_of is None) == (quarter_start is None):
        raise WaiverError("a waiver applies to one as-of date (--as-of D) or one quarter (--quarter Q), not both")
    if quarter_start is not None and known[check_name] != "kpi":
        raise WaiverError(f"{check_name} is a check of the nightly {known[check_name]} suite: waive it for an "
                          "as-of date (--as-of D)")
    if quarter_start is not None and quarter_of(quarter_start) != quarter_start:
        raise WaiverError(f"{quarter_start} is not the first day of a quarter")
    if not 1 <= valid_days <= 366:
        raise WaiverError("a waiver holds for 1 to 366 days (--valid-days)")
    row = conn.execute(sql.SQL(
        "insert into audit.waivers (check_name, as_of, quarter_start, reason, waived_by, expires_at)"
        " values (%s, %s, %s, %s, %s, now() + make_interval(days => %s)) returning {}").format(Waiver.columns()),
        (check_name, as_of, quarter_start, reason.strip(), waived_by or operator(), valid_days)).fetchone()
    return Waiver(*row)


def active(conn: psycopg.Connection, as_of: dt.date, quarter_start: dt.date | None) -> dict[str, Waiver]:
    """The waivers that apply to a gate run for ``as_of`` (and ``quarter_start``), by check;
    the newest one when several do."""
    rows = conn.execute(sql.SQL(
        "select {} from audit.waivers where expires_at > now() and (as_of = %s or quarter_start = %s)"
        " order by waived_at").format(Waiver.columns()), (as_of, quarter_start)).fetchall()
    return {row[1]: Waiver(*row) for row in rows}


def recent(conn: psycopg.Connection, limit: int) -> list[Waiver]:
    """The latest waivers given, newest first (``winback status``)."""
    rows = conn.execute(sql.SQL("select {} from audit.waivers order by waived_at desc limit %s").format(
        Waiver.columns()), (limit,)).fetchall()
    return [Waiver(*row) for row in rows]
