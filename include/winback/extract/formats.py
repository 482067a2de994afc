"""Exports as real systems write them, turned into the one CSV form the loader reads.

The loader reads UTF-8 CSV with a comma between fields and a dot in numbers (RFC 4180),
by COPY. Real exports also come as:

* ``;`` between fields and a decimal comma in numbers (``1 234,50``): what spreadsheet
  software writes in many locales, Russian included;
* Windows-1251 instead of UTF-8;
* ``.xlsx`` workbooks (read with python-calamine, a maintained reader written in Rust);
* headers that differ from the contract (a column mapping in the one config home,
  ``[columns.<entity>]`` in ``winback.toml``).

Such a file is read record by record here and written out again in the loader's form, so
every value then takes the same validation and quarantine as a plain CSV. A plain CSV is
passed through untouched: it stays on the fast path.

This module also holds the one CSV record reader that survives malformed regions
(:func:`read_records`): an unterminated quote costs only the line that opened it.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from winback.extract.contract import Entity

# Python's csv module refuses a field above 128 KiB; a chunk is bounded anyway (sources).
csv.field_size_limit(1 << 30)

DELIMITERS = (",", ";", "\t", "|")
# A Windows-1251 file read as UTF-8 fails on nearly every byte above 0x7F; a UTF-8 file with
# a stray bad byte fails on a few. Below both limits the file is UTF-8 and a bad row is
# quarantined as undecodable (set ``encoding`` to say otherwise).
_MIN_BAD_BYTES = 8
_MIN_BAD_SHARE = 0.5
_SNIFF_BYTES = 1 << 16

# A record the reader could not take, carried through the canonical CSV to the loader's
# careful path as one field: NUL bytes make COPY and the bulk checks refuse its chunk.
MALFORMED_MARK = "\x00winback-malformed\x00"


@dataclass(frozen=True)
class FileFormat:
    """How the files of a landing location are written; None means: detect it per file."""

    delimiter: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    # Per entity: contract column -> the header the export uses for it.
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Malformed:
    """Lines that hold no readable record, with their numbers in the file."""

    first_line: int
    last_line: int
    text: str
    reason: str

    def marker(self) -> str:
        return f"{MALFORMED_MARK}{self.first_line}\x00{self.last_line}\x00{self.reason}\x00{self.text}"

    @classmethod
    def from_marker(cls, value: str) -> Malformed | None:
        if not value.startswith(MALFORMED_MARK):
            return None
        first, last, reason, text = value[len(MALFORMED_MARK):].split("\x00", 3)
        return cls(int(first), int(last), text, reason)


# --------------------------------------------------------------------------- records
def _physical_lines(text: str) -> list[str]:
    lines = text.split("\n")
    last = lines.pop()
    lines = [line + "\n" for line in lines]
    if last:
        lines.append(last)
    return lines


def read_records(text: str, width: int, delimiter: str = ",",
                 first_line: int = 1) -> Iterator[tuple[int, list[str] | Malformed]]:
    """The CSV records of ``text`` with the file line each starts on (``first_line`` is the
    number of its first line). Blank lines are no records.

    A quoted field may hold line breaks, so an unterminated quote would swallow every line
    after it. A record that spans several lines is therefore kept only when it has the
    header's ``width`` and its quotes pair up; otherwise its first line is given back as
    :class:`Malformed` and reading starts again on the next line, so a stray quote costs
    that one line, never the valid lines after it. A one-line record of another width is
    given back as it is (the loader quarantines it with its fields).
    """
    lines = _physical_lines(text)
    start = 0
    while start < len(lines):
        consumed = 0

        def feed(begin: int = start) -> Iterator[str]:
            nonlocal consumed
            for index in range(begin, len(lines)):
                consumed += 1
                yield lines[index]

        reader = csv.reader(feed(), delimiter=delimiter)
        begin = start
        while True:
            try:
                values = next(reader)
            except StopIteration:
                start = len(lines)
                break
            except csv.Error as exc:
                end = start + consumed
                yield first_line + begin, Malformed(first_line + begin, first_line + begin,
                                                    lines[begin].rstrip("\r\n"), f"malformed CSV: {exc}")
                start = begin + 1
                break
            end = start + consumed
            if end - begin > 1 and values and (
                    len(values) != width or sum(line.count('"') for line in lines[begin:end]) % 2):
                yield first_line + begin, Malformed(
                    first_line + begin, first_line + begin, lines[begin].rstrip("\r\n"),
                    f"unterminated quoted field: the quote opened on line {first_line + begin} does not close "
                    "where a record can end; this line is quarantined and reading goes on with the next")
                start = begin + 1
                break
            if values:
                yield first_line + begin, values
            begin = end


# --------------------------------------------------------------------------- detection
def sniff_encoding(sample: bytes) -> str:
    """``utf-8-sig`` for a BOM, ``cp1251`` for bytes that are Windows-1251 text, else ``utf-8``."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.isascii():  # the usual case, answered at C speed
        return "utf-8"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    text = decoder.decode(sample, final=False)
    bad = sum(1 for char in text if "\udc80" <= char <= "\udcff")
    high = sum(1 for byte in sample if byte >= 0x80)
    if bad >= _MIN_BAD_BYTES and bad >= _MIN_BAD_SHARE * high:
        try:
            sample.decode("cp1251")
            return "cp1251"
        except UnicodeDecodeError:
            pass
    return "utf-8"


