"""The bulk path of a first load: clean rows COPYed straight into the empty raw table.

On a first load (``raw.<entity>`` holds no row: the initial extract, a new warehouse, a
user's own export) the usual path writes every row three times: into the text landing
table, cast into ``_incoming``, and into the keyed raw table. The bulk path writes the
clean rows once:

* each chunk is parsed and checked here, on the client, with Arrow, while PostgreSQL
  copies the chunk before it (the machine's second core does the checks);
* a chunk whose rows all pass goes as it is, by a typed ``COPY ... (FREEZE)``, straight
  into ``raw.<entity>``, whose key and indexes were dropped and are built again at the end
  (one sort instead of one index insertion per row, as "Populating a Database" in the
  PostgreSQL manual advises);
* in a chunk with a row that does not pass, the columns that failed are checked row by
  row: the passing rows are written out again by Arrow for the same COPY, the others are
  held back for the usual way (landing table, checks in SQL, see ``validation``), so bad
  rows get their exact reasons. A chunk Arrow cannot read goes the usual way whole.

The checks here are stricter than the SQL ones, never looser: a row goes straight into
raw only when it would pass the SQL checks with the text it has, so that PostgreSQL's own
cast of that text in the COPY stores what the SQL path would store. Values that are valid
but written in a form the SQL path rewrites (``Completed``, a quoted empty field, ``1e2``
with spaces) are held back too. Whatever PostgreSQL still refuses in the COPY (a time zone
offset beyond 15 hours, say) makes the loader roll the bulk path back and load the
delivery the usual way; so do keys repeated inside it.
"""

from __future__ import annotations

import datetime as dt
import io
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from winback.extract.contract import ID_WHITESPACE, SALES_STATUSES, Column
from winback.extract.sources import physical_lines
from winback.extract.validation import DeliveryColumns

# Types the client checks know; an entity with another (boolean) always takes the usual path.
_CHECKED_TYPES = ("text", "numeric", "integer", "date", "timestamp")
# Read-ahead of the checking thread: bounded, so memory follows the chunk size, not the file.
_READ_AHEAD = 2
# Row by row, values in these forms only (by type; numbers also within their bounds) go straight into raw.
_ROW_PATTERNS = {
    "numeric": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$",
    "integer": r"^[+-]?[0-9]{1,9}$",
    "date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    "timestamp": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
                 r"([+-](0[0-9]|1[0-5])(:?[0-5][0-9])?|Z)?$",
}
# Distinct values of the collected column are merged every so many chunks. The merge's hash
# table is the extract's one memory cost that grows with the data: with the distinct client
# ids (163k at L: +25 MB of peak RSS, bench/). Merging more often did not lower the peak.
_COMPACT_EVERY = 64


def supports(columns: DeliveryColumns) -> bool:
    """Whether a delivery can take the bulk path: every column of its header is a contract
    column (drift goes to ``_extra``, which only the SQL path builds) of a type checked here,
    and its entity has no row rule (checks across columns are left to the SQL path: the
    entities with one, such as campaigns, come in small files)."""
    entity = columns.entity
    return not columns.drift and not entity.row_rules and all(c.type in _CHECKED_TYPES for c in entity.columns)


def copy_statement(columns: DeliveryColumns) -> sql.Composed:
    """COPY of the delivery's records, in its header's order, straight into the raw table."""
    contract_name = {source: name for name, source in columns.source_of.items() if source}
    names = sql.SQL(", ").join(sql.Identifier(contract_name[n]) for n in columns.landing)
    return sql.SQL("copy {} ({}) from stdin with (format csv, freeze)").format(
        sql.Identifier("raw", columns.entity.name), names)


@dataclass
class Verdict:
    """What becomes of one chunk: its records for the COPY into raw and the rows held back
    for the SQL path, or (a record Arrow cannot read, a blank line, a NUL byte) the whole
    chunk for the SQL path."""

    rows: int = 0  # records in the chunk
    lines: int = 0  # physical lines in the chunk (counted in the checking thread, off the COPY's path)
    copy: bytes = b""  # CSV records to COPY straight into raw
    copy_rows: int = 0
    held_back: list[tuple] = field(default_factory=list)  # (position in the chunk, *values as text)
    staged_whole: bool = False


