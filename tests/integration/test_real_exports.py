"""Exports as real systems write them, through the real loader into a real PostgreSQL.

Every case runs with the bulk path of a first load on and off: both must give the same rows.
"""

from __future__ import annotations

import datetime as dt
import random

import psycopg
import pytest

from winback import warehouse
from winback.config import get_settings
from winback.extract import RecordsUnaccounted, extract_entity, staged
from winback.extract.validation import MissingColumnsError

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 6, 30)
HEADER = ["line_id", "order_id", "client_id", "order_date", "quantity", "net_amount", "cost_amount", "channel",
          "status", "updated_at"]
BUSINESS = ", ".join(HEADER)


def sales_rows(count: int, seed: int = 7) -> list[list[str]]:
    """Valid sales lines with amounts that have cents, some negative, Cyrillic channels."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        day = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(540))
        amount = rng.randrange(-50_000, 2_000_000) / 100
        rows.append([f"L{n:06d}", f"O{n // 3:06d}", f"C{rng.randrange(300):04d}", day.isoformat(),
                     str(rng.randrange(1, 40)), f"{amount:.2f}", f"{amount * 0.7:.2f}",
                     rng.choice(["direct", "online", "дилер"]), rng.choice(["completed", "cancelled"]),
                     f"{day.isoformat()} 10:{n % 60:02d}:00+00"])
    return rows


def csv_text(rows: list[list[str]], header: list[str] = HEADER, delimiter: str = ",") -> str:
    return "\n".join(delimiter.join(r) for r in [header, *rows]) + "\n"


def load(dsn: str, landing, bulk: bool, **settings):
    config = get_settings(warehouse_url=dsn, landing_url=str(landing), sales_source="files", timezone="UTC",
                          bulk_load=bulk, quarantine_max_share=0.5, **settings)
    return extract_entity("sales_lines", as_of=AS_OF, settings=config)


def raw_rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"select {BUSINESS} from raw.sales_lines order by line_id").fetchall()


def quarantine(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select row_number, line_number, raw_row, reason from audit.quarantine"
                            " order by row_number").fetchall()


def accounts(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select records, lines, loaded, unchanged, superseded, quarantined from audit.load_files"
                            " order by load_id, delivery").fetchall()


@pytest.fixture(params=[True, False], ids=["bulk", "staged"])
def bulk(request) -> bool:
    return request.param


def test_an_unterminated_quote_costs_only_its_own_line(warehouse_dsn, tmp_path, bulk):
    rows = sales_rows(8000)
    lines = csv_text(rows).splitlines(keepends=True)
    bad = 'BADQ_1,OBADQ,"C0010,2025-03-03,1,10.00,7.00,direct,completed,2025-03-03 10:00:00+00\n'
    lines.insert(6542, bad)  # file line 6543: after the header and 6,541 records
    (tmp_path / "sales_lines.csv").write_text("".join(lines))

    result = load(warehouse_dsn, tmp_path, bulk, chunk_bytes=64 * 1024)

    assert result.rows_inserted == 8000
    assert [r[0] for r in raw_rows(warehouse_dsn)] == sorted(r[0] for r in rows)
    [(row, line, raw, reason)] = quarantine(warehouse_dsn)
    assert (row, line) == (6542, 6543)
    assert "BADQ_1" in raw and "unterminated quoted field" in reason
    assert accounts(warehouse_dsn) == [(8001, 8001, 8000, 0, 0, 1)]


def test_a_stray_quote_in_a_semicolon_export_costs_only_its_own_line(warehouse_dsn, tmp_path, bulk):
    rows = sales_rows(3000)
    lines = csv_text(rows, delimiter=";").splitlines(keepends=True)
    lines.insert(101, 'BADQ_2;O1;"C1;2025-03-03;1;10,00;7;direct;completed;\n')
    (tmp_path / "sales_lines.csv").write_text("".join(lines))

    load(warehouse_dsn, tmp_path, bulk)

    assert len(raw_rows(warehouse_dsn)) == 3000
    [(row, line, raw, reason)] = quarantine(warehouse_dsn)
    assert (row, line) == (101, 102) and "BADQ_2" in raw and "unterminated" in reason


def test_a_key_too_long_to_index_is_quarantined_and_the_rest_loads(warehouse_dsn, tmp_path, bulk):
    rows = sales_rows(2000)
    rows[700][0] = "K" * 10_000
    rows[900][7] = "x" * 10_001  # channel: past the contract's limit for any text value
    (tmp_path / "sales_lines.csv").write_text(csv_text(rows))

    result = load(warehouse_dsn, tmp_path, bulk)

    assert result.rows_inserted == 1998
    reasons = {row: reason for row, _, _, reason in quarantine(warehouse_dsn)}
    assert set(reasons) == {701, 901}
    assert "line_id is longer than 256 characters (10000)" in reasons[701]
    assert "channel is longer than 10000 characters (10001)" in reasons[901]


def test_keys_are_trimmed_of_surrounding_whitespace(warehouse_dsn, tmp_path, bulk):
    rows = sales_rows(50)
    rows[3][2] = " C0011 "
    rows[4][0] = "\tL000004\u00a0"
    (tmp_path / "sales_lines.csv").write_text(csv_text(rows))

    load(warehouse_dsn, tmp_path, bulk)

    loaded = {r[0]: r for r in raw_rows(warehouse_dsn)}
    assert loaded["L000003"][2] == "C0011"
    assert "L000004" in loaded
    assert quarantine(warehouse_dsn) == []


@pytest.fixture
def plain_rows(make_database, tmp_path_factory):
    """The rows a plain UTF-8 comma CSV of ``sales_rows(1500)`` loads."""
    dsn = make_database("wb_plain")
    warehouse.bootstrap(dsn)
    folder = tmp_path_factory.mktemp("plain")
    (folder / "sales_lines.csv").write_text(csv_text(sales_rows(1500)))
    load(dsn, folder, True)
    return raw_rows(dsn)


def _decimal_comma(row: list[str]) -> list[str]:
    out = list(row)
    for i in (5, 6):  # net_amount, cost_amount, with a space between thousands
        whole, cents = out[i].split(".")
        sign = "-" if whole.startswith("-") else ""
        digits = whole.lstrip("-")
        grouped = " ".join(digits[max(0, j - 3):j] for j in range(len(digits), 0, -3)[::-1])
        out[i] = f"{sign}{grouped},{cents}"
    return out


def test_a_semicolon_file_with_decimal_commas_loads_the_same_rows(warehouse_dsn, tmp_path, bulk, plain_rows):
    rows = [_decimal_comma(r) for r in sales_rows(1500)]
    assert any(" " in r[5] for r in rows)  # the file really groups thousands
    (tmp_path / "sales_lines.csv").write_text(csv_text(rows, delimiter=";"))

    load(warehouse_dsn, tmp_path, bulk)

    assert raw_rows(warehouse_dsn) == plain_rows
    assert quarantine(warehouse_dsn) == []


def test_a_windows_1251_file_loads_the_same_rows(warehouse_dsn, tmp_path, bulk, plain_rows):
    (tmp_path / "sales_lines.csv").write_bytes(csv_text(sales_rows(1500)).encode("cp1251"))

    load(warehouse_dsn, tmp_path, bulk)

    assert raw_rows(warehouse_dsn) == plain_rows


def test_a_windows_1251_semicolon_export_with_russian_headers_loads_through_the_mapping(
        warehouse_dsn, tmp_path, bulk, plain_rows):
    russian = ["Строка", "Заказ", "Клиент", "Дата", "Количество", "Сумма", "Себестоимость", "Канал", "Статус",
               "Изменено"]
    rows = [_decimal_comma(r) for r in sales_rows(1500)]
    (tmp_path / "sales_lines.csv").write_bytes(csv_text(rows, russian, ";").encode("cp1251"))

    load(warehouse_dsn, tmp_path, bulk, columns={"sales_lines": dict(zip(HEADER, russian, strict=True))})

    assert raw_rows(warehouse_dsn) == plain_rows


def test_an_xlsx_workbook_loads_the_same_rows(warehouse_dsn, tmp_path, bulk, plain_rows):
    import xlsxwriter

    book = xlsxwriter.Workbook(str(tmp_path / "sales_lines_2025.xlsx"))
    sheet = book.add_worksheet("Продажи")
    date_format = book.add_format({"num_format": "dd.mm.yyyy"})
    sheet.write_row(0, 0, HEADER)
    for r, row in enumerate(sales_rows(1500), start=1):
        # As an accounting system writes them: numbers as numbers, the date as a date cell.
        sheet.write_row(r, 0, row[:3])
        sheet.write_datetime(r, 3, dt.datetime.fromisoformat(row[3]), date_format)
        sheet.write_number(r, 4, int(row[4]))
        sheet.write_number(r, 5, float(row[5]))
        sheet.write_number(r, 6, float(row[6]))
        sheet.write_row(r, 7, row[7:])
    book.close()

    load(warehouse_dsn, tmp_path, bulk)

    assert raw_rows(warehouse_dsn) == plain_rows


def test_a_mapped_header_loads_the_same_rows_and_an_unmapped_required_column_is_named(
        warehouse_dsn, tmp_path, bulk, plain_rows):
    renamed = ["Line", "Order", "Client", "Date", "Qty", "Amount", "Cost", "channel", "status", "updated_at"]
    (tmp_path / "sales_lines.csv").write_text(csv_text(sales_rows(1500), renamed))
    mapping = dict(zip(HEADER[:7], renamed[:7], strict=True))

    load(warehouse_dsn, tmp_path, bulk, columns={"sales_lines": mapping})
    assert raw_rows(warehouse_dsn) == plain_rows

    (tmp_path / "sales_lines_2.csv").write_text(csv_text(sales_rows(5), renamed))
    del mapping["order_date"]
    with pytest.raises(Exception, match=r"no required column 'order_date'.*\[columns.sales_lines\] order_date ="):
        load(warehouse_dsn, tmp_path, bulk, columns={"sales_lines": mapping})


def test_a_mapping_of_a_column_the_contract_does_not_have_is_a_setting_error():
    from winback.config import ConfigError

    with pytest.raises(ConfigError, match=r"WINBACK_COLUMNS.*maps order_day"):
        get_settings(columns={"sales_lines": {"order_day": "Дата"}})
    assert MissingColumnsError  # the loader's error for a file, the setting's error for the config


def test_every_record_of_every_delivery_is_accounted_for(warehouse_dsn, tmp_path, bulk):
    rows = sales_rows(400)
    bad = [*rows[10]]
    bad[3] = "2025-13-01"
    (tmp_path / "sales_lines_1.csv").write_text(csv_text([*rows[:300], bad]))
    load(warehouse_dsn, tmp_path, bulk)
    # A second delivery: 100 unchanged, 50 corrected, 100 new, one key twice in the run
    # (the later file's version wins over the earlier one's).
    corrected = [[*r[:5], "1.00", *r[6:9], "2025-06-29 10:00:00+00"] for r in rows[100:150]]
    (tmp_path / "sales_lines_2.csv").write_text(csv_text([*rows[:100], *corrected, *rows[300:400]]))
    (tmp_path / "sales_lines_3.csv").write_text(csv_text([[*rows[399][:5], "2.00", *rows[399][6:9],
                                                           "2025-06-30 10:00:00+00"]]))
    result = load(warehouse_dsn, tmp_path, bulk)

    assert accounts(warehouse_dsn) == [
        (301, 301, 300, 0, 0, 1),
        (250, 250, 149, 100, 1, 0),
        (1, 1, 1, 0, 0, 0),
    ]
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (100, 50, 100)


def test_a_record_lost_between_the_stages_fails_the_load_naming_the_file(warehouse_dsn, tmp_path, monkeypatch):
    (tmp_path / "sales_lines_lost.csv").write_text(csv_text(sales_rows(200)))
    original = staged.reject_duplicates

    def losing_one(conn, entity, incoming):  # a defect that drops a row without a word
        conn.execute("delete from _incoming where line_id = 'L000050'")
        return original(conn, entity, incoming - 1)

    monkeypatch.setattr(staged, "reject_duplicates", losing_one)
    with pytest.raises(RecordsUnaccounted, match=r"sales_lines_lost.csv: 200 records read, but 199 loaded"):
        load(warehouse_dsn, tmp_path, False)
    assert raw_rows(warehouse_dsn) == []
    with psycopg.connect(warehouse_dsn) as conn:
        assert conn.execute("select status from audit.load_runs").fetchone()[0] == "failed"
