"""Any as-of date, a minimal export: a 1990s sales history runs end to end through ``winback run``.

The DAGs once started on 2024-01-01, so Airflow created no task instance for an earlier
logical date and ``dag.test()`` "succeeded" having loaded nothing. Here a generated export
of 1995-1998 is run with ``--as-of 1998-12-31`` against a throw-away warehouse: every line
is loaded, and every closed quarter of the history is gated and published. A DAG run that
runs no task (a logical date before the DAGs' start) is an error naming the DAG and date.

The export is the minimal one a user may have: sales lines only (no clients, managers or
contacts), and it carries a year-end batch of corrections (old lines re-delivered with
``updated_at`` on D, half of them cancelled): a first load of history, which the gate must
judge as history, with no edit to the suites.
"""

from __future__ import annotations

import csv
import datetime as dt
import json

import psycopg
import pytest

from winback import cli
from winback.dag_policy import START_DATE
from winback.generator import GeneratorConfig, write_files
from winback.orchestration import NoTaskRan, run_dag

pytestmark = pytest.mark.e2e

AS_OF = dt.date(1998, 12, 31)
# The export: the generated seller's sales lines, nothing else.
KEEP = ("sales_lines.csv",)


@pytest.fixture
def old_export(tmp_path):
    config = GeneratorConfig(seed=1995, target_lines=6000, start_date=dt.date(1995, 1, 1), as_of=AS_OF)
    landing = tmp_path / "landing"
    write_files(config, str(landing), layout="single")
    for path in landing.iterdir():
        if path.name not in KEEP:
            path.unlink()
    path = landing / "sales_lines.csv"
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    # The year-end correction batch: 0.8 % of the lines, from before the last quarter,
    # changed on D; every other one cancelled.
    old = [row for row in rows if row["order_date"] < "1998-10-01"][::125]
    for number, row in enumerate(old):
        row["updated_at"] = f"{AS_OF} 18:00:00+00"
        if number % 2 == 0:
            row["status"] = "cancelled"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return landing, rows


def _quarters(first: dt.date, last: dt.date) -> list[dt.date]:
    quarters, day = [], dt.date(first.year, 3 * ((first.month - 1) // 3) + 1, 1)
    while day <= last:
        quarters.append(day)
        day = dt.date(day.year + (day.month + 2) // 12, (day.month + 2) % 12 + 1, 1)
    return quarters


def test_a_1990s_history_runs_end_to_end_and_publishes_its_closed_quarters(old_export, cli_env, capsys, tmp_path):
    landing, rows = old_export
    dsn = cli_env(AS_OF, landing)
    first_order = min(dt.date.fromisoformat(r["order_date"]) for r in rows)
    assert first_order.year == 1995 and len({r["client_id"] for r in rows}) >= 40

    assert cli.main(["run", "--landing", str(landing), "--as-of", AS_OF.isoformat()]) == 0, capsys.readouterr().err

    with psycopg.connect(dsn) as conn:
        raw_lines = conn.execute("select count(*) from raw.sales_lines").fetchone()[0]
        quarantined = conn.execute("select count(*) from audit.quarantine").fetchone()[0]
        loads = conn.execute("select entity, logical_date, status, rows_read from audit.load_runs"
                             " where entity = 'sales_lines'").fetchall()
        published = [row[0] for row in conn.execute(
            "select distinct quarter_start from reporting.kpi_quarterly order by 1")]
        as_of_dates = {row[0] for row in conn.execute("select as_of_date from reporting.kpi_quarterly")}
    assert (raw_lines, quarantined) == (len(rows), 0)
    assert loads == [("sales_lines", AS_OF, "success", len(rows))]
    # Every closed quarter from the first order's to Q4 1998 (closed on D, its last day).
    expected = _quarters(first_order, dt.date(1998, 10, 1))
    assert published == expected and as_of_dates == {AS_OF}
    # No contact log was delivered: whether the lost were contacted is unknown, and says so.
    reports = tmp_path / "home" / "output" / "reports"
    report = (reports / "winback-report-1998-Q4-v1.html").read_text()
    assert 'data-note="lost_contacted_share"' in report and "no contact log delivered" in report
    # An HTML report per published quarter; a PDF (when an engine is there) of the latest only.
    assert len(list(reports.glob("*.html"))) == len(expected)
    assert {path.name for path in reports.glob("*.pdf")} <= {"winback-report-1998-Q4-v1.pdf"}
    # The dbt docs site: its page, the warehouse's catalog and the project's manifest it reads.
    docs = tmp_path / "home" / "output" / "dbt_docs"
    catalog = json.loads((docs / "catalog.json").read_text())
    manifest = json.loads((docs / "manifest.json").read_text())
    assert (docs / "index.html").is_file() and "model.winback.client_value" in manifest["nodes"]
    assert "model.winback.lost_clients" in catalog["nodes"]


def test_a_dag_run_that_runs_no_task_is_an_error_naming_the_dag_and_date(cli_env, tmp_path):
    cli_env(AS_OF, tmp_path)
    before_start = START_DATE - dt.timedelta(days=365 * 5)
    with pytest.raises(NoTaskRan, match=rf"winback_nightly_extract run for {before_start:%Y-%m-%d}.* ran no task"):
        run_dag("winback_nightly_extract", before_start)
