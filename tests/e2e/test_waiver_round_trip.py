"""A blocked publication, waived by an operator, published: in real DAG runs through the CLI.

The export books credit lines with a positive quantity and a negative amount, which the raw
gate's ``sales_lines.amount_sign_matches_quantity`` blocks. The operator decides that is
how their system writes credits and waives the check for the as-of date; the same
``winback run`` then publishes, and the waiver shows in the audit, the Data Docs and the
report. (Expired and mismatched waivers: tests/integration/test_quality_gate.py.)
"""

from __future__ import annotations

import csv
import datetime as dt

import psycopg
import pytest

from winback import cli
from winback.generator import GeneratorConfig, write_files

pytestmark = pytest.mark.e2e

AS_OF = dt.date(2024, 6, 30)
CHECK = "sales_lines.amount_sign_matches_quantity"
REASON = "our ERP books credit notes with a positive quantity"


@pytest.fixture
def export_with_credit_lines(tmp_path):
    landing = tmp_path / "landing"
    write_files(GeneratorConfig(seed=11, target_lines=2500, start_date=dt.date(2023, 1, 1), as_of=AS_OF),
                str(landing), layout="single")
    for path in landing.iterdir():
        if path.name != "sales_lines.csv":
            path.unlink()
    path = landing / "sales_lines.csv"
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows[::500]:  # a few credit lines, booked as their ERP books them
        row["quantity"], row["net_amount"] = "1", "-50.00"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return landing


def test_blocked_then_waived_then_published(export_with_credit_lines, cli_env, capsys, tmp_path):
    dsn = cli_env(AS_OF, export_with_credit_lines)
    run = ["run", "--landing", str(export_with_credit_lines), "--as-of", AS_OF.isoformat()]

    assert cli.main(run) == 1
    err = capsys.readouterr().err
    assert f"winback waive {CHECK} --as-of {AS_OF} --reason TEXT" in err
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select failed_blocking from audit.validation_results").fetchall() == [([CHECK],)]
        assert conn.execute("select count(*) from reporting.kpi_publications").fetchone()[0] == 0

    assert cli.main(["waive", CHECK, "--as-of", AS_OF.isoformat(), "--reason", REASON]) == 0
    assert cli.main(run) == 0, capsys.readouterr().err

    with psycopg.connect(dsn) as conn:
        waiver = conn.execute("select waiver_id, waived_by from audit.waivers").fetchone()
        gates = conn.execute("select suite, success, waived, observed -> %s ->> 'waived' from audit.validation_results"
                             " where suite = 'raw' order by created_at", (CHECK,)).fetchall()
        published = conn.execute("select count(*) from reporting.kpi_publications").fetchone()[0]
    assert gates[0][:3] == ("raw", False, [])
    assert all(g[1:3] == (True, [CHECK]) and f"waiver {waiver[0]} by {waiver[1]}" in g[3] for g in gates[1:])
    assert published >= 4  # every closed quarter of 2023 and the first half of 2024

    docs = tmp_path / "home" / "output" / "data_docs"
    assert any(REASON in page.read_text() for page in docs.rglob("*.html"))
    report = sorted((tmp_path / "home" / "output" / "reports").glob("*.html"))[-1].read_text()
    assert f'data-waived="{CHECK}"' in report and REASON in report
    out = capsys.readouterr().out
    assert CHECK in out  # winback run ends with winback status: the waiver is listed