def sniff_delimiter(header: str) -> str:
    """The delimiter the header line uses most, outside quotes (a comma when none)."""
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def map_header(header: list[str], entity: Entity, fmt: FileFormat) -> list[str]:
    """The header with the export's names replaced by the contract's (``[columns.<entity>]``)."""
    mapping = fmt.columns.get(entity.name) or {}
    by_export = {export.strip().lower(): contract for contract, export in mapping.items()}
    return [by_export.get((name or "").strip().lower(), name) for name in header]


# --------------------------------------------------------------------------- numbers
# Thousands grouped by a space (or a no-break or thin space, or an apostrophe), decimals optional;
# grouped by a dot only with a decimal comma after: "1.234" alone may be 1.234 in a file with dot
# decimals, and is left as it is rather than read as 1234.
_GROUPED_COMMA = re.compile(r"^[+-]?\d{1,3}(?:(?:[ \u00a0\u202f']\d{3})+(?:,\d+)?|(?:\.\d{3})+,\d+)$")
_PLAIN_COMMA = re.compile(r"^[+-]?\d*,\d+$")
_GROUPED_DOT = re.compile(r"^[+-]?\d{1,3}(?:[ \u00a0\u202f,']\d{3})+(?:\.\d+)?$")


def normalize_number(value: str, decimal: str) -> str:
    """A number as the contract writes it (``1234.50``) from a locale's form: ``1 234,50``
    or ``1.234,50`` with a decimal comma, ``1,234.50`` with a dot. Anything else is left as
    it is, for the checks to judge."""
    text = value.strip()
    if decimal == ",":
        if _PLAIN_COMMA.match(text):
            return text.replace(",", ".")
        if _GROUPED_COMMA.match(text):
            return re.sub(r"[ \u00a0\u202f.']", "", text).replace(",", ".")
    elif _GROUPED_DOT.match(text):
        return re.sub(r"[ \u00a0\u202f,']", "", text)
    return value


# --------------------------------------------------------------------------- rewriting
def _writer() -> tuple[io.StringIO, csv.writer]:
    out = io.StringIO()
    return out, csv.writer(out, lineterminator="\n")


def rewrite_csv(chunks: Iterable[bytes], header: list[str], entity: Entity, encoding: str, delimiter: str,
                decimal: str, first_line: int) -> Iterator[bytes]:
    """Chunks of a delimited file in another form, as the loader's UTF-8 comma CSV with dot
    decimals. Records keep their order and lines, so row and line numbers stay those of the
    file; a malformed record goes through as a :data:`MALFORMED_MARK` field."""
    numeric = [i for i, name in enumerate(header)
               if any(c.name == name and c.type in ("numeric", "integer") for c in entity.columns)]
    width = len(header)
    line = first_line
    for chunk in chunks:
        text = chunk.decode(encoding, errors="surrogateescape")
        out, writer = _writer()
        for _, record in read_records(text, width, delimiter, line):
            if isinstance(record, Malformed):
                writer.writerow([record.marker()])
                continue
            for i in numeric:
                if i < len(record) and record[i]:
                    record[i] = normalize_number(record[i], decimal)
            writer.writerow(record)
        line += chunk.count(b"\n")
        yield out.getvalue().encode("utf-8", errors="surrogateescape")


def reencode(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Chunks of a single-byte encoding (e.g. Windows-1251) as UTF-8, byte for byte the same records."""
    for chunk in chunks:
        yield chunk.decode(encoding, errors="surrogateescape").encode("utf-8", errors="surrogateescape")


def _cell_text(value: object, column_type: str | None) -> str:
    """An xlsx cell as the contract writes it: ISO dates, plain numbers, empty for none."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        if column_type == "date" and value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def xlsx_rows(handle, entity: Entity, fmt: FileFormat) -> tuple[list[str], Iterator[list[str]]]:
    """The header and rows of the first sheet of a workbook, as text."""
    from python_calamine import CalamineWorkbook

    sheet = CalamineWorkbook.from_filelike(handle).get_sheet_by_index(0)
    rows = iter(sheet.iter_rows())
    first = next(rows, [])
    header = map_header([_cell_text(v, None).strip() for v in first], entity, fmt)
    types = [next((c.type for c in entity.columns if c.name == name), None) for name in header]

    def text_rows() -> Iterator[list[str]]:
        for row in rows:
            values = [_cell_text(v, types[i] if i < len(types) else None) for i, v in enumerate(row)]
            # Cells past the header that hold nothing are no fields; missing ones are empty.
            while values and values[-1] == "" and len(values) > len(header):
                values.pop()
            values += [""] * (len(header) - len(values))
            if any(values):  # an empty row of the sheet is no record
                yield values

    return header, text_rows()


def rows_to_chunks(rows: Iterable[list[str]], chunk_bytes: int) -> Iterator[bytes]:
    """Rows as the loader's CSV, cut into chunks of about ``chunk_bytes``."""
    out, writer = _writer()
    for row in rows:
        writer.writerow(row)
        if out.tell() >= chunk_bytes:
            yield out.getvalue().encode("utf-8")
            out, writer = _writer()
    if out.tell():
        yield out.getvalue().encode("utf-8")
