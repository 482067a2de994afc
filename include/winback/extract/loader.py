"""Load deliveries into the raw layer: validate, COPY, de-duplicate, upsert, audit.

One call loads every delivery of one entity in ONE warehouse transaction:

1. each delivery streams by COPY, in bounded chunks, into a temporary text landing table
   (rows COPY cannot take — ragged, not UTF-8 — go to a temporary reject table with their
   reason); each chunk is checked and cast into the temporary ``_incoming`` table before
   the next one lands, bad rows into the rejects (see ``validation``: a cheap pass first,
   the careful one only when a row fails it);
2. duplicate keys inside one delivery are moved to the rejects (the first one stays);
3. if the quarantined share passes the limit, only the quarantine rows are kept and the
   run fails; otherwise the rows are upserted into ``raw.<entity>`` by business key (the
   latest ``updated_at`` wins; identical rows are left untouched, so a re-run changes
   nothing), and the quarantine rows, landed files and watermark are written;
4. commit. A crash anywhere before the commit leaves the raw tables as they were.

A first load (``raw.<entity>`` empty) takes the bulk path for its first delivery: clean
chunks go by COPY straight into the raw table, the others as in 1. (see ``bulk``).

The audit row in ``audit.load_runs`` is written on its own connection, so a failed run
is recorded as failed even though its data was rolled back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from winback.extract import bulk, formats
from winback.extract.contract import Entity
from winback.extract.sources import Delivery
from winback.extract.validation import DeliveryColumns, MissingColumnsError

log = logging.getLogger(__name__)


def _raw(values: list[str]) -> str:
    """A row for the quarantine, readable even when it holds bytes that are not UTF-8."""
    shown = [v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for v in values]
    return json.dumps(shown, ensure_ascii=False)


class QuarantineLimitExceeded(RuntimeError):
    """Too large a share of the rows broke the contract: the run loads nothing."""


class DeliveryRejected(RuntimeError):
    """At least one delivery was rejected whole (e.g. a missing required column)."""


class RecordsUnaccounted(RuntimeError):
    """A delivery's records do not add up to loaded + unchanged + superseded + quarantined."""


class _NotAllRowsPassed(Exception):
    """The cheap checks held back a row: the careful checks must find out why."""


# Class of the advisory lock (two-key form) a load holds on its audit row while it runs.
_LOAD_LOCK_CLASS = 7_201

# Held-back rows of the bulk path are checked in SQL in batches of at most this many: a few
# bad rows scattered through a file do not break the COPY into raw at every chunk.
_HELD_BACK_ROWS = 10_000


class _BulkRefused(Exception):
    """The rows of the bulk path cannot stay: roll it back, load the delivery the usual way."""


@dataclass
class FileAccount:
    """Where every record of one delivery went (``audit.load_files``), each count measured on its own."""

    delivery: int
    source_object: str
    records: int = 0  # as read: COPY's row count, or the records the careful reader found
    lines: int | None = None  # physical lines after the header (files only)
    loaded: int = 0  # inserted or updated in raw by this load
    unchanged: int = 0  # raw already held the same version or a newer one
    superseded: int = 0  # another version of the key in the same load won
    quarantined: int = 0

    @property
    def balanced(self) -> bool:
        return self.records == self.loaded + self.unchanged + self.superseded + self.quarantined

    def describe(self) -> str:
        return (f"{self.source_object}: {self.records} records read, but {self.loaded} loaded + {self.unchanged} "
                f"unchanged + {self.superseded} superseded + {self.quarantined} quarantined = "
                f"{self.loaded + self.unchanged + self.superseded + self.quarantined}")


