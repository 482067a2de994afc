"""Preflight checks of ``winback run``: the landing folder and the as-of date, before anything is written."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winback.extract.preflight import PreflightError, check_as_of, check_landing

HEADER = "line_id,order_id,client_id,order_date,quantity,net_amount,cost_amount,channel,status,updated_at\n"
ROW = "L1,O1,C1,1998-03-02,1,100.00,60.00,direct,completed,1998-03-02 10:00:00+00\n"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_missing_folder_is_named_with_the_option_to_fix(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(PreflightError) as exc:
        check_landing(str(missing))
    message = _one_line(exc)
    assert f"landing folder {missing} does not exist" in message and "--landing" in message
    assert not missing.exists()


def test_a_file_given_as_the_landing_folder_is_refused(tmp_path):
    file = tmp_path / "sales_lines.csv"
    file.write_text(HEADER + ROW)
    with pytest.raises(PreflightError, match="is a file, not a folder"):
        check_landing(str(file))


def test_a_folder_without_a_sales_lines_file_is_refused(tmp_path):
    (tmp_path / "clients.csv").write_text("client_id\nC1\n")
    (tmp_path / "sales.csv").write_text(HEADER + ROW)  # not named after the entity
    with pytest.raises(PreflightError) as exc:
        check_landing(str(tmp_path))
    message = _one_line(exc)
    assert message.startswith("no sales_lines*.") and str(tmp_path) in message


def test_a_header_only_csv_is_no_rows_unless_allowed(tmp_path):
    sales = tmp_path / "sales_lines.csv"
    sales.write_text(HEADER + "\n  \r\n")
    with pytest.raises(PreflightError) as exc:
        check_landing(str(tmp_path))
    message = _one_line(exc)
    assert message.startswith(f"{sales} has a header and no rows") and "--allow-empty" in message
    assert check_landing(str(tmp_path), allow_empty=True) == [str(sales)]


def test_a_header_without_a_newline_and_an_empty_file_are_no_rows(tmp_path):
    sales = tmp_path / "sales_lines.csv"
    sales.write_text(HEADER.rstrip("\n"))
    with pytest.raises(PreflightError, match="has a header and no rows"):
        check_landing(str(tmp_path))
    sales.write_bytes(b"")
    with pytest.raises(PreflightError, match="is empty"):
        check_landing(str(tmp_path))


def test_a_quoted_newline_in_the_header_does_not_hide_the_first_row(tmp_path):
    (tmp_path / "sales_lines.csv").write_text('line_id,"order\nid",client_id\nL1,O1,C1\n')
    check_landing(str(tmp_path))


def test_a_header_only_parquet_file_is_no_rows(tmp_path):
    schema = pa.schema([("line_id", pa.string()), ("order_date", pa.date32()), ("net_amount", pa.float64())])
    sales = tmp_path / "sales_lines_1998.parquet"
    pq.write_table(schema.empty_table(), sales)
    with pytest.raises(PreflightError) as exc:
        check_landing(str(tmp_path))
    assert _one_line(exc).startswith(f"{sales} has columns and no rows")
    assert check_landing(str(tmp_path), allow_empty=True) == [str(sales)]
    pq.write_table(pa.table({"line_id": ["L1"], "order_date": [dt.date(1998, 3, 2)], "net_amount": [1.0]}), sales)
    assert check_landing(str(tmp_path)) == [str(sales)]


def test_one_empty_file_among_several_is_fine_all_empty_is_not(tmp_path):
    (tmp_path / "sales_lines_19980301.csv").write_text(HEADER)
    (tmp_path / "sales_lines_19980302.csv").write_text(HEADER + ROW)
    assert len(check_landing(str(tmp_path))) == 2
    (tmp_path / "sales_lines_19980302.csv").write_text(HEADER)
    with pytest.raises(PreflightError, match="every sales_lines file .* has a header and no rows"):
        check_landing(str(tmp_path))


def test_a_valid_folder_passes_and_files_below_an_entity_folder_count(tmp_path):
    (tmp_path / "sales_lines").mkdir()
    nested = tmp_path / "sales_lines" / "1998.csv"
    nested.write_text(HEADER + ROW)
    assert check_landing(str(tmp_path)) == [str(nested)]
    big = tmp_path / "sales_lines.csv"
    big.write_text(HEADER + ROW * 2000)  # more than the bytes read to tell
    assert sorted(check_landing(str(tmp_path))) == sorted([str(nested), str(big)])


def test_a_file_kind_that_cannot_be_inspected_cheaply_is_never_called_empty(tmp_path, monkeypatch):
    from winback.extract import sources

    workbook = tmp_path / "sales_lines.xlsx"
    workbook.write_bytes(b"")
    monkeypatch.setattr(sources, "discover_files", lambda landing, entity: [str(workbook)])
    assert check_landing(str(tmp_path)) == [str(workbook)]


def test_a_future_as_of_date_is_refused_in_the_business_time_zone():
    now = dt.datetime(2026, 12, 5, 22, 30, tzinfo=dt.UTC)  # already the 6th in Moscow
    check_as_of(dt.date(2026, 12, 6), "Europe/Moscow", now=now)
    with pytest.raises(PreflightError) as exc:
        check_as_of(dt.date(2026, 12, 6), "UTC", now=now)
    assert _one_line(exc).startswith("as-of date 2026-12-06 is after today (2026-12-05 in UTC)")
    with pytest.raises(PreflightError, match=r"2031-01-01 is after today \(2026-12-06 in Europe/Moscow\)"):
        check_as_of(dt.date(2031, 1, 1), "Europe/Moscow", now=now)


def test_the_as_of_date_is_checked_against_the_real_clock():
    ahead, behind = "Pacific/Kiritimati", "Etc/GMT+12"  # UTC+14 and UTC-12: always a different date
    tomorrow_somewhere = dt.datetime.now(zoneinfo.ZoneInfo(ahead)).date()
    check_as_of(tomorrow_somewhere, ahead)
    with pytest.raises(PreflightError, match=re.escape(f"in {behind})")):
        check_as_of(tomorrow_somewhere, behind)


def test_old_dates_pass_and_one_before_the_earliest_is_named():
    check_as_of(dt.date(1995, 3, 31), "UTC")
    check_as_of(dt.date(1970, 1, 1), "UTC", earliest=dt.date(1970, 1, 1))
    with pytest.raises(PreflightError, match="1969-12-31 is before 1970-01-01"):
        check_as_of(dt.date(1969, 12, 31), "UTC", earliest=dt.date(1970, 1, 1))


def test_the_cli_fails_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from winback import cli

    home = tmp_path / "home"
    monkeypatch.setenv("WINBACK_HOME", str(home))
    # winback run sets these in os.environ (for the DAG run in this process): restored afterwards,
    # so later tests (an extract from SQL) do not inherit sales_source=files.
    for name in ("WINBACK_SALES_SOURCE", "WINBACK_LANDING_URL", "WINBACK_AS_OF_DATE"):
        monkeypatch.setenv(name, "")  # remembers the value before (or its absence) for the teardown
        monkeypatch.delenv(name)

    def forbidden(settings):
        raise AssertionError("the warehouse or Airflow was set up before the inputs were checked")

    monkeypatch.setattr(cli, "_setup", forbidden)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "sales_lines.csv").write_text(HEADER)
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(tmp_path / "landing"): "has a header and no rows",
    }
    for landing, expected in cases.items():
        assert cli.main(["run", "--landing", landing, "--as-of", "1998-12-31"]) == 1
        err = capsys.readouterr().err
        assert expected in err and "hint: nothing was written" in err
    assert cli.main(["run", "--landing", str(tmp_path / "landing"), "--as-of", "2999-01-01"]) == 1
    assert "is after today" in capsys.readouterr().err
    assert cli.main(["extract", "--as-of", "2999-01-01"]) == 1
    assert "is after today" in capsys.readouterr().err
    assert not home.exists()
