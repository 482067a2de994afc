"""The bulk path's client-side checks (extract/bulk.py), without a database.

Which chunks pass decides which rows skip the SQL checks; that both paths then store the
same rows is checked against PostgreSQL in tests/integration/test_extract.py.
"""

import csv
import datetime as dt
import hashlib
import io

import pytest

from winback.extract import bulk
from winback.extract.contract import CAMPAIGNS, CONTACTS, SALES_LINES
from winback.extract.sources import read_file
from winback.extract.validation import DeliveryColumns

HEADER = ["line_id", "order_id", "client_id", "order_date", "quantity", "net_amount", "status", "updated_at"]
AS_OF = dt.date(2025, 1, 10)
GOOD = "L{n},O1,C{n},2025-01-10,1,10.5,completed,2025-01-10 10:00:00+00\n"


def check(header=HEADER, entity=SALES_LINES, collect=None):
    return bulk.ChunkCheck(DeliveryColumns(entity, header, "test.csv"), AS_OF, collect=collect)


def chunk(*rows: str) -> bytes:
    return "".join(rows).encode()


def passes_whole(checker: bulk.ChunkCheck, raw: bytes) -> bool:
    """The chunk goes into the COPY as it is, every row of it."""
    verdict = checker.check(raw)
    return verdict.copy is raw and verdict.copy_rows == verdict.rows and not verdict.held_back


def test_a_clean_chunk_passes_whole_with_its_row_count():
    raw = chunk(*(GOOD.format(n=n) for n in range(5)))
    assert passes_whole(check(), raw) and check().check(raw).rows == 5


@pytest.mark.parametrize("row", [
    "L1,O1,C1,2025-01-10,1,10,completed,2025-01-10T10:00:00Z\n",
    "L1,O1,C1,2025-01-10,1,10,completed,2025-01-10 10:00:00\n",  # no zone: the session's, in both paths
    "L1,O1,C1,2025-01-10,-1,1e2,returned,\n",
    'L1,"O, 1",C1,2025-01-10,1,10,cancelled,\n',
])
def test_valid_rows_written_as_copy_reads_them_pass(row):
    assert passes_whole(check(), chunk(GOOD.format(n=0), row))


@pytest.mark.parametrize("row", [
    "L1,O1,C1,2025-01-10,1,NaN,completed,\n",
    "L1,O1,C1,2025-01-10,1,-Infinity,completed,\n",
    "L1,O1,C1,2025-01-10,1,10 EUR,completed,\n",
    "L1,O1,C1,01/10/2025,1,10,completed,\n",
    "L1,O1,C1,2025-02-30,1,10,completed,\n",
    "L1,O1,C1,0000-01-10,1,10,completed,\n",
    "L1,O1,C1,2025-01-11,1,10,completed,\n",  # after the as-of date
    "L1,O1,C1,2025-01-10,1,10,completed,01/10/2025 10:00\n",
    "L1,O1,C1,2025-01-10,1,10,completed,2025-01-10 25:00:00\n",
    "L1,O1,C1,2025-01-10,1,10,lost,\n",
    "L1,,C1,2025-01-10,1,10,completed,\n",  # a required value missing
    "L1,O1,C1,2025-01-10,1,10,completed\n",  # ragged
    # Valid, but the SQL path rewrites them: lower-cased status, 'completed' when empty, '' as NULL.
    "L1,O1,C1,2025-01-10,1,10,Completed,\n",
    "L1,O1,C1,2025-01-10,1,10,,\n",
    'L1,O1,C1,2025-01-10,1,10,completed,""\n',
    "L1,O1,C1,2025-01-10, 1 ,10,completed,\n",
])
def test_a_row_that_is_bad_or_rewritten_by_the_sql_path_is_held_back_alone(row):
    verdict = check().check(chunk(GOOD.format(n=0), row, GOOD.format(n=2)))
    if "completed\n" in row and row.count(",") == 6:  # the ragged row: Arrow cannot read the chunk
        assert verdict.staged_whole and not verdict.copy_rows
        return
    assert (verdict.rows, verdict.copy_rows) == (3, 2)
    assert [position for position, *_ in verdict.held_back] == [1]
    assert verdict.held_back[0][1] == "L1"
    # The rows copied are the good ones, as COPY will read them back.
    assert list(csv.reader(io.StringIO(verdict.copy.decode()))) == [
        GOOD.format(n=0).strip().split(","), GOOD.format(n=2).strip().split(",")]