@dataclass
class LoadResult:
    entity: str
    load_id: int
    source_kind: str
    deliveries: int = 0
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_quarantined: int = 0
    watermark_before: dt.datetime | None = None
    watermark_after: dt.datetime | None = None
    drift_columns: list[str] = field(default_factory=list)
    unknown_keys: int | None = None
    rejected: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    files: list[FileAccount] = field(default_factory=list)

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("files")
        for key in ("watermark_before", "watermark_after"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def _lines(chunk: bytes) -> int:
    """Physical lines in a chunk (the last one may lack its line break)."""
    return chunk.count(b"\n") + (0 if not chunk or chunk.endswith(b"\n") else 1)


def copy_chunk(cur: psycopg.Cursor, statement: sql.Composable, chunk: bytes | list[tuple]) -> None:
    """COPY one bounded chunk: CSV bytes, or rows (a separate function so tests can inject a failure)."""
    with cur.copy(statement) as copy:
        if isinstance(chunk, bytes):
            copy.write(chunk)
        else:
            for row in chunk:
                copy.write_row(row)


def bulk_write(copy: psycopg.Copy, chunk: bytes) -> None:
    """Send one checked chunk into the open COPY into raw (a function of its own for the benchmark)."""
    copy.write(chunk)


@dataclass
class _Landing:
    """The temporary text table one delivery's chunks are COPYed into, rows numbered by an identity."""

    columns: DeliveryColumns
    fast: sql.Composable  # COPY of CSV bytes
    slow: sql.Composable  # COPY of rows parsed in Python, with their numbers
    sequence: str

    @classmethod
    def create(cls, conn: psycopg.Connection, columns: DeliveryColumns) -> _Landing:
        names = sql.SQL(", ").join(map(sql.Identifier, columns.landing))
        conn.execute("drop table if exists _landing")
        conn.execute(sql.SQL(
            "create temp table _landing (_row_number bigint generated by default as identity, {}) on commit drop"
        ).format(sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(n)) for n in columns.landing)))
        sequence = conn.execute("select pg_get_serial_sequence('_landing', '_row_number')").fetchone()[0]
        return cls(columns, sql.SQL("copy _landing ({}) from stdin with (format csv)").format(names),
                   sql.SQL("copy _landing (_row_number, {}) from stdin").format(names), sequence)

    def number_from(self, conn: psycopg.Connection, first: int) -> None:
        conn.execute(sql.SQL("alter sequence {} restart with {}").format(sql.SQL(self.sequence), sql.Literal(first)))


