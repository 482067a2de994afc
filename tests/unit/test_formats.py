"""The record reader that survives malformed regions, and the detection of export forms."""

from __future__ import annotations

import pytest

from winback.extract.formats import Malformed, normalize_number, read_records, sniff_delimiter, sniff_encoding


def records(text: str, width: int = 3):
    return [(line, r if isinstance(r, list) else (r.first_line, r.reason.split(":")[0], r.text))
            for line, r in read_records(text, width, first_line=2)]


def test_a_quoted_field_may_span_lines():
    assert records('a,"b\nstill b",c\nd,e,f\n') == [(2, ["a", "b\nstill b", "c"]), (4, ["d", "e", "f"])]


def test_an_unterminated_quote_costs_only_its_line():
    text = 'a,b,c\nBAD,"x,y\nd,e,f\ng,"h, i",j\n'
    assert records(text) == [(2, ["a", "b", "c"]), (3, (3, "unterminated quoted field", 'BAD,"x,y')),
                             (4, ["d", "e", "f"]), (5, ["g", "h, i", "j"])]


def test_an_unterminated_quote_on_the_last_line_and_a_ragged_row_stay_single_records():
    assert records('a,b,c\nx,y\nz,"w,v') == [(2, ["a", "b", "c"]), (3, ["x", "y"]), (4, ["z", "w,v"])]


def test_blank_lines_are_no_records():
    assert records("a,b,c\n\n\nd,e,f\n") == [(2, ["a", "b", "c"]), (5, ["d", "e", "f"])]


def test_a_malformed_record_survives_the_rewriting_as_a_marker():
    bad = Malformed(7, 7, 'x,"y', "unterminated quoted field")
    assert Malformed.from_marker(bad.marker()) == bad
    assert Malformed.from_marker("plain value") is None


@pytest.mark.parametrize(("text", "decimal", "expected"), [
    ("1 234,50", ",", "1234.50"), ("-1\u00a0234\u00a0567,5", ",", "-1234567.5"), ("12,5", ",", "12.5"),
    ("1.234,50", ",", "1234.50"), ("1234.50", ",", "1234.50"), ("1,234.50", ".", "1234.50"),
    ("12", ",", "12"), ("abc", ",", "abc"), ("1,2,3", ",", "1,2,3"),
    ("1.234", ",", "1.234"),  # a dot alone may be a decimal point: left as it is, never read as 1234
    ("1 234", ",", "1234"),
])
def test_numbers_in_a_locales_form_become_the_contracts(text, decimal, expected):
    assert normalize_number(text, decimal) == expected


def test_the_delimiter_is_the_one_the_header_uses():
    assert sniff_delimiter("line_id;order_id;client_id") == ";"
    assert sniff_delimiter('line_id,"a;b",c') == ","
    assert sniff_delimiter("line_id\torder_id") == "\t"
    assert sniff_delimiter("line_id") == ","


def test_windows_1251_is_told_from_utf8_with_a_stray_byte():
    russian = "Клиент;Дата;Сумма\nООО Ромашка;2025-01-01;1,5\n"
    assert sniff_encoding(russian.encode("cp1251")) == "cp1251"
    assert sniff_encoding(russian.encode("utf-8")) == "utf-8"
    assert sniff_encoding(b"\xef\xbb\xbfline_id\n") == "utf-8-sig"
    assert sniff_encoding(b"L7,O1,C\xff\xfe,2025-01-10\n") == "utf-8"  # quarantined as undecodable, not guessed
