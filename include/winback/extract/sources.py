"""Readers: the sales system's tables (SQL source) and file drops (CSV / Parquet).

Every reader yields *deliveries* — one table read or one file — as a header plus a
stream of CSV bytes cut at record boundaries. Nothing is parsed row by row in Python:
PostgreSQL's COPY parses the CSV (see ``loader``), which is what makes the extract fast.
A SQL source is read with ``COPY (SELECT …) TO STDOUT`` and a Parquet file is turned
into CSV by Arrow, so all three kinds take the same path into the warehouse.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import fsspec
import psycopg
from psycopg import sql

from winback.extract import formats
from winback.extract.contract import Entity
from winback.extract.formats import FileFormat

FILE_SUFFIXES = (".csv", ".parquet", ".xlsx")
BLOCK_BYTES = 1 << 20  # the default chunk (config.chunk_bytes) and the checksum's read size
# No record within the contract's limits (validation.MAX_TEXT_CHARS per value) comes near this.
MAX_RECORD_BYTES = 4 << 20
# A file's first block and first chunk are small: the loader's first COPY starts once they
# are checked, while the checks of the full-sized chunks after them run beside it.
FIRST_BLOCK_BYTES = 64 << 10


@dataclass
class Delivery:
    entity: Entity
    source_kind: str  # "sql" | "files"
    source_object: str  # table name or file URL
    header: list[str]
    chunks: Iterator[bytes]  # CSV records (no header), each chunk ends on a record boundary
    checksum: str | None = None
    size_bytes: int | None = None
    # The same delivery read again from its start (the loader's bulk path may need a second read).
    reopen: Callable[[], Delivery] | None = None
    # The line of the file its first record starts on (after the header), for quarantine rows.
    first_line: int = 1


class SourceError(RuntimeError):
    """A source cannot be read (missing table, unreadable file); the message says which."""


def record_chunks(blocks: Iterable[bytes], min_bytes: int = BLOCK_BYTES,
                  first_bytes: int | None = None) -> Iterator[bytes]:
    """Re-cut a CSV byte stream into chunks that end on record boundaries, the first one of
    at least ``first_bytes`` (default ``min_bytes``), the others of at least ``min_bytes``.

    A newline ends a record when an even number of quote characters precede it (RFC 4180
    escapes a quote by doubling it, so the parity is exact), which lets us cut without
    parsing. An unterminated quote breaks that parity for the rest of the file: when no
    record ends within ``MAX_RECORD_BYTES`` (far more than a record within the contract's
    limits can take), the chunk is cut at the last line break instead, so memory stays
    bounded and the loader's record reader finds the stray quote (``formats.read_records``).
    """
    pending: list[bytes] = []
    size = 0
    threshold = first_bytes or min_bytes
    for block in blocks:
        pending.append(block)
        size += len(block)
        if size < threshold:
            continue
        buffer = b"".join(pending)
        cut = _last_record_end(buffer)
        if cut <= 0 and size >= max(threshold, MAX_RECORD_BYTES):
            cut = buffer.rfind(b"\n") + 1
        if cut <= 0:
            pending, size = [buffer], len(buffer)
            continue
        threshold = min_bytes
        yield buffer[:cut]
        rest = buffer[cut:]
        pending, size = ([rest], len(rest)) if rest else ([], 0)
    if size:
        yield b"".join(pending)


def physical_lines(chunk: bytes) -> int:
    """Physical lines in a chunk (the last one may lack its line break)."""
    return chunk.count(b"\n") + (0 if not chunk or chunk.endswith(b"\n") else 1)


def _last_record_end(buffer: bytes) -> int:
    quotes_total = buffer.count(b'"')
    position = buffer.rfind(b"\n")
    while position >= 0:
        if (quotes_total - buffer.count(b'"', position)) % 2 == 0:
            return position + 1
        position = buffer.rfind(b"\n", 0, position)
    return -1


def _split_header(blocks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """Cut the header record off the front of a CSV byte stream: its bytes and the rest."""
    buffer = b""
    for block in blocks:
        buffer += block
        end = first_record_end(buffer)
        if end > 0:
            break
    else:
        end = len(buffer)
    head, rest = buffer[:end], buffer[end:]

    def remaining() -> Iterator[bytes]:
        if rest:
            yield rest
        yield from blocks

    return head, remaining()


def first_record_end(buffer: bytes) -> int:
    """The end of the first record: just after the first newline outside quotes (RFC 4180), or -1."""
    position = buffer.find(b"\n")
    while position >= 0:
        if buffer.count(b'"', 0, position) % 2 == 0:
            return position + 1
        position = buffer.find(b"\n", position + 1)
    return -1


# ------------------------------------------------------------------------- SQL source
def read_sql_table(
    source_dsn: str,
    entity: Entity,
    updated_after: dt.datetime | None,
    updated_until: dt.datetime,
    timezone: str,
    schema: str = "public",
    chunk_bytes: int = BLOCK_BYTES,
) -> Iterator[Delivery]:
    """Read an entity's table incrementally by ``updated_at`` (when it has one).

    Rows with ``updated_at`` in ``(updated_after, updated_until]`` are read, plus rows
    whose ``updated_at`` is NULL (they cannot be placed in time, so every run re-reads
    them; the upsert makes that idempotent). A table without ``updated_at`` is read whole.
    """
    yield _sql_delivery(source_dsn, entity, updated_after, updated_until, timezone, schema, chunk_bytes)


def _sql_delivery(source_dsn: str, entity: Entity, updated_after: dt.datetime | None, updated_until: dt.datetime,
                  timezone: str, schema: str, chunk_bytes: int) -> Delivery:
    """The table read as one delivery; its connection closes when the last block has been read."""
    conn = psycopg.connect(source_dsn, autocommit=True)
    try:
        conn.execute("set datestyle = 'ISO'")
        conn.execute(sql.SQL("set timezone = {}").format(sql.Literal(timezone)))
        table = sql.Identifier(schema, entity.name)
        try:
            header = [c.name for c in conn.execute(sql.SQL("select * from {} limit 0").format(table)).description]
        except psycopg.errors.UndefinedTable:
            raise SourceError(f"source table {schema}.{entity.name} does not exist") from None
    except BaseException:
        conn.close()
        raise
    columns = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(h)) for h in header)
    query = sql.SQL("select {} from {}").format(columns, table)
    if "updated_at" in header:
        query += sql.SQL(
            " where (updated_at <= {until} and ({after}::timestamptz is null or updated_at > {after}))"
            " or updated_at is null order by updated_at nulls first").format(
            until=sql.Literal(updated_until), after=sql.Literal(updated_after))
    statement = sql.SQL("copy ({}) to stdout with (format csv)").format(query)

    def blocks() -> Iterator[bytes]:
        try:
            with conn.cursor() as cur, cur.copy(statement) as copy:
                for block in copy:
                    yield bytes(block)
        finally:
            conn.close()

    def reopen() -> Delivery:
        return _sql_delivery(source_dsn, entity, updated_after, updated_until, timezone, schema, chunk_bytes)

    return Delivery(entity, "sql", f"{schema}.{entity.name}", header, record_chunks(blocks(), chunk_bytes),
                    reopen=reopen)


# ------------------------------------------------------------------------- file drops
def discover_files(landing_url: str, entity: Entity) -> list[str]:
    """Files of an entity in the landing location: ``<entity>*.csv|parquet`` at the top
    level or anywhere below a folder named after the entity. Sorted by path."""
    fs, root = fsspec.core.url_to_fs(landing_url)
    root = root.rstrip("/")
    if not fs.exists(root):
        return []
    found: set[str] = set()
    for suffix in FILE_SUFFIXES:
        found.update(fs.glob(f"{root}/{entity.name}*{suffix}"))
        found.update(fs.glob(f"{root}/{entity.name}/**/*{suffix}"))
    return sorted(fs.unstrip_protocol(p) if "://" in landing_url else p for p in found)


def file_checksum(url: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with fsspec.open(url, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_file(url: str, entity: Entity, checksum: str | None = None, size: int | None = None,
              chunk_bytes: int = BLOCK_BYTES, fmt: FileFormat | None = None) -> Delivery:
    """One file as a delivery. Without a checksum, a CSV file's checksum and size are taken
    while it is read: they are set on the delivery once the last byte has been read.

    A CSV file in another form than the loader's (``;``, a decimal comma, Windows-1251:
    detected, or set in ``fmt``) and an ``.xlsx`` workbook are rewritten as it on the way
    (see ``formats``); headers are renamed by the column mapping of ``fmt``."""
    fmt = fmt or FileFormat()

    def reopen() -> Delivery:
        return read_file(url, entity, delivery.checksum, delivery.size_bytes, chunk_bytes, fmt)

    if url.endswith((".parquet", ".xlsx")):
        if checksum is None:
            checksum, size = file_checksum(url)
        reader = _read_parquet if url.endswith(".parquet") else _read_xlsx
        delivery = reader(url, entity, checksum, size, reopen, fmt, chunk_bytes)
        return delivery
    blocks = _file_blocks(url, chunk_bytes)
    # The checksum may be complete before the delivery exists (a small file is read whole
    # while its format is detected): kept here until then.
    taken: dict = {}
    if checksum is None:
        def done(digest: str, total: int) -> None:
            taken["checksum"] = (digest, total)
            if "delivery" in taken:
                _set_checksum(taken["delivery"], digest, total)

        blocks = _checksummed(blocks, done)
    head, rest = _split_header(blocks)
    sample, rest = _peek(rest, 1)  # the first block after the header: enough to tell the encoding
    encoding = fmt.encoding or formats.sniff_encoding(head + sample)
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    delimiter = fmt.delimiter or formats.sniff_delimiter(text.splitlines()[0] if text.strip() else "")
    decimal = fmt.decimal or ("," if delimiter == ";" else ".")
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter), []) if text.strip() else []
    header = formats.map_header(header, entity, fmt)
    first_line = head.count(b"\n") + 1
    chunks = record_chunks(rest, chunk_bytes, min(FIRST_BLOCK_BYTES // 2, chunk_bytes))
    if delimiter != "," or decimal != ".":
        chunks = formats.rewrite_csv(chunks, header, entity, encoding, delimiter, decimal, first_line)
    elif encoding not in ("utf-8", "utf-8-sig"):
        chunks = formats.reencode(chunks, encoding)
    delivery = taken["delivery"] = Delivery(entity, "files", url, header, chunks, checksum, size, reopen, first_line)
    if "checksum" in taken:
        _set_checksum(delivery, *taken["checksum"])
    return delivery


def _peek(blocks: Iterator[bytes], at_least: int) -> tuple[bytes, Iterator[bytes]]:
    """The first blocks of a stream, at least ``at_least`` bytes of it (or all), and the whole stream again."""
    taken: list[bytes] = []
    size = 0
    for block in blocks:
        taken.append(block)
        size += len(block)
        if size >= at_least:
            break
    sample = b"".join(taken)

    def again() -> Iterator[bytes]:
        if sample:
            yield sample
        yield from blocks

    return sample, again()


def _checksummed(blocks: Iterable[bytes], done: Callable[[str, int], None]) -> Iterator[bytes]:
    """Pass the blocks through, hashing them; call ``done`` with the digest after the last one."""
    digest = hashlib.sha256()
    size = 0
    for block in blocks:
        digest.update(block)
        size += len(block)
        yield block
    done(digest.hexdigest(), size)


def _set_checksum(delivery: Delivery, checksum: str, size: int) -> None:
    delivery.checksum, delivery.size_bytes = checksum, size


def _file_blocks(url: str, block_bytes: int) -> Iterator[bytes]:
    with fsspec.open(url, "rb") as handle:
        if block := handle.read(min(FIRST_BLOCK_BYTES, block_bytes)):
            yield block
        while block := handle.read(block_bytes):
            yield block


def _read_parquet(url: str, entity: Entity, checksum: str, size: int, reopen: Callable[[], Delivery],
                  fmt: FileFormat, chunk_bytes: int) -> Delivery:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    handle = fsspec.open(url, "rb").open()
    try:
        parquet = pq.ParquetFile(handle)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        handle.close()
        raise SourceError(f"{url}: not a readable Parquet file: {exc}") from None
    header = formats.map_header(list(parquet.schema_arrow.names), entity, fmt)

    def chunks() -> Iterator[bytes]:
        try:
            for batch in parquet.iter_batches(batch_size=100_000):
                out = io.BytesIO()
                # Every column as text, so dates and timestamps come out in ISO form.
                table = pa.Table.from_batches([batch])
                pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
                yield out.getvalue()
        finally:
            handle.close()

    return Delivery(entity, "files", url, header, chunks(), checksum, size, reopen)


def _read_xlsx(url: str, entity: Entity, checksum: str, size: int, reopen: Callable[[], Delivery],
               fmt: FileFormat, chunk_bytes: int) -> Delivery:
    """The first sheet of a workbook: header in its first row, a record per row after it."""
    handle = fsspec.open(url, "rb").open()
    try:
        header, rows = formats.xlsx_rows(handle, entity, fmt)
    except Exception as exc:  # calamine raises its own types for a file it cannot read
        handle.close()
        raise SourceError(f"{url}: not a readable .xlsx workbook: {exc}") from None

    def chunks() -> Iterator[bytes]:
        try:
            yield from formats.rows_to_chunks(rows, chunk_bytes)
        finally:
            handle.close()

    return Delivery(entity, "files", url, header, chunks(), checksum, size, reopen, first_line=2)
