"""Write-audit-publish of the quarterly KPIs (winback.publish) on a real warehouse.

The staged KPI rows are written by hand (the columns dbt's kpi_staging tables have), and
the gate's verdicts are audit rows written by hand too: what is tested here is the
publish contract — versions, atomicity, refusals, the lock, the latest-version views —
not the checks (tests/integration/test_quality_gate.py runs the real gate end to end).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pytest

from winback.publish import PublishError, closed_unpublished_quarters, fingerprint, publish_quarter

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 4, 5)
Q3, Q4, Q1, Q2 = dt.date(2024, 7, 1), dt.date(2024, 10, 1), dt.date(2025, 1, 1), dt.date(2025, 4, 1)
KPI_NAMES = ["active_clients_start", "new_clients", "lost_clients", "returned_clients", "lost_pool_start",
             "churn_rate", "winback_rate", "revenue_lost_ttm", "revenue_recovered_90d", "gross_margin_lost_ttm",
             "gross_margin_recovered_90d", "is_window_complete", "median_days_to_return", "lost_contacted_share"]
KPI_DDL = """active_clients_start bigint, new_clients bigint, lost_clients bigint, returned_clients bigint,
    lost_pool_start bigint, churn_rate double precision, winback_rate double precision, revenue_lost_ttm numeric,
    revenue_recovered_90d numeric, gross_margin_lost_ttm numeric, gross_margin_recovered_90d numeric,
    is_window_complete boolean, median_days_to_return double precision,
    lost_contacted_share double precision, as_of_date date"""

D = Decimal
# Hand-written KPI figures (company rows), consistent with the contract's ratios (margins: 40 %
# of the revenues, so the managers' rows add up).
FIGURES = {
    Q3: (41, 4, 1, 3, 5, 1 / 41, 0.5, D("2500.00"), D("900.10"), D("1000.00"), D("360.04"), True, 60.0, 0.0),
    Q4: (40, 3, 4, 2, 6, 0.1, 0.2, D("12000.50"), D("3100.00"), D("4800.20"), D("1240.00"), True, 75.0, 0.5),
    Q1: (39, 2, 2, 1, 8, 2 / 39, 0.1, D("5400.25"), D("800.00"), D("2160.10"), D("320.00"), False, 120.0, 1.0),
}
# Breakdown by manager (the two managers add up to the company row) and loss reason.
BREAKDOWN = {
    Q4: [("manager", "M1", (25, 2, 3, 1, 4, 0.12, 1 / 7, D("9000.50"), D("1000.00"), D("3600.20"), D("400.00"),
                            True, 70.0, 2 / 3)),
         ("manager", "M2", (15, 1, 1, 1, 2, 1 / 15, 1 / 3, D("3000.00"), D("2100.00"), D("1200.00"), D("840.00"),
                            True, 80.0, 0.0)),
         ("loss_reason", "price", (None, None, 4, 2, 6, None, 0.2, D("12000.50"), D("3100.00"), D("4800.20"),
                                   D("1240.00"), True, 75.0, 0.5))],
    Q1: [("manager", "M1", (20, 1, 1, 1, 5, 0.05, 1 / 6, D("2400.25"), D("800.00"), D("960.10"), D("320.00"),
                            False, 120.0, 1.0)),
         ("manager", "M2", (19, 1, 1, 0, 3, 1 / 19, 0.0, D("3000.00"), D("0"), D("1200.00"), D("0.00"),
                            True, None, 1.0))],
}


def execute(dsn: str, statement: str, params: tuple | dict = ()) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(statement, params)


def rows(dsn: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def count(dsn: str, relation: str) -> int:
    return rows(dsn, f"select count(*) from {relation}")[0][0]


def stage(dsn: str, quarters=(Q3, Q4, Q1), as_of: dt.date = AS_OF) -> None:
    """kpi_staging as the dbt project leaves it (hand-written figures)."""
    columns = ", ".join(KPI_NAMES)
    marks = ", ".join(["%s"] * len(KPI_NAMES))
    with psycopg.connect(dsn) as conn:
        conn.execute(f"create table kpi_staging.kpi_quarterly (quarter_start date, {KPI_DDL})")
        conn.execute(f"create table kpi_staging.kpi_quarterly_breakdown "
                     f"(quarter_start date, dimension text, dimension_value text, {KPI_DDL})")
        for quarter in quarters:
            conn.execute(f"insert into kpi_staging.kpi_quarterly (quarter_start, {columns}, as_of_date) "
                         f"values (%s, {marks}, %s)", (quarter, *FIGURES[quarter], as_of))
            for dimension, value, figures in BREAKDOWN.get(quarter, []):
                conn.execute(f"insert into kpi_staging.kpi_quarterly_breakdown "
                             f"(quarter_start, dimension, dimension_value, {columns}, as_of_date) "
                             f"values (%s, %s, %s, {marks}, %s)", (quarter, dimension, value, *figures, as_of))


def validate(dsn: str, quarter: dt.date, *, success: bool = True, suite: str = "kpi",
             failed: tuple[str, ...] = ()) -> str:
    """Record a gate verdict on the rows staged now (as run_gate does) and return its id."""
    validation_id = str(uuid.uuid4())
    with psycopg.connect(dsn) as conn:
        digest = fingerprint(conn, quarter) if suite == "kpi" else None
        conn.execute(
            "insert into audit.validation_results (validation_id, run_id, suite, as_of, quarter_start, success, "
            "failed_blocking, staged_fingerprint) values (%s, 'test', %s, %s, %s, %s, %s, %s)",
            (validation_id, suite, AS_OF, quarter if suite == "kpi" else None, success, list(failed), digest))
    return validation_id


def shown(dsn: str, quarter: dt.date) -> tuple:
    names = ", ".join(KPI_NAMES)
    return rows(dsn, f"select {names}, as_of_date, version, reason from reporting.kpi_quarterly "
                     "where quarter_start = %s", (quarter,))[0]


# ----------------------------------------------------------------------------- publishing
def test_first_publication_is_version_1_with_every_row(warehouse_dsn):
    stage(warehouse_dsn)
    validation = validate(warehouse_dsn, Q4)

    assert publish_quarter(warehouse_dsn, Q4, validation, "quarterly publication") == 1

    assert shown(warehouse_dsn, Q4) == (*FIGURES[Q4], AS_OF, 1, "quarterly publication")
    assert rows(warehouse_dsn, "select dimension, dimension_value, lost_clients, winback_rate, version "
                               "from reporting.kpi_quarterly_breakdown order by 1, 2") == [
        ("loss_reason", "price", 4, 0.2, 1), ("manager", "M1", 3, 1 / 7, 1), ("manager", "M2", 1, 1 / 3, 1)]
    assert rows(warehouse_dsn, "select quarter_start, version, validation_id, reason, kpi_rows, breakdown_rows, "
                               "published_at is not null from reporting.kpi_publications") == [
        (Q4, 1, validation, "quarterly publication", 1, 3, True)]
    assert rows(warehouse_dsn, "select distinct validation_id from reporting.kpi_quarterly_breakdown_versions") == [
        (validation,)]
    # Other quarters stay unpublished.
    assert count(warehouse_dsn, "reporting.kpi_quarterly") == 1


def test_republishing_identical_figures_is_a_no_op(warehouse_dsn):
    stage(warehouse_dsn)
    assert publish_quarter(warehouse_dsn, Q1, validate(warehouse_dsn, Q1), "quarterly publication") == 1
    # dbt ran again for a later day: same figures, new as-of date, new successful gate run.
    execute(warehouse_dsn, "update kpi_staging.kpi_quarterly set as_of_date = %s", (AS_OF + dt.timedelta(days=1),))
    execute(warehouse_dsn, "update kpi_staging.kpi_quarterly_breakdown set as_of_date = %s",
            (AS_OF + dt.timedelta(days=1),))

    assert publish_quarter(warehouse_dsn, Q1, validate(warehouse_dsn, Q1), "re-run") == 1

    assert count(warehouse_dsn, "reporting.kpi_publications") == 1
    assert count(warehouse_dsn, "reporting.kpi_quarterly_versions") == 1
    assert count(warehouse_dsn, "reporting.kpi_quarterly_breakdown_versions") == 2
    assert shown(warehouse_dsn, Q1)[-3:] == (AS_OF, 1, "quarterly publication")


def test_correction_creates_version_2_and_keeps_version_1(warehouse_dsn):
    stage(warehouse_dsn)
    assert publish_quarter(warehouse_dsn, Q4, validate(warehouse_dsn, Q4), "quarterly publication") == 1
    assert publish_quarter(warehouse_dsn, Q1, validate(warehouse_dsn, Q1), "quarterly publication") == 1
    # A late return is booked: Q1 has 2 returns instead of 1 (winback 2 / 10), and M2 got one back.
    execute(warehouse_dsn, "update kpi_staging.kpi_quarterly set returned_clients = 2, winback_rate = 0.2 "
                           "where quarter_start = %s", (Q1,))
    execute(warehouse_dsn, "update kpi_staging.kpi_quarterly_breakdown set returned_clients = 1, winback_rate = 0.25 "
                           "where quarter_start = %s and dimension_value = 'M2'", (Q1,))

    assert publish_quarter(warehouse_dsn, Q1, validate(warehouse_dsn, Q1), "correction: late return") == 2

    corrected = list(FIGURES[Q1])
    corrected[3], corrected[6] = 2, 0.2
    assert shown(warehouse_dsn, Q1) == (*corrected, AS_OF, 2, "correction: late return")
    assert rows(warehouse_dsn, "select returned_clients, winback_rate, reason from reporting.kpi_quarterly_versions "
                               "where quarter_start = %s and version = 1", (Q1,)) == [(1, 0.1, "quarterly publication")]
    assert rows(warehouse_dsn, "select dimension_value, returned_clients, version from "
                               "reporting.kpi_quarterly_breakdown where quarter_start = %s order by 1", (Q1,)) == [
        ("M1", 1, 2), ("M2", 1, 2)]
    assert rows(warehouse_dsn, "select version, dimension_value, returned_clients from "
                               "reporting.kpi_quarterly_breakdown_versions where quarter_start = %s order by 1, 2",
                (Q1,)) == [(1, "M1", 1), (1, "M2", 0), (2, "M1", 1), (2, "M2", 1)]
    # The view shows the latest version of every quarter: Q4 is still at version 1.
    assert rows(warehouse_dsn, "select quarter_start, version from reporting.kpi_quarterly order by 1") == [
        (Q4, 1), (Q1, 2)]


# ----------------------------------------------------------------------------- refusals
def _failed(dsn):
    return validate(dsn, Q1, success=False, failed=("kpi_quarterly.winback_rate_within_0_1",))


def _changed_after_validation(dsn):
    validation = validate(dsn, Q1)
    execute(dsn, "update kpi_staging.kpi_quarterly set lost_clients = 3 where quarter_start = %s", (Q1,))
    return validation


REFUSALS = {
    "unknown_validation": (Q1, lambda dsn: "no-such-run", "quarterly publication",
                           "validation no-such-run not found"),
    "failed_validation": (Q1, _failed, "quarterly publication",
                          r"failed \(blocking: kpi_quarterly.winback_rate_within_0_1\): quarter not published"),
    "other_quarter": (Q1, lambda dsn: validate(dsn, Q4), "quarterly publication",
                      "validated quarter 2024-10-01, not 2025-01-01"),
    "raw_suite": (Q1, lambda dsn: validate(dsn, Q1, suite="raw"), "quarterly publication", "'raw' gate run"),
    "changed_after_validation": (Q1, _changed_after_validation, "quarterly publication",
                                 "changed after validation .* re-run the kpi quality gate"),
    "not_a_quarter_start": (dt.date(2025, 2, 1), lambda dsn: validate(dsn, Q1), "quarterly publication",
                            "not the first day of a calendar quarter"),
    "no_reason": (Q1, lambda dsn: validate(dsn, Q1), "  ", "a reason is required"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_publish_refuses_without_a_matching_successful_validation(case, warehouse_dsn):
    stage(warehouse_dsn)
    quarter, make_validation, reason, message = REFUSALS[case]
    validation = make_validation(warehouse_dsn)

    with pytest.raises(PublishError, match=message) as refused:
        publish_quarter(warehouse_dsn, quarter, validation, reason)

    assert "\n" not in str(refused.value)
    for relation in ("reporting.kpi_publications", "reporting.kpi_quarterly_versions",
                     "reporting.kpi_quarterly_breakdown_versions"):
        assert count(warehouse_dsn, relation) == 0


def test_published_rows_stay_when_a_later_publish_is_refused(warehouse_dsn):
    stage(warehouse_dsn)
    assert publish_quarter(warehouse_dsn, Q1, validate(warehouse_dsn, Q1), "quarterly publication") == 1
    before = rows(warehouse_dsn, "select * from reporting.kpi_quarterly_versions")
    execute(warehouse_dsn, "update kpi_staging.kpi_quarterly set winback_rate = 1.5 where quarter_start = %s", (Q1,))

    with pytest.raises(PublishError, match="failed"):
        publish_quarter(warehouse_dsn, Q1, _failed(warehouse_dsn), "bad figures")

    assert rows(warehouse_dsn, "select * from reporting.kpi_quarterly_versions") == before
    assert shown(warehouse_dsn, Q1) == (*FIGURES[Q1], AS_OF, 1, "quarterly publication")


def test_a_quarter_is_published_whole_or_not_at_all(warehouse_dsn):
    # A staged breakdown with the same key twice: the company row is copied first, then the
    # breakdown copy fails -> the whole transaction (record, company row) is rolled back.
    stage(warehouse_dsn)
    execute(warehouse_dsn, "insert into kpi_staging.kpi_quarterly_breakdown select * from "
                           "kpi_staging.kpi_quarterly_breakdown where quarter_start = %s and dimension_value = 'M1'",
            (Q1,))
    validation = validate(warehouse_dsn, Q1)

    with pytest.raises(PublishError, match="duplicate keys"):
        publish_quarter(warehouse_dsn, Q1, validation, "quarterly publication")

    for relation in ("reporting.kpi_publications", "reporting.kpi_quarterly_versions",
                     "reporting.kpi_quarterly_breakdown_versions"):
        assert count(warehouse_dsn, relation) == 0


def test_concurrent_publishes_wait_for_each_other(warehouse_dsn):
    stage(warehouse_dsn)
    validation = validate(warehouse_dsn, Q1)
    outcome: dict[str, object] = {}

    def publish() -> None:
        try:
            outcome["version"] = publish_quarter(warehouse_dsn, Q1, validation, "quarterly publication")
        except Exception as exc:  # surfaced by the assertions below
            outcome["error"] = exc

    with psycopg.connect(warehouse_dsn) as holder:
        holder.execute("select pg_advisory_xact_lock(hashtext('winback.publish'))")  # another publish in progress
        worker = threading.Thread(target=publish)
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive(), outcome
        assert count(warehouse_dsn, "reporting.kpi_publications") == 0
    worker.join(timeout=30)  # the holder's transaction ended: the waiting publish goes ahead
    assert outcome == {"version": 1}

    # New figures, two publishes of them at once: the second waits, finds the version the
    # first wrote identical and returns it (no duplicate version, no error).
    execute(warehouse_dsn, "update kpi_staging.kpi_quarterly set median_days_to_return = 121 "
                           "where quarter_start = %s", (Q1,))
    validations = [validate(warehouse_dsn, Q1), validate(warehouse_dsn, Q1)]
    results: list[object] = []

    def publish_again(validation_id: str) -> None:
        try:
            results.append(publish_quarter(warehouse_dsn, Q1, validation_id, "correction"))
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=publish_again, args=(v,)) for v in validations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [2, 2]
    assert rows(warehouse_dsn, "select version from reporting.kpi_publications order by 1") == [(1,), (2,)]


# ----------------------------------------------------------------------------- backfills, schema
def test_closed_unpublished_quarters(warehouse_dsn):
    with pytest.raises(PublishError, match="build the dbt project first"):
        closed_unpublished_quarters(warehouse_dsn, AS_OF)
    stage(warehouse_dsn)
    execute(warehouse_dsn, "insert into kpi_staging.kpi_quarterly (quarter_start, as_of_date) values (%s, %s)",
            (Q2, AS_OF))  # a running quarter (as if staged by mistake) is never offered

    assert closed_unpublished_quarters(warehouse_dsn, AS_OF) == [Q3, Q4, Q1]
    publish_quarter(warehouse_dsn, Q4, validate(warehouse_dsn, Q4), "quarterly publication")
    assert closed_unpublished_quarters(warehouse_dsn, AS_OF) == [Q3, Q1]
    assert closed_unpublished_quarters(warehouse_dsn, dt.date(2025, 3, 31)) == [Q3, Q1]
    assert closed_unpublished_quarters(warehouse_dsn, dt.date(2025, 3, 30)) == [Q3]


def test_reporting_objects_are_documented_and_readable_by_bi(warehouse_dsn):
    relations = ["reporting.kpi_quarterly", "reporting.kpi_quarterly_breakdown",
                 "reporting.kpi_quarterly_versions", "reporting.kpi_quarterly_breakdown_versions",
                 "reporting.kpi_publications", "audit.validation_results"]
    for relation in relations:
        undocumented = rows(warehouse_dsn, "select attname from pg_attribute where attrelid = %s::regclass "
                                           "and attnum > 0 and not attisdropped "
                                           "and col_description(attrelid, attnum) is null", (relation,))
        assert undocumented == [], relation
        assert rows(warehouse_dsn, "select obj_description(%s::regclass) is not null", (relation,)) == [(True,)]
    privileges = rows(warehouse_dsn, "select has_table_privilege('winback_bi_reader', 'reporting.kpi_quarterly', "
                                     "'select'), has_table_privilege('winback_bi_reader', "
                                     "'reporting.kpi_quarterly_breakdown', 'select'), "
                                     "has_table_privilege('winback_bi_reader', 'audit.validation_results', 'select')")
    assert privileges == [(True, True, False)]
