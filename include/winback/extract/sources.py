"""Readers: the sales system's tables (SQL source) and file drops (CSV / Parquet).

Each reader yields *deliveries*: one table read or one file, with its header and a
lazy stream of ``(row_number, values, reason)``. ``values`` are text (``None`` for
NULL); ``reason`` is set when the reader itself already knows the row is bad
(undecodable bytes). Nothing is materialised: rows stream from the cursor or the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec
import psycopg
from psycopg import sql

from winback.extract.contract import Entity

FILE_SUFFIXES = (".csv", ".parquet")
_HASH_BLOCK = 1 << 20

RowStream = Iterator[tuple[int, list[str | None], str | None]]


@dataclass
class Delivery:
    entity: Entity
    source_kind: str  # "sql" | "files"
    source_object: str  # table name or file URL
    header: list[str]
    rows: RowStream
    checksum: str | None = None
    size_bytes: int | None = None
    notes: list[str] = field(default_factory=list)


class SourceError(RuntimeError):
    """A source cannot be read (missing table, unreadable file); the message says which."""


# ------------------------------------------------------------------------- SQL source
def read_sql_table(
    source_dsn: str,
    entity: Entity,
    updated_after: dt.datetime | None,
    updated_until: dt.datetime,
    timezone: str,
    schema: str = "public",
    fetch_rows: int = 50_000,
) -> Iterator[Delivery]:
    """Read an entity's table incrementally by ``updated_at`` (when it has one).

    Rows with ``updated_at`` in ``(updated_after, updated_until]`` are read, plus rows
    whose ``updated_at`` is NULL (they cannot be placed in time, so every run re-reads
    them; the upsert makes that idempotent). A table without ``updated_at`` is read whole.
    """
    conn = psycopg.connect(source_dsn, autocommit=False)
    try:
        conn.execute("set datestyle = 'ISO'")
        conn.execute(sql.SQL("set timezone = {}").format(sql.Literal(timezone)))
        table = sql.Identifier(schema, entity.name)
        try:
            header = [c.name for c in conn.execute(sql.SQL("select * from {} limit 0").format(table)).description]
        except psycopg.errors.UndefinedTable:
            raise SourceError(f"source table {schema}.{entity.name} does not exist") from None
        conn.rollback()
        columns = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(h)) for h in header)
        query = sql.SQL("select {} from {}").format(columns, table)
        params: list[object] = []
        if "updated_at" in header:
            query += sql.SQL(" where (updated_at <= %s and (%s::timestamptz is null or updated_at > %s))"
                             " or updated_at is null order by updated_at nulls first")
            params = [updated_until, updated_after, updated_after]

        def rows() -> RowStream:
            try:
                with conn.cursor(name=f"winback_extract_{entity.name}") as cur:
                    cur.itersize = fetch_rows
                    cur.execute(query, params)
                    for number, record in enumerate(cur, start=1):
                        yield number, list(record), None
            finally:
                conn.close()

        yield Delivery(entity, "sql", f"{schema}.{entity.name}", header, rows())
    except BaseException:
        conn.close()
        raise


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
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_file(url: str, entity: Entity, checksum: str, size: int, batch_rows: int = 50_000) -> Delivery:
    if url.endswith(".parquet"):
        return _read_parquet(url, entity, checksum, size, batch_rows)
    return _read_csv(url, entity, checksum, size)


def _read_csv(url: str, entity: Entity, checksum: str, size: int) -> Delivery:
    handle = fsspec.open(url, "rb").open()
    # surrogateescape keeps undecodable bytes visible instead of failing the whole file;
    # such rows are quarantined one by one below. utf-8-sig drops a BOM from the header.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as exc:
        handle.close()
        raise SourceError(f"{url}: cannot read the CSV header: {exc}") from None

    def rows() -> RowStream:
        number = 0
        try:
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    number += 1
                    yield number, [], f"malformed CSV: {exc}"
                    continue
                number += 1
                if not values:  # a blank line is not a row
                    number -= 1
                    continue
                try:
                    "\x1f".join(values).encode("utf-8")
                except UnicodeEncodeError:
                    shown = [v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for v in values]
                    yield number, shown, "undecodable bytes (the file is not valid UTF-8)"
                    continue
                yield number, [v if v != "" else None for v in values], None
        finally:
            handle.close()

    return Delivery(entity, "files", url, header, rows(), checksum, size)


def _read_parquet(url: str, entity: Entity, checksum: str, size: int, batch_rows: int) -> Delivery:
    import pyarrow.parquet as pq

    handle = fsspec.open(url, "rb").open()
    try:
        parquet = pq.ParquetFile(handle)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        handle.close()
        raise SourceError(f"{url}: not a readable Parquet file: {exc}") from None
    header = list(parquet.schema_arrow.names)

    def as_text(value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def rows() -> RowStream:
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows):
                for record in zip(*(col.to_pylist() for col in batch.columns), strict=True):
                    number += 1
                    yield number, [as_text(v) for v in record], None
        finally:
            handle.close()

    return Delivery(entity, "files", url, header, rows(), checksum, size)