class ChunkCheck:
    """Decides, on the client, which rows of a CSV chunk keep the contract as written."""

    def __init__(self, columns: DeliveryColumns, as_of: dt.date, collect: str | None = None):
        """``collect``: a column whose distinct values in the rows copied ``distinct_csv``
        gives at the end (the client ids, checked against raw.clients after the load)."""
        self.columns = columns
        # The contract columns the delivery has, with their names in it.
        self.present = [(c, columns.source_of[c.name]) for c in columns.entity.columns if columns.source_of[c.name]]
        self.collect = columns.source_of.get(collect) if collect else None
        self._distinct: list = []
        self.as_of = as_of.isoformat()
        # A timestamp written with a zone offset (up to 15:59 either way) may fall up to two
        # days later in the session's zone (up to +14:00): only dates two days before D are
        # surely not after it; the SQL path decides the rest.
        self.last_sure_day = (as_of - dt.timedelta(days=2)).isoformat()
        self.statuses = _string_array(sorted(SALES_STATUSES))
        self.read_options = pacsv.ReadOptions(column_names=columns.landing, use_threads=False)
        self.parse_options = pacsv.ParseOptions(newlines_in_values=True)
        # Only an unquoted empty field is NULL, as in COPY; a quoted one stays '' (see check()).
        self.convert_options = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in columns.landing}, null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=False)

    def check(self, chunk: bytes) -> Verdict:
        """Which rows of the chunk go straight into raw and which take the SQL path."""
        verdict = self._check(chunk)
        verdict.lines = physical_lines(chunk)
        return verdict

    def _check(self, chunk: bytes) -> Verdict:
        # NUL bytes COPY refuses; a blank line COPY reads as a short row, the SQL path skips it.
        if b"\x00" in chunk or chunk[:1] in (b"\n", b"\r") or b"\n\n" in chunk or b"\n\r\n" in chunk:
            return Verdict(staged_whole=True)
        try:
            table = pacsv.read_csv(io.BytesIO(chunk), read_options=self.read_options,
                                   parse_options=self.parse_options, convert_options=self.convert_options)
        except pa.ArrowInvalid:  # ragged rows, bytes that are not UTF-8
            return Verdict(staged_whole=True)
        # A quote inside a field: PostgreSQL reads it as the start of a quoted part, Arrow as a
        # character (`C"9"9` is C99 to one, C"9"9 to the other). Only PostgreSQL's reading counts.
        if b'"' in chunk and any(pc.any(pc.match_substring(table.column(name), '"')).as_py()
                                 for name in self.columns.landing):
            return Verdict(staged_whole=True)
        # The SQL path reads a quoted empty field as NULL, COPY as ''. Without a "" in the
        # chunk there is none.
        quoted_empty = b'""' in chunk
        failing = [(column, source) for column, source in self.present
                   if not self._column_passes(column, table.column(source), quoted_empty)]
        if not failing:  # the usual case: the chunk goes as it is
            self._collect(table)
            return Verdict(rows=table.num_rows, copy=chunk, copy_rows=table.num_rows)
        # A row held the chunk back: split it by the columns that failed. The rows that pass
        # the row checks are checked again as whole columns, so the column checks stay the
        # only judge of what is copied.
        passing = None
        for column, source in failing:
            rows_ok = self._row_mask(column, table.column(source))
            passing = rows_ok if passing is None else pc.and_(passing, rows_ok)
        good = table.filter(passing)
        if good.num_rows and not all(self._column_passes(column, good.column(source), True)
                                     for column, source in failing):
            return Verdict(staged_whole=True)
        held = table.filter(pc.invert(passing))
        positions = pc.indices_nonzero(pc.invert(passing)).to_pylist()
        rows = list(zip(positions, *(held.column(i).to_pylist() for i in range(held.num_columns)), strict=True))
        copy = b""
        if good.num_rows:
            out = io.BytesIO()
            # Arrow writes a NULL as an empty field and quotes a value only where CSV needs it:
            # COPY reads back exactly the values parsed here. Lines end as the file's do: one
            # COPY refuses a change of line ending between the chunks it reads.
            first = chunk.find(b"\n")
            eol = "\r\n" if first > 0 and chunk[first - 1:first] == b"\r" else "\n"
            pacsv.write_csv(good, out, pacsv.WriteOptions(include_header=False, quoting_style="needed", eol=eol))
            copy = out.getvalue()
            self._collect(good)
        return Verdict(rows=table.num_rows, copy=copy, copy_rows=good.num_rows, held_back=rows)

    def _column_passes(self, column: Column, values: pa.ChunkedArray, quoted_empty: bool) -> bool:
        """Whether every value of one column keeps the contract as written."""
        if column.required and values.null_count:
            return False
        if quoted_empty and pc.any(pc.equal(values, "")).as_py():
            return False
        if column.name == "status" and (values.null_count or not pc.all(pc.is_in(values, self.statuses)).as_py()):
            return False  # the SQL path stores it lower-cased, 'completed' when empty
        if values.null_count == len(values):
            return True
        if column.max_chars and pc.max(pc.binary_length(values)).as_py() > column.max_chars \
                and pc.max(pc.utf8_length(values)).as_py() > column.max_chars:
            return False  # the SQL path quarantines it with its length
        if column.is_identifier and not pc.all(_untrimmed_length_kept(values)).as_py():
            return False  # the SQL path trims it
        event = column.name == self.columns.entity.event_date
        try:
            if column.type in ("numeric", "integer"):
                # Arrow's decimal reads no NaN or infinity, which the contract refuses.
                numbers = pc.cast(values, pa.decimal128(38, 10) if column.type == "numeric" else pa.int32())
                if column.bounded:
                    low, high = (v.as_py() for v in pc.min_max(numbers).values())
                    return (column.minimum is None or low >= column.minimum) and \
                        (column.maximum is None or high <= column.maximum)
            elif column.type == "date":
                # Arrow reads exactly YYYY-MM-DD and checks the calendar; year 0 PostgreSQL refuses.
                pc.cast(values, pa.date32())
                low, high = pc.min_max(values).values()
                return low.as_py() >= "0001" and not (event and high.as_py() > self.as_of)
            elif column.type == "timestamp":
                _cast_timestamps(values)
                low, high = pc.min_max(values).values()
                return low.as_py() >= "0001" and not (event and high.as_py()[:10] > self.last_sure_day)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        return True

    def _row_mask(self, column: Column, values: pa.ChunkedArray) -> pa.ChunkedArray:
        """Per row: whether the column's value keeps the contract as written. Patterns stricter
        than the contract (no exponent, no padding, 'T' or a space before the time, offsets up
        to 15 hours): a valid row they miss only takes the SQL path."""
        checks = [pc.not_equal(values, "")]  # NULL stays NULL here: allowed unless required
        if column.name == "status":
            checks.append(pc.is_in(values, self.statuses))
        elif column.type in _ROW_PATTERNS:
            shaped = pc.match_substring_regex(values, _ROW_PATTERNS[column.type])
            checks.append(shaped)
            if column.bounded:
                # Every value of the pattern reads as a float. Rounded near a bound it may pass
                # here wrongly: the column check of the passing rows then sends the chunk whole.
                numbers = pc.cast(pc.if_else(shaped, values, pa.scalar(None, pa.string())), pa.float64())
                if column.minimum is not None:
                    checks.append(pc.greater_equal(numbers, column.minimum))
                if column.maximum is not None:
                    checks.append(pc.less_equal(numbers, column.maximum))
        if column.max_chars:
            checks.append(pc.less_equal(pc.utf8_length(values), column.max_chars))
        if column.is_identifier:
            checks.append(_untrimmed_length_kept(values))
        if column.type in ("date", "timestamp"):
            day = pc.utf8_slice_codeunits(values, 0, 10)
            checks.append(pc.not_equal(pc.utf8_slice_codeunits(values, 0, 4), "0000"))
            # A date the calendar does not have parses to NULL.
            checks.append(pc.is_valid(pc.strptime(pc.fill_null(day, "2000-01-01"), format="%Y-%m-%d", unit="s",
                                                  error_is_null=True)))
            if column.name == self.columns.entity.event_date:
                checks.append(pc.less_equal(day, self.as_of if column.type == "date" else self.last_sure_day))
        if column.required:
            checks.append(pc.is_valid(values))
        mask = None
        for check in checks:
            check = pc.fill_null(check, True)
            mask = check if mask is None else pc.and_(mask, check)
        return mask

    def _collect(self, table: pa.Table) -> None:
        if self.collect:
            self._distinct.append(pc.unique(table.column(self.collect)).drop_null())
            if len(self._distinct) >= _COMPACT_EVERY:
                self._compact()

    def _compact(self) -> None:

        self._distinct = [pc.unique(pa.concat_arrays(self._distinct))] if self._distinct else []

    def distinct_csv(self) -> bytes:
        """The distinct values of the collected column, one per line, for a COPY: kept as Arrow
        arrays, they take a few bytes per value, however many rows the file has."""

        self._compact()
        if not self._distinct or not len(self._distinct[0]):
            return b""
        out = io.BytesIO()
        pacsv.write_csv(pa.Table.from_arrays([self._distinct[0]], names=["value"]), out,
                        pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
        return out.getvalue()


def _untrimmed_length_kept(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Per value: whether trimming the identifier's whitespace (contract.ID_WHITESPACE, as the
    SQL path does) leaves it as it is. A trim and two lengths: ~15x cheaper than a regex."""
    return pc.equal(pc.binary_length(values), pc.binary_length(pc.utf8_trim(values, characters=ID_WHITESPACE)))


def _string_array(values: list[str]) -> pa.Array:
    """An Arrow array of a few plain words. Read as CSV, because ``pa.array()`` of a Python
    list imports pandas, which costs each extract process about 0.2 s."""
    table = pacsv.read_csv(io.BytesIO("\n".join(values).encode() + b"\n"),
                           read_options=pacsv.ReadOptions(column_names=["value"]),
                           convert_options=pacsv.ConvertOptions(column_types={"value": pa.string()}))
    return table.column("value").combine_chunks()


def _cast_timestamps(values) -> None:
    """Raise ArrowInvalid unless every value is an ISO 8601 timestamp: YYYY-MM-DD, then 'T' or
    a space, a time, and a zone offset or none (the session's zone then applies, in either path)."""

    try:  # Arrow casts a column either with zone offsets or without; try both before splitting
        pc.cast(values, pa.timestamp("us", tz="UTC"))
        return
    except pa.ArrowInvalid:
        pass
    try:
        pc.cast(values, pa.timestamp("us"))
        return
    except pa.ArrowInvalid:
        pass
    zoned = pc.match_substring_regex(values, r"([+-]\d\d(:?\d\d)?|Z)$")
    pc.cast(pc.filter(values, zoned), pa.timestamp("us", tz="UTC"))
    pc.cast(pc.filter(values, pc.invert(zoned)), pa.timestamp("us"))


def checked_chunks(chunks: Iterator[bytes], check: ChunkCheck) -> Iterator[tuple[bytes, Verdict]]:
    """The chunks with their check, read and checked one step ahead in a thread of their own,
    so the checks of one chunk run while PostgreSQL copies the one before."""
    handoff: queue.Queue = queue.Queue(maxsize=_READ_AHEAD)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has stopped

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put((chunk, check.check(chunk))):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="winback-chunk-check", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