class RawLoader:
    """Loads the deliveries of one entity into ``raw.<entity>``; see the module docstring."""

    def __init__(self, warehouse_dsn: str, entity: Entity, *, as_of: dt.date, timezone: str,
                 quarantine_max_share: float, dag_run_id: str | None = None, bulk_load: bool = True):
        self.dsn = warehouse_dsn
        self.entity = entity
        self.as_of = as_of
        self.timezone = timezone
        self.max_share = quarantine_max_share
        self.dag_run_id = dag_run_id
        self.bulk_load = bulk_load  # whether a first load may take the bulk path (see bulk)
        self.bulk_rows = 0  # rows the bulk path copied straight into raw in the current load
        self._bulk_indexes: list[tuple] = []

    # ---- audit (committed on its own) -----------------------------------------------------
    def _audit_start(self, conn: psycopg.Connection, source_kind: str) -> LoadResult:
        """Close the audit rows of loads whose process died, then open this load's row.

        A load holds a session advisory lock on its own row for as long as it runs (taken
        in the statement that inserts the row, so no other process sees the row unlocked).
        A ``running`` row whose lock nobody holds belongs to a process that died (``kill -9``,
        a lost worker): it is closed as failed. ``conn`` is in autocommit mode here.
        """
        abandoned = conn.execute(
            "update audit.load_runs set status = 'failed', finished_at = now(), message = 'abandoned: the process"
            " that ran this load ended without finishing it (found when a later load started); nothing of it"
            " was committed' where status = 'running' and pg_try_advisory_xact_lock(%s, (load_id %% 2147483647)::int)"
            " returning load_id", (_LOAD_LOCK_CLASS,)).fetchall()
        if abandoned:
            log.warning("closed the audit rows of abandoned loads: %s", ", ".join(str(r[0]) for r in abandoned))
        load_id = conn.execute(
            "insert into audit.load_runs (dag_run_id, logical_date, entity, source_kind) values (%s, %s, %s, %s)"
            " returning load_id, pg_advisory_lock(%s, (load_id %% 2147483647)::int)",
            (self.dag_run_id, self.as_of, self.entity.name, source_kind, _LOAD_LOCK_CLASS),
        ).fetchone()[0]
        return LoadResult(entity=self.entity.name, load_id=load_id, source_kind=source_kind)

    def _audit_finish(self, result: LoadResult, status: str, message: str | None, objects: list[str]) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                """update audit.load_runs set status = %s, message = %s, finished_at = now(),
                       duration_s = %s, source_object = %s, rows_read = %s, rows_inserted = %s,
                       rows_updated = %s, rows_unchanged = %s, rows_quarantined = %s,
                       watermark_before = %s, watermark_after = %s, drift_columns = %s, unknown_keys = %s
                   where load_id = %s""",
                (status, message, round(result.duration_s, 3), ", ".join(objects)[:4000] or None,
                 result.rows_read, result.rows_inserted, result.rows_updated, result.rows_unchanged,
                 result.rows_quarantined, result.watermark_before, result.watermark_after,
                 result.drift_columns or None, result.unknown_keys, result.load_id),
            )

    # ---- the load -----------------------------------------------------------------------
    def load(self, deliveries: Iterable[Delivery], source_kind: str,
             watermark_before: dt.datetime | None = None) -> LoadResult:
        started = time.monotonic()
        conn = psycopg.connect(self.dsn, autocommit=True)
        try:
            result = self._audit_start(conn, source_kind)
            conn.autocommit = False
        except BaseException:
            conn.close()
            raise
        result.watermark_before = watermark_before
        objects: list[str] = []
        self.bulk_rows = 0
        try:
            with conn:
                conn.execute(sql.SQL("set timezone = {}").format(sql.Literal(self.timezone)))
                # The checks compare dates with their ISO text output (see validation).
                conn.execute("set datestyle = 'ISO'")
                # The de-duplication and the distinct-key counts sort or hash whole loads: keep them in memory.
                conn.execute("set local work_mem = '256MB'")
                self._create_temp_tables(conn)
                landed = []
                incoming = 0  # rows in _incoming, counted as they move rather than by a scan
                for index, delivery in enumerate(deliveries):
                    objects.append(delivery.source_object)
                    read_before = result.rows_read
                    try:
                        moved, delivery, lines = self._stage(conn, delivery, index, result)
                    except MissingColumnsError as exc:
                        result.rejected.append(str(exc))
                        log.error("%s", exc)
                        continue
                    result.files.append(FileAccount(index, delivery.source_object, result.rows_read - read_before,
                                                    lines if delivery.source_kind == "files" else None))
                    incoming += moved
                    result.deliveries += 1
                    if delivery.checksum:  # a file read whole (its checksum may have been taken while reading)
                        landed.append(delivery)
                incoming -= self._reject_duplicates(conn, incoming)
                result.rows_quarantined = conn.execute("select count(*) from _rejects").fetchone()[0]
                self._store_quarantine(conn, result.load_id, source_kind)
                share = result.rows_quarantined / result.rows_read if result.rows_read else 0.0
                if share > self.max_share:
                    if self.bulk_rows:  # the table was empty before this load: empty it again
                        conn.execute(sql.SQL("truncate {}").format(sql.Identifier("raw", self.entity.name)))
                    conn.commit()  # keep the quarantine rows for diagnosis, load nothing else
                    raise QuarantineLimitExceeded(
                        f"{self.entity.name}: {result.rows_quarantined} of {result.rows_read} rows "
                        f"({share:.1%}) broke the contract, above the limit of {self.max_share:.1%} "
                        "(WINBACK_QUARANTINE_MAX_SHARE); nothing was loaded, see audit.quarantine "
                        f"where load_id = {result.load_id}"
                    )
                self._upsert(conn, result, incoming)
                result.rows_inserted += self.bulk_rows
                self._check_accounts(conn, result)
                self._record_landed_files(conn, landed, result.load_id)
                self._advance_watermark(conn, result)
                result.unknown_keys = self._count_unknown_keys(conn)
                conn.commit()
                self._summarize_brin(conn)
        except BaseException as exc:
            result.duration_s = time.monotonic() - started
            self._audit_finish(result, "failed", f"{type(exc).__name__}: {exc}"[:2000], objects)
            raise
        result.duration_s = time.monotonic() - started
        status = "rejected" if result.rejected else "success"
        self._audit_finish(result, status, "; ".join(result.rejected) or None, objects)
        log.info("loaded %s: %s", self.entity.name, result.summary())
        if result.rejected:
            raise DeliveryRejected("; ".join(result.rejected))
        return result

    def _create_temp_tables(self, conn: psycopg.Connection) -> None:
        raw = sql.Identifier("raw", self.entity.name)
        conn.execute(sql.SQL(
            "create temp table _incoming (like {} including defaults) on commit drop").format(raw))
        conn.execute("alter table _incoming add column _row_number bigint, add column _delivery integer")
        conn.execute(
            "create temp table _rejects (source_object text, row_number bigint, raw_row text, reason text,"
            " line_number bigint) on commit drop")

    def _stage(self, conn: psycopg.Connection, delivery: Delivery, index: int,
               result: LoadResult) -> tuple[int, Delivery, int]:
        """Stage one delivery: by the bulk path when it is the first delivery into an empty raw
        table (see ``bulk``), else chunk by chunk through the text landing table into
        ``_incoming``. Returns the rows moved to ``_incoming``, the delivery as last read
        (the bulk path may have had to read it a second time) and its physical lines."""
        columns = DeliveryColumns(self.entity, delivery.header, delivery.source_object)
        result.drift_columns.extend(c for c in columns.drift if c not in result.drift_columns)
        landing = _Landing.create(conn, columns)
        if self.bulk_load and index == 0 and delivery.reopen is not None and bulk.supports(columns) \
                and self._start_bulk(conn, delivery.source_object, result.load_id):
            try:
                moved, lines = self._stage_bulk(conn, delivery, landing, index, result)
                return moved, delivery, lines
            except _BulkRefused as exc:
                log.info("%s: %s; loading it the usual way", delivery.source_object, exc)
                conn.execute("rollback to savepoint winback_bulk")
                conn.execute("release savepoint winback_bulk")
                self.bulk_rows = 0
                delivery = delivery.reopen()
                landing = _Landing.create(conn, columns)
        rows = moved = 0
        line = delivery.first_line
        with conn.cursor() as cur:
            for chunk in delivery.chunks:
                rows, landed = self._land(conn, cur, landing, chunk, rows, delivery.source_object, line)
                moved += self._move(conn, columns, landed, delivery.source_object, result.load_id, index)
                line += _lines(chunk)
        result.rows_read += rows
        return moved, delivery, line - delivery.first_line

    def _land(self, conn: psycopg.Connection, cur: psycopg.Cursor, landing: _Landing, chunk: bytes, rows: int,
              source: str, line: int) -> tuple[int, int]:
        """COPY one chunk (its first record on file line ``line``) into the (emptied) landing
        table, its rows numbered from ``rows + 1``. Returns the rows read so far and the rows
        of this chunk landed."""
        conn.execute("truncate _landing")
        try:
            with conn.transaction():  # a savepoint: a chunk COPY can fail on its own
                copy_chunk(cur, landing.fast, chunk)
            return rows + cur.rowcount, cur.rowcount
        except psycopg.errors.DataError:  # a ragged row or bytes that are not UTF-8 somewhere
            rows, landed = self._stage_row_by_row(cur, landing.slow, chunk, rows, len(landing.columns.landing),
                                                  source, line)
            # The rolled-back COPY used up row numbers: the next chunk continues after this one.
            landing.number_from(conn, rows + 1)
            return rows, landed

    # ---- the bulk path (see bulk.py) -------------------------------------------------------
    def _start_bulk(self, conn: psycopg.Connection, source: str, load_id: int) -> bool:
        """Prepare ``raw.<entity>`` for the bulk path if it holds no row and this login owns
        it: inside the savepoint ``winback_bulk``, lock it, drop its key and indexes
        (remembered for ``_finish_bulk``), truncate it (so COPY may FREEZE the rows: no
        later VACUUM has to visit them) and give the load's columns this load's values as
        defaults. The lock keeps readers out until the commit, as the key drop of a large
        load always did. Returns False, having changed nothing, when the table is not empty
        or may not be altered."""
        table = sql.Identifier("raw", self.entity.name)
        name = f"raw.{self.entity.name}"
        owner = conn.execute("select pg_has_role(relowner, 'USAGE') from pg_class where oid = %s::regclass",
                             (name,)).fetchone()[0]
        if not owner or conn.execute(sql.SQL("select exists (select from {})").format(table)).fetchone()[0]:
            return False
        conn.execute("savepoint winback_bulk")
        try:
            conn.execute(sql.SQL("lock table {} in access exclusive mode").format(table))
            if conn.execute(sql.SQL("select exists (select from {})").format(table)).fetchone()[0]:
                raise _BulkRefused("rows arrived meanwhile")
            self._bulk_indexes = conn.execute(
                "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname,"
                " pg_get_constraintdef(c.oid) from pg_index i left join pg_constraint c"
                " on c.conindid = i.indexrelid and c.conrelid = i.indrelid where i.indrelid = %s::regclass",
                (name,)).fetchall()
            for index, _, constraint, _ in self._bulk_indexes:
                conn.execute(sql.SQL("alter table {} drop constraint {}").format(table, sql.Identifier(constraint))
                             if constraint else sql.SQL("drop index {}").format(sql.SQL(index)))
            conn.execute(sql.SQL("truncate {}").format(table))
            conn.execute(sql.SQL("alter table {} alter column _source_object set default {},"
                                 " alter column _load_id set default {}").format(
                table, sql.Literal(source), sql.Literal(load_id)))
        except (psycopg.errors.Error, _BulkRefused) as exc:  # e.g. a foreign key refers to the table
            log.info("%s: no bulk path (%s)", name, exc)
            conn.execute("rollback to savepoint winback_bulk")
            conn.execute("release savepoint winback_bulk")
            return False
        return True

    def _stage_bulk(self, conn: psycopg.Connection, delivery: Delivery, landing: _Landing, index: int,
                    result: LoadResult) -> tuple[int, int]:
        """Clean rows by COPY straight into raw, the others (a chunk's held-back rows, or a
        chunk Arrow cannot read) through the landing table into ``_incoming``, numbered as
        their rows in the delivery; then ``_finish_bulk``.
        Raises ``_BulkRefused`` when the rows cannot stay (the caller rolls back and loads
        the delivery the usual way). Returns the rows moved to ``_incoming`` and the delivery's lines."""
        columns = landing.columns
        check = bulk.ChunkCheck(columns, self.as_of, collect="client_id" if self._references_clients() else None)
        statement = bulk.copy_statement(columns)
        rows = moved = direct = expected = 0
        line = delivery.first_line
        held: list[tuple] = []  # held-back rows, numbered, waiting for the SQL path
        with conn.cursor() as cur, contextlib.ExitStack() as copying:
            def end_copy() -> None:
                nonlocal direct, expected
                if expected:
                    copying.close()
                    if cur.rowcount != expected:
                        raise _BulkRefused(f"COPY read {cur.rowcount} rows where the checks counted {expected}")
                    direct, expected = direct + expected, 0

            def flush_held() -> int:
                """Land the held-back rows and check them in SQL (one COPY ends for it)."""
                end_copy()
                conn.execute("truncate _landing")
                copy_chunk(cur, landing.slow, held)
                landed = len(held)
                held.clear()
                return self._move(conn, columns, landed, delivery.source_object, result.load_id, index)

            try:
                for chunk, verdict in bulk.checked_chunks(delivery.chunks, check):
                    chunk_line, line = line, line + _lines(chunk)
                    if verdict.copy_rows:
                        if not expected:
                            copy = copying.enter_context(cur.copy(statement))
                        bulk_write(copy, verdict.copy)
                        expected += verdict.copy_rows
                    if verdict.staged_whole:
                        end_copy()
                        landing.number_from(conn, rows + 1)
                        rows, landed = self._land(conn, cur, landing, chunk, rows, delivery.source_object,
                                                  chunk_line)
                        moved += self._move(conn, columns, landed, delivery.source_object, result.load_id, index)
                        continue
                    held.extend((rows + 1 + position, *values) for position, *values in verdict.held_back)
                    rows += verdict.rows
                    if len(held) >= _HELD_BACK_ROWS:
                        moved += flush_held()
                if held:
                    moved += flush_held()
                end_copy()
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                raise _BulkRefused(f"COPY refused a row ({str(exc).splitlines()[0]})") from exc
        self._finish_bulk(conn, index)
        if self._references_clients():
            conn.execute("create temp table _copied_client_ids (client_id text) on commit drop")
            with conn.cursor() as cur, cur.copy("copy _copied_client_ids from stdin with (format csv)") as copy:
                copy.write(check.distinct_csv())
        conn.execute("release savepoint winback_bulk")
        result.rows_read += rows
        self.bulk_rows = direct
        return moved, line - delivery.first_line

    def _finish_bulk(self, conn: psycopg.Connection, index: int) -> None:
        """Drop the load's defaults, build the key and indexes again, and make sure no key came
        twice: twice in the rows copied (the key build fails), or both copied and in
        ``_incoming`` (the usual path would have quarantined the later one)."""
        table = sql.Identifier("raw", self.entity.name)
        key = sql.Identifier(self.entity.key)
        conn.execute(sql.SQL("alter table {} alter column _source_object drop default,"
                             " alter column _load_id drop default").format(table))
        # The key build sorts every key: let it do so in memory.
        conn.execute("set local maintenance_work_mem = '512MB'")
        try:
            for _, definition, constraint, constraint_definition in self._bulk_indexes:
                conn.execute(sql.SQL("alter table {} add constraint {} {}").format(
                    table, sql.Identifier(constraint), sql.SQL(constraint_definition))
                    if constraint else sql.SQL(definition))
        except psycopg.errors.UniqueViolation:
            raise _BulkRefused(f"a {self.entity.key} repeats in the delivery") from None
        if conn.execute(sql.SQL("select exists (select from _incoming i join {} t using ({}) where i._delivery = %s)")
                        .format(table, key), (index,)).fetchone()[0]:
            raise _BulkRefused(f"a {self.entity.key} repeats in the delivery")

    def _move(self, conn: psycopg.Connection, columns: DeliveryColumns, landed: int, source: str, load_id: int,
              index: int) -> int:
        """Check and cast the landed rows into ``_incoming``: the cheap pass, and the careful
        one (which also finds the reasons) only if a row did not pass it. Returns the rows moved."""
        if not landed:
            return 0
        try:
            with conn.transaction():
                moved = conn.execute(columns.fast_move_statement(self.as_of, source, load_id, index)).rowcount
                if moved != landed:
                    raise _NotAllRowsPassed
            return moved
        except (psycopg.errors.DataError, _NotAllRowsPassed):
            pass  # a value that does not cast, or a row that broke a check: rolled back
        return conn.execute(columns.move_statement(self.as_of, source, load_id, index)).rowcount

    def _stage_row_by_row(self, cur: psycopg.Cursor, statement: sql.Composable, chunk: bytes, rows: int,
                          width: int, source: str, line: int) -> tuple[int, int]:
        """The slow path for a chunk COPY refused: read it in Python record by record (a
        malformed region costs only its own lines, see ``formats.read_records``), land the
        good rows and reject the others with their file line. Returns the rows read so far
        and the rows of this chunk landed."""
        good: list[tuple] = []
        bad: list[tuple] = []
        text = chunk.decode("utf-8", errors="surrogateescape")
        for start, record in formats.read_records(text, width, ",", line):
            rows += 1
            malformed = record if isinstance(record, formats.Malformed) else \
                formats.Malformed.from_marker(record[0]) if len(record) == 1 else None
            if malformed is not None:  # read here, or by the rewriting of another file form
                bad.append((source, rows, malformed.first_line, _raw([malformed.text]), malformed.reason))
                continue
            joined = "\x1f".join(record)
            if len(record) != width:
                bad.append((source, rows, start, _raw(record), f"row has {len(record)} fields, the header has {width}"))
            elif "\x00" in joined:
                bad.append((source, rows, start, _raw(record), "NUL byte in a value"))
            else:
                try:
                    joined.encode("utf-8")
                except UnicodeEncodeError:
                    bad.append((source, rows, start, _raw(record), "undecodable bytes (the file is not valid UTF-8)"))
                    continue
                good.append((rows, *record))
        copy_chunk(cur, statement, good)
        copy_chunk(cur, sql.SQL("copy _rejects (source_object, row_number, line_number, raw_row, reason) from stdin"),
                   bad)
        return rows, len(good)

    def _reject_duplicates(self, conn: psycopg.Connection, incoming: int) -> int:
        """Move every row whose key came earlier in the same delivery to the rejects; returns how many."""
        key = sql.Identifier(self.entity.key)
        # Usually no key repeats at all, and then no delivery has a duplicate: counting the
        # distinct keys answers that for a fraction of the cost of the grouping below.
        if conn.execute(sql.SQL("select count(distinct {}) from _incoming").format(key)).fetchone()[0] == incoming:
            return 0
        return conn.execute(sql.SQL("""
            with firsts as (
                select _delivery, {key}, min(_row_number) as first_row
                from _incoming group by _delivery, {key} having count(*) > 1
            ), moved as (
                delete from _incoming i using firsts f
                where i._delivery = f._delivery and i.{key} = f.{key} and i._row_number > f.first_row
                returning i.*, f.first_row
            )
            insert into _rejects (source_object, row_number, raw_row, reason)
            select _source_object, _row_number,
                   (to_jsonb(moved) - '_delivery' - '_load_id' - '_loaded_at' - 'first_row'
                    - '_source_object' - '_row_number')::text,
                   format('duplicate %s %s in this delivery (first at row %s)', {name}, {key}, first_row)
            from moved
        """).format(key=key, name=sql.Literal(self.entity.key))).rowcount

    def _store_quarantine(self, conn: psycopg.Connection, load_id: int, source_kind: str) -> None:
        conn.execute(
            """insert into audit.quarantine (load_id, entity, source_kind, source_object, row_number, line_number,
                                             raw_row, reason)
               select %s, %s, %s, source_object, row_number, line_number, raw_row, reason from _rejects
               order by source_object, row_number""",
            (load_id, self.entity.name, source_kind),
        )

    def _upsert(self, conn: psycopg.Connection, result: LoadResult, incoming: int) -> None:
        """Update changed rows, then insert new keys: the latest ``updated_at`` wins and
        identical rows are left untouched (so re-running a date changes nothing).

        Two plain statements rather than INSERT ... ON CONFLICT: on a bulk load the
        anti-join insert avoids the speculative insertion per row (measured: ~2x faster).
        When the rows are a large share of the table, its primary key is dropped for the two
        statements and built again after them (see ``_drop_primary_key``).

        Each statement reports its rows per delivery, into ``result.files`` (``loaded``,
        ``superseded``); ``_check_accounts`` counts the rest on its own.
        """
        entity = self.entity
        business = [*entity.column_names, "_extra"]
        cols = sql.SQL(", ").join(map(sql.Identifier, business))
        target = sql.Identifier("raw", entity.name)
        key = sql.Identifier(entity.key)
        source = sql.SQL("_incoming")
        accounts = {a.delivery: a for a in result.files}
        by_object = {a.source_object: a for a in result.files}
        if result.deliveries > 1:
            # Several deliveries may carry the same key: the latest updated_at wins, then
            # the later delivery (a re-delivered file comes after the original).
            order = sql.SQL("{}, updated_at desc nulls last, _delivery desc").format(key) \
                if entity.has_updated_at else sql.SQL("{}, _delivery desc").format(key)
            incoming = conn.execute(sql.SQL("create temp table _latest on commit drop as "
                                            "select distinct on ({}) * from _incoming order by {}").format(
                key, order)).rowcount
            source = sql.SQL("_latest")
            # The versions that lost to another delivery of this load.
            for delivery, lost in conn.execute(
                    "select i._delivery, i.n - coalesce(l.n, 0) from (select _delivery, count(*) n from _incoming"
                    " group by 1) i left join (select _delivery, count(*) n from _latest group by 1) l"
                    " using (_delivery)"):
                accounts[delivery].superseded += lost
        if not incoming:  # e.g. a clean first load: the bulk path copied every row, nothing is staged
            if self.bulk_rows:
                accounts[min(accounts)].loaded += self.bulk_rows
            result.rows_updated = result.rows_inserted = result.rows_unchanged = 0
            return
        primary_key = self._drop_primary_key(conn, incoming)
        changed = sql.SQL("({}) is distinct from ({})").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in business),
            sql.SQL(", ").join(sql.SQL("i.{}").format(sql.Identifier(c)) for c in business))
        assignments = sql.SQL(", ").join(
            sql.SQL("{0} = i.{0}").format(sql.Identifier(c)) for c in [*business, "_source_object", "_load_id"])
        same_key = sql.SQL("update {target} as t set {assignments}, _loaded_at = now() from {source} as i "
                           "where t.{key} = i.{key}").format(
            target=target, assignments=assignments, source=source, key=key)
        update = same_key + sql.SQL(" and ") + changed
        if self.bulk_rows:
            # Keys the bulk path copied in this same load: as among the deliveries of one load,
            # the latest updated_at wins (an empty one loses), then the later delivery; and each
            # such key counts once, as inserted.
            own = sql.SQL(" and t._load_id = {}").format(sql.Literal(result.load_id))
            copied = accounts[min(accounts)]  # the bulk path takes a load's first delivery
            copied.loaded += self.bulk_rows
            for delivery, count in conn.execute(sql.SQL(
                    "select i._delivery, count(*) from {source} i join {target} t using ({key})"
                    " where true{own} group by 1").format(source=source, target=target, key=key, own=own)):
                accounts[delivery].superseded += count  # until it is found to have won, below
            latest = sql.SQL(" and (t.updated_at is null or i.updated_at >= t.updated_at)") \
                if entity.has_updated_at else sql.SQL("")
            # Also when only the metadata differs: the later delivery's row is the one kept.
            for delivery, won in self._per_delivery(conn, same_key + own + latest):
                accounts[delivery].superseded -= won
                accounts[delivery].loaded += won
                copied.loaded -= won
                copied.superseded += won
            update += sql.SQL(" and t._load_id <> {}").format(sql.Literal(result.load_id))
        if entity.has_updated_at:
            update += sql.SQL(" and (i.updated_at is null or t.updated_at is null or i.updated_at >= t.updated_at)")
        result.rows_updated = 0
        for delivery, count in self._per_delivery(conn, update):
            accounts[delivery].loaded += count
            result.rows_updated += count
        insert = sql.SQL(
            "insert into {target} ({cols}, _source_object, _load_id) "
            "select {cols}, _source_object, _load_id from {source} as i "
            "where not exists (select from {target} as t where t.{key} = i.{key}) returning _source_object").format(
            target=target, cols=cols, source=source, key=key)
        result.rows_inserted = 0
        for source_object, count in conn.execute(
                sql.SQL("with added as ({}) select _source_object, count(*) from added group by 1").format(insert)):
            by_object[source_object].loaded += count
            result.rows_inserted += count
        if primary_key:
            conn.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(
                target, sql.Identifier(primary_key), key))
        # Unchanged: versions whose key raw holds from an earlier load (the same, or newer).
        for delivery, count in conn.execute(sql.SQL(
                "select i._delivery, count(*) from {source} i join {target} t using ({key})"
                " where t._load_id <> {load} group by 1").format(
                source=source, target=target, key=key, load=sql.Literal(result.load_id))):
            accounts[delivery].unchanged += count
        result.rows_unchanged = sum(a.unchanged for a in result.files)

    @staticmethod
    def _per_delivery(conn: psycopg.Connection, update: sql.Composable) -> list[tuple[int, int]]:
        """Run an UPDATE of raw from ``_incoming``/``_latest`` (alias ``i``); its rows per delivery."""
        return conn.execute(sql.SQL("with changed as ({} returning i._delivery) "
                                    "select _delivery, count(*) from changed group by 1").format(update)).fetchall()

    def _check_accounts(self, conn: psycopg.Connection, result: LoadResult) -> None:
        """Count each delivery's quarantined records, check that every record read is
        accounted for, and store the accounts in ``audit.load_files``. A record unaccounted
        for fails the load (nothing is committed), naming the delivery."""
        by_object = {a.source_object: a for a in result.files}
        for source_object, count in conn.execute("select source_object, count(*) from _rejects group by 1"):
            by_object[source_object].quarantined += count
        wrong = [a.describe() for a in result.files if not a.balanced]
        if wrong:
            raise RecordsUnaccounted(f"{self.entity.name}: records unaccounted for, nothing was loaded: "
                                     + "; ".join(wrong))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into audit.load_files (load_id, delivery, source_object, records, lines, loaded, unchanged,"
                " superseded, quarantined) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(result.load_id, a.delivery, a.source_object, a.records, a.lines, a.loaded, a.unchanged,
                  a.superseded, a.quarantined) for a in result.files])

    def _drop_primary_key(self, conn: psycopg.Connection, incoming: int) -> str | None:
        """Drop the raw table's primary key when the incoming rows are at least as many as the
        rows it holds (the first load, a backfill), and return its name for ``_upsert`` to
        build it again: one sort of all keys instead of one index insertion per row, as
        "Populating a Database" in the PostgreSQL manual advises. Dropping it locks the table
        against readers until the commit; a nightly load (a few rows next to the table)
        keeps the index and takes no such lock. Only the table's owner may drop it: a login
        with just winback_loader's grants keeps it too. Returns None when the key stays."""
        key = conn.execute(
            "select c.conname, t.reltuples, pg_has_role(t.relowner, 'USAGE')"
            " from pg_constraint c join pg_class t on t.oid = c.conrelid"
            " where c.conrelid = %s::regclass and c.contype = 'p'", (f"raw.{self.entity.name}",)).fetchone()
        # reltuples: the estimate of the last VACUUM, ANALYZE or index build; -1 if none yet.
        if key is None or incoming < key[1] or not key[2]:
            return None
        name = key[0]
        # The index build sorts every key: let it do so in memory.
        conn.execute("set local maintenance_work_mem = '512MB'")
        conn.execute(sql.SQL("alter table {} drop constraint {}").format(
            sql.Identifier("raw", self.entity.name), sql.Identifier(name)))
        return name

    def _record_landed_files(self, conn: psycopg.Connection, landed: list[Delivery], load_id: int) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into audit.landed_files (file_url, checksum, entity, size_bytes, load_id)"
                " values (%s, %s, %s, %s, %s) on conflict do nothing",
                [(d.source_object, d.checksum, self.entity.name, d.size_bytes, load_id) for d in landed],
            )

    def _advance_watermark(self, conn: psycopg.Connection, result: LoadResult) -> None:
        if result.source_kind != "sql" or not self.entity.has_updated_at:
            return
        newest = conn.execute("select max(updated_at) from _incoming").fetchone()[0]
        if self.bulk_rows:
            copied = conn.execute(sql.SQL("select max(updated_at) from {} where _load_id = %s").format(
                sql.Identifier("raw", self.entity.name)), (result.load_id,)).fetchone()[0]
            newest = max((t for t in (newest, copied) if t is not None), default=None)
        candidates = [w for w in (result.watermark_before, newest) if w is not None]
        result.watermark_after = max(candidates) if candidates else None
        if result.watermark_after is not None:
            conn.execute(
                """insert into audit.watermarks (entity, watermark, load_id) values (%s, %s, %s)
                   on conflict (entity) do update set watermark = excluded.watermark,
                       load_id = excluded.load_id, updated_at = now()""",
                (self.entity.name, result.watermark_after, result.load_id),
            )

    def _summarize_brin(self, conn: psycopg.Connection) -> None:
        """Summarize the page ranges this load filled in the table's BRIN index (_loaded_at).

        The nightly dbt run finds the rows delivered since its last run through that index;
        ranges nobody summarized yet (autovacuum does it later) are read whole, which after a
        bulk load means the whole table. Needs ownership (or MAINTAIN); without it dbt is
        only slower until autovacuum catches up.
        """
        indexes = conn.execute(
            "select i.indexrelid::regclass::text from pg_index i join pg_class c on c.oid = i.indexrelid "
            "join pg_am a on a.oid = c.relam where i.indrelid = %s::regclass and a.amname = 'brin'",
            (f"raw.{self.entity.name}",)).fetchall()
        for (index,) in indexes:
            try:
                conn.execute("select brin_summarize_new_values(%s::regclass)", (index,))
                conn.commit()
            except psycopg.errors.InsufficientPrivilege:
                conn.rollback()
                log.info("not allowed to summarize %s; autovacuum will", index)

    def _references_clients(self) -> bool:
        return "client_id" in self.entity.column_names and self.entity.name != "clients"

    def _count_unknown_keys(self, conn: psycopg.Connection) -> int | None:
        """Client ids referenced by this load that have no row in raw.clients (late-arriving)."""
        if not self._references_clients():
            return None
        ids = sql.SQL("select distinct client_id from _incoming where client_id is not null")
        if self.bulk_rows:  # and those of the rows the bulk path copied (collected while checking them)
            ids = sql.SQL("select client_id from _incoming where client_id is not null"
                          " union select client_id from _copied_client_ids")
        # The distinct ids first: the anti-join then probes raw.clients once per client, not per row.
        return conn.execute(sql.SQL(
            "select count(*) from ({}) i where not exists (select 1 from raw.clients c where c.client_id = i.client_id)"
        ).format(ids)).fetchone()[0]