def test_rows_written_out_again_end_their_lines_as_the_file_does():
    """One COPY reads every chunk of a file: a chunk that went as it was sets the line ending."""
    for eol in ("\n", "\r\n"):
        rows = [GOOD.format(n=0), "L1,O1,C1,2025-01-10,1,NaN,completed,\n", GOOD.format(n=2)]
        verdict = check().check(chunk(*(r.replace("\n", eol) for r in rows)))
        assert verdict.copy_rows == 2
        assert verdict.copy.count(eol.encode()) == 2 and verdict.copy.endswith(eol.encode())
        if eol == "\n":
            assert b"\r" not in verdict.copy


@pytest.mark.parametrize("row", ['L1,O1,C"9"9,2025-01-10,1,10,completed,\n', 'L1,"O ""quoted"" 1",C1,2025-01-10,1,10,,\n'])
def test_a_quote_inside_a_value_sends_the_chunk_whole_to_the_sql_path(row):
    """PostgreSQL reads a quote inside a field as the start of a quoted part (C"9"9 is C99),
    Arrow as a character: only PostgreSQL's reading of the bytes may count."""
    verdict = check(collect="client_id").check(chunk(GOOD.format(n=0), row))
    assert verdict.staged_whole and not verdict.copy_rows


@pytest.mark.parametrize("raw", [b"\n" + GOOD.format(n=1).encode(), chunk(GOOD.format(n=1), "\n", GOOD.format(n=2)),
                                 chunk(GOOD.format(n=1)).replace(b"O1", b"O\x001"),
                                 chunk(GOOD.format(n=1)).replace(b"O1", b"O\xff1")])
def test_blank_lines_nul_bytes_and_bad_utf8_send_their_chunk_whole_to_the_sql_path(raw):
    verdict = check().check(raw)
    assert verdict.staged_whole and not verdict.copy_rows


def test_a_contact_near_the_as_of_day_is_left_to_the_sql_path():
    """Its time zone decides whether it lies after D: only the SQL path knows the session's."""
    contacts = check(["contact_id", "contact_at", "channel", "nps_score"], CONTACTS)
    assert passes_whole(contacts, b"K1,2025-01-08 23:00:00+01:00,call,7\n")
    # 23:59 at -15:59 on the 9th is the 11th in Tokyo: two days of margin before D.
    for held in (b"K1,2025-01-10 01:00:00+05:00,call,7\n", b"K1,2025-01-09T23:59:00-15:59,call,7\n",
                 b"K1,2025-01-08 09:00:00,call,11\n"):  # nps_score outside 0-10
        verdict = contacts.check(b"K0,2025-01-08 09:00:00,call,7\n" + held)
        assert verdict.copy_rows == 1 and [p for p, *_ in verdict.held_back] == [1]


OFFER_HEADER = ["contact_id", "contact_at", "channel", "nps_score", "campaign_id", "offer_type", "offer_value"]
OFFER_GOOD = "K0,2025-01-08 09:00:00,call,7,W1,gift,12.50\n"


@pytest.mark.parametrize("row", ["K1,2025-01-08 09:00:00,call,,W1,discount,0\n",
                                 "K1,2025-01-08 09:00:00,call,10,W1,service,.5\n",
                                 "K1,2025-01-08 09:00:00,call,0,,,\n"])
def test_offer_values_and_nps_scores_within_their_bounds_pass(row):
    assert passes_whole(check(OFFER_HEADER, CONTACTS), chunk(OFFER_GOOD, row))


@pytest.mark.parametrize("row", ["K1,2025-01-08 09:00:00,call,7,W1,gift,-5\n",
                                 "K1,2025-01-08 09:00:00,call,7,W1,gift,-0.0000000000000000001\n",
                                 "K1,2025-01-08 09:00:00,call,-1,W1,gift,5\n",
                                 "K1,2025-01-08 09:00:00,call,11,W1,gift,5\n"])
def test_a_value_outside_its_bounds_is_held_back_alone(row):
    verdict = check(OFFER_HEADER, CONTACTS).check(chunk(OFFER_GOOD, row, OFFER_GOOD.replace("K0", "K2")))
    assert (verdict.rows, verdict.copy_rows) == (3, 2)
    assert [position for position, *_ in verdict.held_back] == [1]


def test_a_number_only_the_row_checks_can_read_sends_the_chunk_whole():
    """The row checks read a bounded number as a float, the column check of the rows that
    passed them as an exact decimal (10 digits after the point): a value only the first can
    read (a float may also round it into its bounds) sends the chunk whole to the SQL path."""
    verdict = check(OFFER_HEADER, CONTACTS).check(chunk(
        OFFER_GOOD, "K1,2025-01-08 09:00:00,call,7,W1,gift,x\n",
        "K2,2025-01-08 09:00:00,call,7,W1,gift,0.00000000000000000001\n"))
    assert verdict.staged_whole and not verdict.copy_rows


def test_drift_boolean_columns_and_row_rules_keep_a_delivery_on_the_usual_path():
    assert bulk.supports(DeliveryColumns(SALES_LINES, HEADER, "x"))
    assert not bulk.supports(DeliveryColumns(SALES_LINES, [*HEADER, "note"], "x"))
    assert bulk.supports(DeliveryColumns(CONTACTS, OFFER_HEADER, "x"))
    # A campaign ending before it starts is a rule across two columns: the SQL path checks it.
    assert not bulk.supports(DeliveryColumns(CAMPAIGNS, ["campaign_id", "start_date", "end_date", "cost"], "x"))


def test_the_copy_statement_names_the_contract_columns_in_the_files_order():
    columns = DeliveryColumns(SALES_LINES, ["Net_Amount", *HEADER[:5], *HEADER[6:]], "x")
    statement = bulk.copy_statement(columns).as_string(None)
    assert statement.startswith('copy "raw"."sales_lines" ("net_amount", "line_id", "order_id"')
    assert statement.endswith("from stdin with (format csv, freeze)")


def test_the_collected_client_ids_are_the_distinct_ones_of_the_passing_chunks():
    ids = check(collect="client_id")
    for n in range(3):
        assert passes_whole(ids, chunk(GOOD.format(n=n), GOOD.format(n=n + 10), GOOD.format(n=1)))
    assert ids.check(chunk(GOOD.format(n=99), "L1,O1,C77,bad,1,1,completed,\n")).copy_rows == 1  # C77 held back
    assert sorted(ids.distinct_csv().decode().split()) == sorted(
        f'"C{n}"' for n in {0, 1, 2, 10, 11, 12, 99})


def test_checked_chunks_pass_every_chunk_in_order_and_raise_a_reader_error():
    chunks = [chunk(GOOD.format(n=n)) for n in range(10)]
    assert [c for c, _ in bulk.checked_chunks(iter(chunks), check())] == chunks

    def failing():
        yield chunks[0]
        raise OSError("the file went away")

    with pytest.raises(OSError, match="went away"):
        list(bulk.checked_chunks(failing(), check()))


def test_a_consumer_that_stops_early_stops_the_reader():
    closed = []

    def endless():
        try:
            while True:
                yield chunk(GOOD.format(n=1))
        finally:
            closed.append(True)

    for _ in bulk.checked_chunks(endless(), check()):
        break
    assert closed == [True]


def test_a_new_files_checksum_is_taken_while_it_is_read(tmp_path):
    path = tmp_path / "sales_lines_x.csv"
    path.write_bytes(("line_id,order_id\n" + "".join(f"L{n},O{n}\n" for n in range(5000))).encode())
    delivery = read_file(str(path), SALES_LINES, chunk_bytes=4096)
    assert delivery.checksum is None
    assert b"".join(delivery.chunks).startswith(b"L0,O0")
    assert (delivery.checksum, delivery.size_bytes) == (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                        path.stat().st_size)
    again = delivery.reopen()
    assert again.checksum == delivery.checksum and b"".join(again.chunks).startswith(b"L0,O0")
